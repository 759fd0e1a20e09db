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
    /// Another conditional write to the same key was in flight (409) and retries did not
    /// resolve it.
    #[error("conflicting conditional write: {0}")]
    Conflict(String),
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

/// An object's body and the headers it was stored with.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// The whole body.
    pub body: Bytes,
    /// Its Content-Type.
    pub content_type: Option<String>,
    /// Its Cache-Control.
    pub cache_control: Option<String>,
    /// Its ETag, without the quotes S3 puts around it.
    pub etag: Option<String>,
}

/// What a HEAD tells of an object.
#[derive(Debug, Clone, Default)]
pub struct ObjectHead {
    /// Its ETag, without the quotes S3 puts around it.
    pub etag: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// Its Content-Type.
    pub content_type: Option<String>,
    /// The original's ETag a derivative was made from ([`SOURCE_ETAG_METADATA`]).
    pub source_etag: Option<String>,
}

/// The user metadata (`x-amz-meta-source-etag`) every derivative carries: the ETag of the
/// original it was made from, so a purge can tell a stale size from a fresh one.
pub const SOURCE_ETAG_METADATA: &str = "source-etag";

/// An ETag without its quotes, as S3 event notifications write it.
pub fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// How a derivative is stored.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    /// Its Content-Type.
    pub content_type: &'a str,
    /// Its Cache-Control.
    pub cache_control: &'a str,
    /// The ETag of the original it was made from.
    pub source_etag: Option<&'a str>,
}

/// A bucket reached through aws-sdk-s3.
#[derive(Debug, Clone)]
pub struct Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    read_timeout: Option<std::time::Duration>,
}

/// How a read whose body broke off is described (and told apart from other failures).
const BODY_BROKE_OFF: &str = "reading the body";

/// Whether an S3 call read or wrote: a bare 403 means different things for the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
}

fn classify<E>(err: SdkError<E, HttpResponse>, op: Op) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) => StoreError::Timeout(detail),
        SdkError::DispatchFailure(d) if d.is_timeout() => StoreError::Timeout(detail),
        SdkError::DispatchFailure(_) => StoreError::Unavailable(detail),
        SdkError::ServiceError(service) => {
            classify_answer(service.raw().status().as_u16(), service.err().code(), op, detail)
        }
        _ => StoreError::Failed(detail),
    }
}

/// What an S3 error answer means to us, from its status and error code.
fn classify_answer(status: u16, code: Option<&str>, op: Op, detail: String) -> StoreError {
    match (status, code) {
        // A wrong BUCKET is a deployment error, not a missing original.
        (_, Some("NoSuchBucket")) => StoreError::Failed(detail),
        (404, _) | (_, Some("NoSuchKey" | "NotFound")) => StoreError::NotFound,
        // Without s3:ListBucket, S3 answers 403 AccessDenied for a key that does not exist
        // (HEAD: a bare 403, no code). The resizer's role deliberately cannot list, so for a
        // read this is "missing". Signature and key errors keep their own codes and stay
        // failures.
        (403, None | Some("AccessDenied")) if op == Op::Read => {
            tracing::debug!(%detail, "403 on read taken as a missing object");
            StoreError::NotFound
        }
        (412, _) | (_, Some("PreconditionFailed")) => StoreError::AlreadyExists,
        // S3 answers 409 when another conditional write to the key is in flight; retry.
        (409, _) | (_, Some("ConditionalRequestConflict")) if op == Op::Write => {
            StoreError::Conflict(detail)
        }
        (503, _) | (_, Some("SlowDown" | "ServiceUnavailable")) => StoreError::Unavailable(detail),
        (504, _) | (_, Some("RequestTimeout")) => StoreError::Timeout(detail),
        _ => StoreError::Failed(detail),
    }
}

