//! Origin access control: CloudFront signs each request to an OAC origin with SigV4 (the
//! bucket's REST endpoint, service `s3`; a function URL, service `lambda`), and the origin
//! checks the signature. The edge signs with [`sign`]; the devserver's function URL, whose
//! auth type is AWS_IAM, refuses what [`verify`] does not accept, as Lambda does.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign as sigv4_sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
    SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use http::HeaderMap;

/// The identity CloudFront signs with, as far as the devserver's origins know it.
#[derive(Debug, Clone)]
pub struct Signer {
    /// Access key and secret.
    pub credentials: Credentials,
    /// The region signed for.
    pub region: String,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Authorization: AWS4-HMAC-SHA256 ...` header, or one that does not parse.
    #[error("missing or malformed SigV4 Authorization header")]
    Missing,
    /// Another access key, region or service.
    #[error("the credential scope does not match")]
    WrongScope,
    /// The signature does not match the request.
    #[error("the signature does not match")]
    Mismatch,
    /// `x-amz-date` more than 15 minutes away from now.
    #[error("the request time is too skewed")]
    Skewed,
}

fn settings(service: &str) -> SigningSettings {
    let mut settings = SigningSettings::default();
    if service == "s3" {
        // S3 signs the path as sent: no second encoding, no normalisation.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        // S3 requires the payload hash in x-amz-content-sha256.
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    settings
}

fn signature<'a>(
    signer: &Signer,
    service: &str,
    method: &'a str,
    uri: &'a str,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: &'a [u8],
    time: SystemTime,
) -> Option<(aws_sigv4::http_request::SigningInstructions, String)> {
    let identity = signer.credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&signer.region)
        .name(service)
        .time(time)
        .settings(settings(service))
        .build()
        .ok()?
        .into();
    let request = SignableRequest::new(method, uri, headers, SignableBody::Bytes(body)).ok()?;
    sigv4_sign(request, &params).ok().map(|out| out.into_parts())
}

/// Signs `request` (whose URI is absolute) for `service`, as CloudFront's origin access
/// control does, adding the `Authorization` and `x-amz-date` headers.
pub fn sign<B>(signer: &Signer, service: &str, request: &mut http::Request<B>, body: &[u8]) {
    let method = request.method().as_str().to_owned();
    let uri = request.uri().to_string();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
        .collect();
    let signed = signature(
        signer,
        service,
        &method,
        &uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        body,
        SystemTime::now(),
    );
    if let Some((instructions, _)) = signed {
        instructions.apply_to_request_http1x(request);
    }
}

/// Checks the SigV4 signature of a request that arrived for `service` at `host`.
pub fn verify(
    signer: &Signer,
    service: &str,
    method: &str,
    host: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("AWS4-HMAC-SHA256 "))
        .ok_or(SignatureError::Missing)?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut given = None;
    for part in auth.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => given = Some(v),
            _ => {}
        }
    }
    let (credential, signed_headers, given) = match (credential, signed_headers, given) {
        (Some(c), Some(h), Some(s)) => (c, h, s),
        _ => return Err(SignatureError::Missing),
    };
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5
        || scope[0] != signer.credentials.access_key_id()
        || scope[2] != signer.region
        || scope[3] != service
    {
        return Err(SignatureError::WrongScope);
    }
    let date =
        headers.get("x-amz-date").and_then(|v| v.to_str().ok()).ok_or(SignatureError::Missing)?;
    let time = parse_amz_date(date).ok_or(SignatureError::Missing)?;
    let skew = SystemTime::now()
        .duration_since(time)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    if skew > Duration::from_secs(15 * 60) {
        return Err(SignatureError::Skewed);
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    let mut values: Vec<(String, String)> = Vec::new();
    for name in &names {
        // x-amz-date is added again by the signing itself.
        if *name == "x-amz-date" {
            continue;
        }
        let joined = headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        let value = if *name == "host" && joined.is_empty() { host.to_owned() } else { joined };
        values.push(((*name).to_owned(), value));
    }
    let uri = format!("http://{host}{path_and_query}");
    let computed = signature(
        signer,
        service,
        method,
        &uri,
        values.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        body,
        time,
    )
    .map(|(_, s)| s)
    .ok_or(SignatureError::Mismatch)?;
    if computed.len() == given.len() && openssl::memcmp::eq(computed.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// `20261125T235959Z`.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let f = aws_smithy_types::DateTime::from_str(
        &format!(
            "{}-{}-{}T{}:{}:{}Z",
            s.get(0..4)?,
            s.get(4..6)?,
            s.get(6..8)?,
            s.get(9..11)?,
            s.get(11..13)?,
            s.get(13..15)?
        ),
        aws_smithy_types::date_time::Format::DateTime,
    )
    .ok()?;
    SystemTime::try_from(f).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str) -> Signer {
        Signer {
            credentials: Credentials::new("AKIDEDGE", secret, None, None, "test"),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn what_the_edge_signs_the_origin_accepts_and_nothing_else() {
        let edge = signer("edge-secret");
        let mut req = http::Request::builder()
            .method("GET")
            .uri("http://127.0.0.1:9/300x300/a%20b.jpg")
            .header("host", "127.0.0.1:9")
            .header("x-origin-verify", "s3cret")
            .body(())
            .unwrap();
        sign(&edge, "lambda", &mut req, b"");
        let check = |s: &Signer, path: &str| {
            verify(s, "lambda", "GET", "127.0.0.1:9", path, req.headers(), b"")
        };
        assert_eq!(check(&edge, "/300x300/a%20b.jpg"), Ok(()));
        assert_eq!(check(&edge, "/300x300/other.jpg"), Err(SignatureError::Mismatch));
        assert_eq!(check(&signer("other"), "/300x300/a%20b.jpg"), Err(SignatureError::Mismatch));
        let unsigned = HeaderMap::new();
        assert_eq!(
            verify(&edge, "lambda", "GET", "127.0.0.1:9", "/", &unsigned, b""),
            Err(SignatureError::Missing)
        );
    }
}
