//! The bucket, over the S3 API: uploading the run's originals, seeing whether a derivative
//! was made, deleting one to force a second miss, and removing everything the run left.

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;

/// Why an S3 call failed.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// PutObject failed.
    #[error("uploading {key}: {reason}")]
    Put {
        /// The key.
        key: String,
        /// The SDK's error with its context.
        reason: String,
    },
    /// HeadObject failed with something other than "not found".
    #[error("looking up {key}: {reason}")]
    Head {
        /// The key.
        key: String,
        /// The SDK's error with its context.
        reason: String,
    },
    /// DeleteObject failed.
    #[error("deleting {key}: {reason}")]
    Delete {
        /// The key.
        key: String,
        /// The SDK's error with its context.
        reason: String,
    },
    /// ListObjectsV2 failed.
    #[error("listing {prefix}: {reason}")]
    List {
        /// The prefix.
        prefix: String,
        /// The SDK's error with its context.
        reason: String,
    },
    /// No region from the options nor from the SDK's default chain.
    #[error("no AWS region: pass --region or set AWS_REGION")]
    NoRegion,
}

/// What HeadObject says of an object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    /// Its Content-Type.
    pub content_type: Option<String>,
    /// Its Cache-Control.
    pub cache_control: Option<String>,
    /// Its size in bytes.
    pub content_length: Option<u64>,
}

/// The image bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    client: aws_sdk_s3::Client,
    name: String,
}

/// An S3 client from the SDK's default chain (environment, profile, web identity, container
/// and instance credentials), in `region` when given. Path-style addressing when
/// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` point the SDK at another server (as the
/// devserver's store), since such servers rarely resolve bucket subdomains. `lookup` reads
/// the environment.
pub async fn client_from_environment(
    region: Option<String>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<aws_sdk_s3::Client, BucketError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region));
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(BucketError::NoRegion);
    }
    let overridden = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|name| lookup(name).is_some_and(|v| !v.is_empty()));
    let config = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(overridden).build();
    Ok(aws_sdk_s3::Client::from_conf(config))
}

impl Bucket {
    /// The bucket `name` through `client`.
    pub fn new(client: aws_sdk_s3::Client, name: impl Into<String>) -> Self {
        Self { client, name: name.into() }
    }

    /// Uploads `body` as `key` with its Content-Type.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), BucketError> {
        self.client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| BucketError::Put {
                key: key.into(),
                reason: DisplayErrorContext(e).to_string(),
            })?;
        Ok(())
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool, BucketError> {
        match self.client.head_object().bucket(&self.name).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(BucketError::Head {
                key: key.into(),
                reason: DisplayErrorContext(e).to_string(),
            }),
        }
    }

    /// The stored headers of `key` that uploads fix (HeadObject), or `None` if there is no
    /// such object.
    pub async fn head(&self, key: &str) -> Result<Option<Stored>, BucketError> {
        match self.client.head_object().bucket(&self.name).key(key).send().await {
            Ok(out) => Ok(Some(Stored {
                content_type: out.content_type().map(str::to_owned),
                cache_control: out.cache_control().map(str::to_owned),
                content_length: out.content_length().and_then(|n| u64::try_from(n).ok()),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(BucketError::Head {
                key: key.into(),
                reason: DisplayErrorContext(e).to_string(),
            }),
        }
    }

    /// Deletes `key` (on a versioned bucket: a delete marker; the lifecycle rule expires
    /// the old version).
    pub async fn delete(&self, key: &str) -> Result<(), BucketError> {
        self.client.delete_object().bucket(&self.name).key(key).send().await.map_err(|e| {
            BucketError::Delete { key: key.into(), reason: DisplayErrorContext(e).to_string() }
        })?;
        Ok(())
    }

    /// Every key under `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BucketError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.name)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| BucketError::List {
                    prefix: prefix.into(),
                    reason: DisplayErrorContext(e).to_string(),
                })?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Deletes every key under each prefix; returns how many were deleted.
    pub async fn delete_under(&self, prefixes: &[String]) -> Result<usize, BucketError> {
        let mut deleted = 0;
        for prefix in prefixes {
            for key in self.list(prefix).await? {
                self.delete(&key).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