impl Store {
    /// A store for `bucket` through `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into(), read_timeout: None }
    }

    /// Bounds each read ([`Store::get_object`]), its body included, by `timeout`. The SDK's
    /// operation timeout ends when a GET's headers arrive: without this bound a body that
    /// stalls or trickles holds the request until the SDK's stalled-stream check (a few
    /// seconds of nothing) or, trickling, until the function's own timeout.
    pub fn with_read_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Whether `key` exists (HEAD).
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.head(key).await.map(|head| head.is_some())
    }

    /// `key`'s ETag, size, type and source stamp (HEAD); `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectHead>, StoreError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(ObjectHead {
                etag: out.e_tag().map(unquote),
                size: out.content_length().unwrap_or(0).max(0) as u64,
                content_type: out.content_type().filter(|v| !v.is_empty()).map(str::to_owned),
                source_etag: out.metadata().and_then(|m| m.get(SOURCE_ETAG_METADATA)).cloned(),
            })),
            Err(e) => match classify(e, Op::Read) {
                StoreError::NotFound => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Deletes `key` (S3 answers success whether or not it existed).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, Op::Write))
    }

    /// Reads `key` whole, refusing before reading the body when Content-Length exceeds
    /// `max_bytes`.
    pub async fn get(&self, key: &str, max_bytes: u64) -> Result<Bytes, StoreError> {
        self.get_object(key, max_bytes).await.map(|object| object.body)
    }

    /// Like [`Store::get`], with the stored headers a response needs. With a read timeout,
    /// the whole call (the answer's head and its body) gets that long, then
    /// [`StoreError::Timeout`].
    pub async fn get_object(&self, key: &str, max_bytes: u64) -> Result<StoredObject, StoreError> {
        let read = self.get_object_unbounded(key, max_bytes);
        match self.read_timeout {
            None => read.await,
            Some(limit) => tokio::time::timeout(limit, read).await.unwrap_or_else(|_| {
                Err(StoreError::Timeout(format!("reading {key} took over {limit:?}")))
            }),
        }
    }

    /// The SDK retries a GET that fails before its body, never one whose body breaks off
    /// (it has handed the body over by then): such a read is made once more here, so one
    /// dropped connection mid-body does not fail the miss.
    async fn get_object_unbounded(
        &self,
        key: &str,
        max_bytes: u64,
    ) -> Result<StoredObject, StoreError> {
        match self.get_object_once(key, max_bytes).await {
            Err(StoreError::Unavailable(detail)) if detail.starts_with(BODY_BROKE_OFF) => {
                tracing::warn!(key, detail, "the body broke off: reading again");
                self.get_object_once(key, max_bytes).await
            }
            other => other,
        }
    }

    async fn get_object_once(&self, key: &str, max_bytes: u64) -> Result<StoredObject, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(e, Op::Read))?;
        let size = out.content_length().unwrap_or(0).max(0) as u64;
        if size > max_bytes {
            return Err(StoreError::TooLarge { size, limit: max_bytes });
        }
        let content_type = out.content_type().filter(|v| !v.is_empty()).map(str::to_owned);
        let cache_control = out.cache_control().filter(|v| !v.is_empty()).map(str::to_owned);
        let etag = out.e_tag().map(unquote);
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable(format!("{BODY_BROKE_OFF}: {e}")))?;
        let bytes = body.into_bytes();
        if bytes.len() as u64 > max_bytes {
            return Err(StoreError::TooLarge { size: bytes.len() as u64, limit: max_bytes });
        }
        Ok(StoredObject { body: bytes, content_type, cache_control, etag })
    }

    /// Writes `key` only if it does not exist yet (`If-None-Match: *`). A 409 (another
    /// conditional write in flight) is retried a few times; it then resolves to 412 or success.
    pub async fn put_if_absent(
        &self,
        key: &str,
        body: impl Into<Bytes>,
        content_type: &str,
        cache_control: &str,
    ) -> Result<PutOutcome, StoreError> {
        let stamp = Stamp { content_type, cache_control, source_etag: None };
        self.put_stamped(key, body, stamp).await
    }

    /// [`Store::put_if_absent`] with the original's ETag in the object's metadata.
    pub async fn put_stamped(
        &self,
        key: &str,
        body: impl Into<Bytes>,
        stamp: Stamp<'_>,
    ) -> Result<PutOutcome, StoreError> {
        let body: Bytes = body.into();
        let mut attempt = 0u32;
        loop {
            let mut put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .if_none_match("*")
                .content_type(stamp.content_type)
                .cache_control(stamp.cache_control);
            if let Some(etag) = stamp.source_etag {
                put = put.metadata(SOURCE_ETAG_METADATA, etag);
            }
            let result = put.body(ByteStream::from(body.clone())).send().await;
            match result.map_err(|e| classify(e, Op::Write)) {
                Ok(_) => return Ok(PutOutcome::Created),
                Err(StoreError::AlreadyExists) => return Ok(PutOutcome::AlreadyExisted),
                Err(StoreError::Conflict(_)) if attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt)))
                        .await;
                }
                Err(other) => return Err(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn case(status: u16, code: Option<&str>, op: Op, expected: &str) {
        let got = match classify_answer(status, code, op, String::new()) {
            StoreError::NotFound => "missing",
            StoreError::AlreadyExists => "exists",
            StoreError::Conflict(_) => "conflict",
            StoreError::Timeout(_) => "timeout",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Failed(_) => "failed",
            StoreError::TooLarge { .. } => "too-large",
        };
        assert_eq!(got, expected, "{status} {code:?} {op:?}");
    }

    #[test]
    fn s3_answers_are_classified_once() {
        use Op::{Read, Write};
        case(404, Some("NoSuchKey"), Read, "missing");
        case(404, None, Read, "missing"); // HEAD has no body, so no code
        case(404, Some("NoSuchBucket"), Read, "failed");
        case(403, None, Read, "missing"); // HEAD of a missing key without s3:ListBucket
        case(403, Some("AccessDenied"), Read, "missing"); // GET of a missing key without s3:ListBucket
        case(403, Some("SignatureDoesNotMatch"), Read, "failed");
        case(403, Some("InvalidAccessKeyId"), Read, "failed");
        case(403, Some("AccessDenied"), Write, "failed");
        case(412, Some("PreconditionFailed"), Write, "exists");
        case(409, Some("ConditionalRequestConflict"), Write, "conflict");
        case(409, Some("OperationAborted"), Read, "failed");
        case(503, Some("SlowDown"), Write, "unavailable");
        case(500, Some("InternalError"), Read, "failed");
        case(504, None, Read, "timeout");
        case(400, Some("RequestTimeout"), Write, "timeout");
    }
}
