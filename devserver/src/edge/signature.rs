//! A behaviour with trusted key groups: CloudFront checks the signed URL or signed cookies
//! (`signer::cloudfront::TrustedKeys`, the same verifier the signer's tests hold to
//! botocore, the AWS CLI and OpenSSL) and refuses with its own XML 403s, worded as
//! CloudFront words them. The XML carries CloudFront's code only; the finer reason goes to
//! the devserver's refusal log.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use signer::cloudfront::{Refusal, SignedRequest, TrustedKeys};

/// Checks the signature of a request for `url` (the viewer's URL: the distribution's own
/// origin, the raw path and the query as sent).
pub fn check(
    keys: &TrustedKeys,
    url: &str,
    headers: &HeaderMap,
    client_ip: IpAddr,
) -> Result<(), Refusal> {
    let cookie_header = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    keys.verify(&SignedRequest { url, cookie_header, client_ip, now }).map(|_| ())
}

/// CloudFront's `<Code>` and `<Message>` for a refusal.
pub fn cloudfront_error(refusal: &Refusal) -> (&'static str, &'static str) {
    match refusal {
        Refusal::MissingSignature | Refusal::Malformed("missing Key-Pair-Id") => {
            ("MissingKey", "Missing Key-Pair-Id query parameter or cookie value")
        }
        Refusal::UnknownKey => ("InvalidKey", "Unknown Key"),
        Refusal::Malformed("missing Signature" | "Signature is not base64") => {
            ("MalformedSignature", "Could not unencode Signature")
        }
        Refusal::Malformed(_) => ("MalformedPolicy", "Malformed Policy"),
        Refusal::BadSignature
        | Refusal::Expired
        | Refusal::NotYetValid
        | Refusal::WrongIp
        | Refusal::WrongResource => ("AccessDenied", "Access denied"),
    }
}

/// CloudFront's 403 for a refused signature: `text/xml`, the XML body byte for byte (no
/// whitespace, no request id), no Cache-Control.
pub fn refused(refusal: &Refusal) -> Response<Full<Bytes>> {
    let (code, message) = cloudfront_error(refusal);
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_worded_as_cloudfront_words_them() {
        // Captured CloudFront responses had these Content-Lengths (110 and 146 bytes).
        let len = |r: Refusal| refused(&r).into_body();
        use http_body_util::BodyExt as _;
        let size = |r| {
            let body = len(r);
            futures::executor::block_on(body.collect()).unwrap().to_bytes().len()
        };
        assert_eq!(size(Refusal::BadSignature), 110);
        assert_eq!(size(Refusal::MissingSignature), 146);
        assert_eq!(cloudfront_error(&Refusal::UnknownKey), ("InvalidKey", "Unknown Key"));
        assert_eq!(
            cloudfront_error(&Refusal::Malformed("Signature is not base64")).0,
            "MalformedSignature"
        );
        assert_eq!(cloudfront_error(&Refusal::Malformed("unreadable Policy")).0, "MalformedPolicy");
        assert_eq!(cloudfront_error(&Refusal::Expired).0, "AccessDenied");
    }
}
