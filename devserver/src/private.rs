//! The CloudFront-like private-path check: requests for paths matching PRIVATE_PATHS
//! need a valid signed URL or signed cookies from the trusted key group, as a CloudFront
//! cache behaviour with trusted key groups requires. Refusals are 403 with CloudFront's
//! XML error body; the `x-devserver-refusal` header names the reason (a stable code).

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use signer::cloudfront::{Refusal, SignedRequest, TrustedKeys};
use keyspace::{check_private_shape, PrivatePaths, ShapeError};

/// Why a private request was refused: by the viewer-request shape check (the CloudFront
/// Function's job in AWS) or by the signature check (CloudFront's trusted key group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Not in the one shape grants are written for.
    Shape(ShapeError),
    /// No valid signature.
    Signature(Refusal),
}

impl Denied {
    /// The stable code in `x-devserver-refusal`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Shape(ShapeError::Query) => "query-not-allowed",
            Self::Shape(ShapeError::NestedPrefix | ShapeError::DotSegment) => "non-canonical-path",
            Self::Signature(refusal) => refusal.code(),
        }
    }
}

/// The check, configured once.
pub struct PrivateGuard {
    /// Which paths need a signature.
    pub paths: PrivatePaths,
    /// The trusted key group.
    pub keys: TrustedKeys,
}

impl PrivateGuard {
    /// `Ok` when `path` is public, or when the request has the private shape and carries
    /// a valid signature for `url` (the full URL, query included).
    pub fn check(
        &self,
        path: &str,
        query: Option<&str>,
        url: &str,
        headers: &HeaderMap,
        client_ip: IpAddr,
    ) -> Result<(), Denied> {
        // Matched on the path as sent and as decoded: S3 decodes `%70rivate/...` to the
        // key `private/...`, so an encoded spelling must not slip past the check.
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        if !self.paths.is_private(path) && !self.paths.is_private(&decoded) {
            return Ok(());
        }
        let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
        check_private_shape(decoded, query).map_err(Denied::Shape)?;
        let cookie_header = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.keys
            .verify(&SignedRequest { url, cookie_header, client_ip, now })
            .map(|_| ())
            .map_err(Denied::Signature)
    }
}

/// CloudFront's 403 for a refused signature.
pub fn refused(denied: Denied) -> Response<Full<Bytes>> {
    let Denied::Signature(refusal) = denied else {
        return xml_403("AccessDenied", "Access denied", denied.code());
    };
    let (code, message) = match refusal {
        Refusal::MissingSignature => {
            ("MissingKey", "Missing Key-Pair-Id query parameter or cookie value")
        }
        Refusal::UnknownKey => ("InvalidKey", "Unknown Key"),
        Refusal::Malformed(_) => ("MalformedPolicy", "Malformed signature parameters"),
        Refusal::BadSignature
        | Refusal::Expired
        | Refusal::NotYetValid
        | Refusal::WrongIp
        | Refusal::WrongResource => ("AccessDenied", "Access denied"),
    };
    xml_403(code, message, denied.code())
}

fn xml_403(code: &str, message: &str, reason: &'static str) -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-devserver-refusal", HeaderValue::from_static(reason));
    resp
}
