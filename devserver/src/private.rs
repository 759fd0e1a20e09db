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
use signer::pattern::PrivatePaths;

/// The check, configured once.
pub struct PrivateGuard {
    /// Which paths need a signature.
    pub paths: PrivatePaths,
    /// The trusted key group.
    pub keys: TrustedKeys,
}

impl PrivateGuard {
    /// `Ok` when `path` is public, or when the request carries a valid signature for `url`
    /// (the full URL as requested, query included).
    pub fn check(
        &self,
        path: &str,
        url: &str,
        headers: &HeaderMap,
        client_ip: IpAddr,
    ) -> Result<(), Refusal> {
        // Matched on the path as sent and as decoded: S3 decodes `%70rivate/...` to the
        // key `private/...`, so an encoded spelling must not slip past the check.
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        if !self.paths.is_private(path) && !self.paths.is_private(&decoded) {
            return Ok(());
        }
        let cookie_header = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.keys.verify(&SignedRequest { url, cookie_header, client_ip, now }).map(|_| ())
    }
}

/// CloudFront's 403 for a refused signature.
pub fn refused(refusal: Refusal) -> Response<Full<Bytes>> {
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
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-devserver-refusal", HeaderValue::from_static(refusal.code()));
    resp
}
