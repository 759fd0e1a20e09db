//! The S3 boundary. Every SDK error is turned into a [`StoreError`] here, once, so the rest of
//! the code never looks at SDK error types.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

/// What went wrong talking to S3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (404 / NoSuchKey).
    #[error("no such object")]
    NotFound,
    /// The object is larger than the caller allows; nothing beyond the headers was read.
    #[error("object is {size} bytes, limit {limit}")]
    TooLarge {
        /// Content-Length reported by S3.
        size: u64,
        /// The caller's limit.
        limit: u64,
    },
    /// A conditional write lost: the object already exists (412).
    #[error("object already exists")]
    AlreadyExists,
    /// S3 did not answer in time.
    #[error("S3 timed out: {0}")]
    Timeout(String),
    /// S3 could not be reached or said it is overloaded (connection refused, 503 SlowDown).
    #[error("S3 unavailable: {0}")]
    Unavailable(String),
    /// Any other S3 answer: access denied, internal error, malformed response.
    #[error("S3 error: {0}")]
    Failed(String),
}

/// Result of a create-only write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// This call wrote the object.
    Created,
    /// Another writer got there first (412 on `If-None-Match: *`); the object exists.
    AlreadyExisted,
}

/// A bucket reached through aws-sdk-s3.
#[derive(Debug, Clone)]
pub struct Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

fn classify<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) => StoreError::Timeout(detail),
        SdkError::DispatchFailure(d) if d.is_timeout() => StoreError::Timeout(detail),
        SdkError::DispatchFailure(_) => StoreError::Unavailable(detail),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            match (status, service.err().code()) {
                (404, _) | (_, Some("NoSuchKey" | "NotFound")) => StoreError::NotFound,
                (412, _) | (_, Some("PreconditionFailed")) => StoreError::AlreadyExists,
                (503, _) | (_, Some("SlowDown" | "ServiceUnavailable")) => {
                    StoreError::Unavailable(detail)
                }
                (504, _) => StoreError::Timeout(detail),
                _ => StoreError::Failed(detail),
            }
        }
        _ => StoreError::Failed(detail),
    }
}

impl Store {
    /// A store for `bucket` through `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Whether `key` exists (HEAD).
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match classify(e) {
                StoreError::NotFound => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Reads `key` whole, refusing before reading the body when Content-Length exceeds
    /// `max_bytes`.
    pub async fn get(&self, key: &str, max_bytes: u64) -> Result<Bytes, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(classify)?;
        let size = out.content_length().unwrap_or(0).max(0) as u64;
        if size > max_bytes {
            return Err(StoreError::TooLarge {
                size,
                limit: max_bytes,
            });
        }
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("reading the body: {e}")))?;
        let bytes = body.into_bytes();
        if bytes.len() as u64 > max_bytes {
            return Err(StoreError::TooLarge {
                size: bytes.len() as u64,
                limit: max_bytes,
            });
        }
        Ok(bytes)
    }

    /// Writes `key` only if it does not exist yet (`If-None-Match: *`).
    pub async fn put_if_absent(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        cache_control: &str,
    ) -> Result<PutOutcome, StoreError> {
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .content_type(content_type)
            .cache_control(cache_control)
            .body(ByteStream::from(body))
            .send()
            .await;
        match result.map_err(classify) {
            Ok(_) => Ok(PutOutcome::Created),
            Err(StoreError::AlreadyExists) => Ok(PutOutcome::AlreadyExisted),
            Err(other) => Err(other),
        }
    }
}
