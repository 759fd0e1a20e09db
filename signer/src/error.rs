//! Every answer the signer gives other than a success: [`ApiError`], whose status and stable
//! code are each one exhaustive match (a new variant must choose both, never falling into a
//! 500), the conversions from the signing and S3 errors at the boundary, and the JSON body
//! they all share ([`error_response`]). Kept apart from the routes so the whole error
//! vocabulary reads in one place; `handler` re-exports both names.

use http::{header, HeaderValue, StatusCode};
use keyspace::routing::NotCarried;
use lambda_http::{Body, Response};
use serde_json::json;

use crate::cloudfront::SignError;
use crate::handler::json_response;
use crate::presign::S3Error;

/// Everything the handler can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// ORIGIN_VERIFY_SECRET is set and the request lacks it: it did not come through the
    /// distribution (for example, straight to the execute-api URL).
    #[error("requests are accepted only through the CloudFront distribution")]
    OriginNotVerified,
    /// No such route.
    #[error("no route for {0}")]
    NoRoute(String),
    /// The route exists with another method.
    #[error("use {0} for this route")]
    MethodNotAllowed(&'static str),
    /// No JWT claims with a subject: the request did not pass the authorizer.
    #[error("sign in first: no identity in the request")]
    Unauthenticated,
    /// The caller may not sign this.
    #[error("{0}")]
    Forbidden(String),
    /// The body is not the JSON this route takes.
    #[error("invalid request body: {0}")]
    BadBody(String),
    /// A field has a value we cannot use.
    #[error("{0}")]
    InvalidField(String),
    /// `bind_to_ip` was asked, and the request carries no usable viewer address.
    #[error(
        "bind_to_ip needs the viewer's address, and {0}: the request did not come through the \
         distribution's viewer-address function"
    )]
    ViewerAddressUnavailable(&'static str),
    /// An upload name whose key the delivery mode cannot carry to the resizer on a miss.
    #[error("{0}; rename the file, or deploy with DeliveryMode=failover, which carries every key")]
    KeyNotDeliverable(NotCarried),
    /// The upload's Content-Type is not an image type we resize.
    #[error(
        "content type {0:?} is not allowed; use image/jpeg, image/png, image/webp or image/gif"
    )]
    UnsupportedContentType(String),
    /// The declared upload is larger than MAX_UPLOAD_BYTES.
    #[error("{size} bytes is over the upload limit of {limit} bytes")]
    UploadTooLarge {
        /// Declared size.
        size: u64,
        /// MAX_UPLOAD_BYTES.
        limit: u64,
    },
    /// The requested lifetime is over SIGNED_URL_MAX_TTL.
    #[error("expires_in {asked} is over the maximum of {max} seconds")]
    LifetimeTooLong {
        /// Asked, seconds.
        asked: u64,
        /// SIGNED_URL_MAX_TTL, seconds.
        max: u64,
    },
    /// The multipart upload does not exist any more.
    #[error("no such multipart upload")]
    UploadNotFound,
    /// The part list does not complete the upload.
    #[error("the parts do not complete the upload")]
    InvalidParts(String),
    /// The key already exists (originals are never overwritten).
    #[error("the key already exists")]
    AlreadyExists,
    /// S3 timed out.
    #[error("storage timed out")]
    StorageTimeout(String),
    /// S3 unreachable or throttling.
    #[error("storage unavailable, retry later")]
    StorageUnavailable(String),
    /// S3 answered with an error we cannot act on.
    #[error("storage error")]
    StorageFailed(String),
    /// A bug or resource failure on our side.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status. Exhaustive on purpose: a new variant must choose its status here.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::OriginNotVerified => StatusCode::FORBIDDEN,
            Self::NoRoute(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadBody(_) => StatusCode::BAD_REQUEST,
            Self::InvalidField(_) => StatusCode::BAD_REQUEST,
            Self::ViewerAddressUnavailable(_) => StatusCode::BAD_REQUEST,
            Self::KeyNotDeliverable(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedContentType(_) => StatusCode::BAD_REQUEST,
            Self::UploadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::LifetimeTooLong { .. } => StatusCode::BAD_REQUEST,
            Self::UploadNotFound => StatusCode::NOT_FOUND,
            Self::InvalidParts(_) => StatusCode::BAD_REQUEST,
            Self::AlreadyExists => StatusCode::CONFLICT,
            Self::StorageTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::StorageUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::StorageFailed(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the JSON body. Exhaustive like [`ApiError::status`].
    pub fn code(&self) -> &'static str {
        match self {
            Self::OriginNotVerified => "origin-not-verified",
            Self::NoRoute(_) => "not-found",
            Self::MethodNotAllowed(_) => "method-not-allowed",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::BadBody(_) => "invalid-body",
            Self::InvalidField(_) => "invalid-field",
            Self::ViewerAddressUnavailable(_) => "viewer-address-unavailable",
            Self::KeyNotDeliverable(_) => "key-not-deliverable",
            Self::UnsupportedContentType(_) => "unsupported-content-type",
            Self::UploadTooLarge { .. } => "upload-too-large",
            Self::LifetimeTooLong { .. } => "lifetime-too-long",
            Self::UploadNotFound => "upload-not-found",
            Self::InvalidParts(_) => "invalid-parts",
            Self::AlreadyExists => "already-exists",
            Self::StorageTimeout(_) => "storage-timeout",
            Self::StorageUnavailable(_) => "storage-unavailable",
            Self::StorageFailed(_) => "storage-error",
            Self::Internal(_) => "internal-error",
        }
    }
}

impl From<S3Error> for ApiError {
    fn from(e: S3Error) -> Self {
        match e {
            S3Error::NoSuchUpload => Self::UploadNotFound,
            S3Error::InvalidParts(d) => Self::InvalidParts(d),
            S3Error::AlreadyExists => Self::AlreadyExists,
            S3Error::Timeout(d) => Self::StorageTimeout(d),
            S3Error::Unavailable(d) => Self::StorageUnavailable(d),
            S3Error::Credentials(d) | S3Error::Failed(d) => Self::StorageFailed(d),
        }
    }
}

impl From<SignError> for ApiError {
    fn from(e: SignError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// The JSON error response for `err`; 5xx details go to the log, not the body.
pub fn error_response(err: &ApiError) -> Response<Body> {
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(code = err.code(), detail = ?err, "request failed");
    } else {
        tracing::info!(code = err.code(), message = %err, "request refused");
    }
    let mut resp = json_response(json!({ "code": err.code(), "message": err.to_string() }));
    *resp.status_mut() = status;
    if let ApiError::MethodNotAllowed(allowed) = err {
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allowed));
    }
    resp
}
