//! Every answer the resizer gives other than a success, with its status and stable code in
//! one exhaustive mapping, and the JSON body they all share.

use http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};

use crate::key::{KeyError, Size};
use crate::pipeline::{Format, PipelineError};
use crate::store::StoreError;

/// Everything the handler can answer other than a derivative or a redirect.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The request lacks the secret header CloudFront adds (ORIGIN_VERIFY_SECRET): it did
    /// not come through the distribution.
    #[error("requests are accepted only through the CloudFront distribution")]
    OriginNotVerified,
    /// The path is not a route of this delivery mode.
    #[error("no route for {0}")]
    NoRoute(String),
    /// A method other than GET or HEAD.
    #[error("method {0} is not allowed; use GET or HEAD")]
    MethodNotAllowed(String),
    /// `/resize/` with nothing after it.
    #[error("the path needs a derivative key, e.g. /resize/300x300/photos/cat.jpg")]
    MissingKey,
    /// The key is not a valid derivative key.
    #[error("{0}")]
    InvalidKey(#[from] KeyError),
    /// A private derivative asked for through a path CloudFront's signed behaviours do not
    /// match: nothing was read. The message says nothing about the original.
    #[error("sizes of private images are made only through the signed route")]
    UnsignedPrivatePath,
    /// The size is valid but not in ALLOWED_RESOLUTIONS.
    #[error("{0} is not in ALLOWED_RESOLUTIONS")]
    ResolutionNotAllowed(Size),
    /// The size segment names a format not in ALLOWED_FORMATS.
    #[error("{} is not in ALLOWED_FORMATS", .0.name())]
    FormatNotAllowed(Format),
    /// The original has translucent pixels and the format asked for cannot hold them.
    #[error("{0}")]
    LosesTransparency(String),
    /// A `WxH` box with more pixels than MAX_SOURCE_PIXELS: too big to produce.
    #[error("{size} is {pixels} pixels; the limit (MAX_SOURCE_PIXELS) is {limit}")]
    OutputTooLarge {
        /// The requested size.
        size: Size,
        /// Its pixel count.
        pixels: u64,
        /// MAX_SOURCE_PIXELS.
        limit: u64,
    },
    /// The original does not exist.
    #[error("original {0:?} not found")]
    OriginalNotFound(String),
    /// The original exceeds MAX_SOURCE_BYTES or MAX_SOURCE_PIXELS.
    #[error("{0}")]
    SourceTooLarge(String),
    /// The original is not a JPEG, PNG, WebP or GIF that decodes.
    #[error("{0}")]
    UnsupportedImage(String),
    /// The original would cost more to decode than any real image does: a JPEG with more
    /// scans than the limit.
    #[error("{0}")]
    SourceTooComplex(String),
    /// The resize ran past RESIZE_BUDGET_MS. Not the caller's fault for sure (an overloaded
    /// process slows every resize), so neither cached nor remembered.
    #[error("{0}")]
    ResizeTooSlow(String),
    /// S3 timed out.
    #[error("storage timed out")]
    StorageTimeout(String),
    /// S3 unreachable or throttling.
    #[error("storage unavailable, retry later")]
    StorageUnavailable(String),
    /// S3 answered with an error we cannot act on (access denied, internal error).
    #[error("storage error")]
    StorageFailed(String),
    /// A bug or resource failure on our side (encoder failure, a panicked resize task).
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status. Exhaustive on purpose: a new variant must choose its status here.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::OriginNotVerified => StatusCode::FORBIDDEN,
            ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::MissingKey => StatusCode::BAD_REQUEST,
            ApiError::InvalidKey(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsignedPrivatePath => StatusCode::FORBIDDEN,
            ApiError::ResolutionNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::FormatNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::LosesTransparency(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::OutputTooLarge { .. } => StatusCode::BAD_REQUEST,
            ApiError::OriginalNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::SourceTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedImage(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::SourceTooComplex(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ResizeTooSlow(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::StorageTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::StorageUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::StorageFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code in the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::OriginNotVerified => "origin-not-verified",
            ApiError::NoRoute(_) => "not-found",
            ApiError::MethodNotAllowed(_) => "method-not-allowed",
            ApiError::MissingKey => "missing-key",
            ApiError::InvalidKey(_) => "invalid-key",
            ApiError::UnsignedPrivatePath => "unsigned-private-path",
            ApiError::ResolutionNotAllowed(_) => "resolution-not-allowed",
            ApiError::FormatNotAllowed(_) => "format-not-allowed",
            ApiError::LosesTransparency(_) => "format-loses-transparency",
            ApiError::OutputTooLarge { .. } => "output-too-large",
            ApiError::OriginalNotFound(_) => "original-not-found",
            ApiError::SourceTooLarge(_) => "source-too-large",
            ApiError::UnsupportedImage(_) => "unsupported-image",
            ApiError::SourceTooComplex(_) => "source-too-complex",
            ApiError::ResizeTooSlow(_) => "resize-too-slow",
            ApiError::StorageTimeout(_) => "storage-timeout",
            ApiError::StorageUnavailable(_) => "storage-unavailable",
            ApiError::StorageFailed(_) => "storage-error",
            ApiError::Internal(_) => "internal-error",
        }
    }

    /// Whether this answer holds for a while whoever asks again: the original is missing,
    /// too large, not an image that decodes, or too costly to decode. Such answers may be
    /// cached briefly (ERROR_CACHE_SECONDS) by browsers and CloudFront and are remembered by
    /// the process, so a hostile key costs one read and one decode per window, not one per
    /// request. Refusals made from the path alone cost nothing and stay `no-store`, as do
    /// storage failures (the next request may succeed).
    pub fn is_terminal(&self) -> bool {
        match self {
            ApiError::OriginalNotFound(_)
            | ApiError::SourceTooLarge(_)
            | ApiError::UnsupportedImage(_)
            | ApiError::SourceTooComplex(_)
            | ApiError::LosesTransparency(_) => true,
            ApiError::OriginNotVerified
            | ApiError::NoRoute(_)
            | ApiError::MethodNotAllowed(_)
            | ApiError::MissingKey
            | ApiError::InvalidKey(_)
            | ApiError::UnsignedPrivatePath
            | ApiError::ResolutionNotAllowed(_)
            | ApiError::FormatNotAllowed(_)
            | ApiError::OutputTooLarge { .. }
            | ApiError::ResizeTooSlow(_)
            | ApiError::StorageTimeout(_)
            | ApiError::StorageUnavailable(_)
            | ApiError::StorageFailed(_)
            | ApiError::Internal(_) => false,
        }
    }

    /// A store error met while working on the derivative of `original`.
    pub(crate) fn from_store(err: StoreError, original: &str) -> Self {
        match err {
            StoreError::NotFound => ApiError::OriginalNotFound(original.to_owned()),
            StoreError::TooLarge { size, limit } => ApiError::SourceTooLarge(format!(
                "the original is {size} bytes; MAX_SOURCE_BYTES is {limit}"
            )),
            StoreError::Timeout(d) => ApiError::StorageTimeout(d),
            StoreError::Unavailable(d) | StoreError::Conflict(d) => ApiError::StorageUnavailable(d),
            // A 412 outside a create-only write is unexpected: report it as a storage error.
            StoreError::AlreadyExists => {
                ApiError::StorageFailed("unexpected precondition failure".into())
            }
            StoreError::Failed(d) => ApiError::StorageFailed(d),
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(err: PipelineError) -> Self {
        match err {
            PipelineError::SourceTooLarge(m) => ApiError::SourceTooLarge(m),
            PipelineError::Unsupported(m) | PipelineError::Undecodable(m) => {
                ApiError::UnsupportedImage(m)
            }
            PipelineError::TooComplex(m) => ApiError::SourceTooComplex(m),
            PipelineError::LosesTransparency(m) => ApiError::LosesTransparency(m),
            PipelineError::Encode(m) => ApiError::Internal(m),
        }
    }
}

/// The JSON error response for `err`, `no-store`. 5xx bodies say only what the caller can
/// act on; the detail goes to the log.
pub fn error_response(err: &ApiError) -> Response<Body> {
    error_response_cached(err, 0)
}

/// [`error_response`], with `Cache-Control: max-age={terminal_max_age}` when the error is
/// [terminal](ApiError::is_terminal) and the age is not 0. Not `public`: CloudFront caches
/// it all the same (it caches 404 by Cache-Control; it never caches 413 or 422, which the
/// process remembers instead), and a private path's answer is not for shared caches.
pub fn error_response_cached(err: &ApiError, terminal_max_age: u64) -> Response<Body> {
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(code = err.code(), detail = ?err, "request failed");
    } else {
        tracing::info!(code = err.code(), message = %err, "request refused");
    }
    let body = serde_json::json!({ "code": err.code(), "message": err.to_string() }).to_string();
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let cache_control = match err.is_terminal() && terminal_max_age > 0 {
        true => HeaderValue::from_str(&format!("max-age={terminal_max_age}")),
        false => Ok(HeaderValue::from_static("no-store")),
    };
    let cache_control = cache_control.unwrap_or(HeaderValue::from_static("no-store"));
    headers.insert(header::CACHE_CONTROL, cache_control);
    resp
}
