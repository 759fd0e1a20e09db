//! The signer Lambda's HTTP API (API Gateway HTTP API, payload v2). JSON in, JSON out;
//! every route needs the caller's identity from the JWT authorizer's claims.
//!
//! The same `handle` runs under lambda_http in AWS and mounted in-process by the
//! devserver. It never fails: every error becomes a JSON response through
//! [`ApiError::status`], one exhaustive match.
//!
//! What it takes from the edge (CloudFront, in front of API Gateway), and nothing else:
//! - [`ORIGIN_VERIFY_HEADER`], the origin custom header CloudFront adds, which proves the
//!   request came through the distribution when ORIGIN_VERIFY_SECRET is set;
//! - [`VIEWER_ADDRESS_HEADER`], the viewer's address as the distribution's viewer-address
//!   function wrote it. `requestContext.http.sourceIp` is CloudFront's edge, never the
//!   viewer, so it is not read.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{header, HeaderValue, Method, StatusCode};
use keyspace::is_size_segment;
use keyspace::routing::{carried, NotCarried};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use openssl::sha::sha256;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::cloudfront::{CloudFrontSigner, SignError};
use crate::config::Config;
use crate::identity::{is_gallery_id, Identity, GALLERY_PREFIX};
use crate::policy::{Ipv4Cidr, Policy};
use crate::presign::{PostRules, Presigner, S3Error};

/// The content types users may upload, and the extension their key gets.
pub const UPLOAD_TYPES: [(&str, &str); 4] =
    [("image/jpeg", "jpg"), ("image/png", "png"), ("image/webp", "webp"), ("image/gif", "gif")];

/// The header CloudFront adds to every request it sends to the API (an origin custom
/// header, overwriting any the viewer sent), holding ORIGIN_VERIFY_SECRET.
pub const ORIGIN_VERIFY_HEADER: &str = "x-origin-verify";
/// The header the distribution's viewer-address function (a CloudFront Function on
/// `/api/*`) sets from `event.viewer.ip`, overwriting any the viewer sent: the bare IPv4 or
/// IPv6 address, no port.
pub const VIEWER_ADDRESS_HEADER: &str = "x-viewer-address";
/// S3's longest key, in bytes of UTF-8.
const MAX_KEY_BYTES: usize = 1024;
/// S3's largest part count.
const MAX_PARTS: u64 = 10_000;
/// S3's largest single PUT or POST upload (5 GiB); larger needs multipart.
const MAX_SINGLE_UPLOAD: u64 = 5 * 1024 * 1024 * 1024;
/// Every cookie CloudFront reads.
const COOKIE_NAMES: [&str; 5] = [
    "CloudFront-Policy",
    "CloudFront-Expires",
    "CloudFront-Signature",
    "CloudFront-Key-Pair-Id",
    "CloudFront-Hash-Algorithm",
];

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

/// The signer's state, built once at start-up.
#[derive(Debug, Clone)]
pub struct App {
    /// Parsed configuration.
    pub config: Config,
    /// The CloudFront signer (key parsed once).
    pub signer: CloudFrontSigner,
    /// The S3 presigner.
    pub presigner: Presigner,
}

/// Answers one request at the current time.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    handle_at(app, req, SystemTime::now()).await
}

/// Answers one request as if at `now` (tests pin the clock).
pub async fn handle_at(app: &App, req: Request, now: SystemTime) -> Response<Body> {
    match route(app, &req, now).await {
        Ok(response) => response,
        Err(err) => error_response(&err),
    }
}

/// Refuses a request without ORIGIN_VERIFY_SECRET in [`ORIGIN_VERIFY_HEADER`], when the
/// secret is set.
fn verify_origin(config: &Config, req: &Request) -> Result<(), ApiError> {
    let Some(secret) = &config.origin_secret else { return Ok(()) };
    let sent = req.headers().get(ORIGIN_VERIFY_HEADER).map_or(&[][..], HeaderValue::as_bytes);
    // Compared as digests: constant time needs equal lengths, and the time taken then says
    // nothing about the secret, not even its length.
    if openssl::memcmp::eq(&sha256(sent), &sha256(secret.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::OriginNotVerified)
    }
}

/// The viewer's address, from [`VIEWER_ADDRESS_HEADER`] only: exactly one header holding
/// exactly one address. A list (`a, b`) is refused rather than guessed from.
fn viewer_address(req: &Request) -> Result<IpAddr, ApiError> {
    let mut values = req.headers().get_all(VIEWER_ADDRESS_HEADER).iter();
    match (values.next(), values.next()) {
        (None, _) => Err(ApiError::ViewerAddressUnavailable("it has no x-viewer-address header")),
        (Some(_), Some(_)) => {
            Err(ApiError::ViewerAddressUnavailable("it has more than one x-viewer-address header"))
        }
        (Some(value), None) => value.to_str().ok().and_then(|v| v.parse().ok()).ok_or(
            ApiError::ViewerAddressUnavailable("its x-viewer-address is not one IP address"),
        ),
    }
}

/// The caller's identity, from the JWT claims API Gateway's authorizer put in the request
/// context.
fn caller(app: &App, req: &Request) -> Result<Identity, ApiError> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Err(ApiError::Unauthenticated);
    };
    let claims = ctx
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .map(|jwt| &jwt.claims)
        .ok_or(ApiError::Unauthenticated)?;
    Identity::from_claims(claims, &app.config.gallery_claim).map_err(|_| ApiError::Unauthenticated)
}

fn body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    let bytes = if bytes.iter().all(|b| b.is_ascii_whitespace()) { b"{}" as &[u8] } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadBody(e.to_string()))
}

async fn route(app: &App, req: &Request, now: SystemTime) -> Result<Response<Body>, ApiError> {
    verify_origin(&app.config, req)?;
    // API Gateway may prefix a stage name (`/prod/api/...`); routes start at `/api/`.
    let full = req.uri().path();
    let path = full.find("/api/").map(|i| &full[i..]).unwrap_or(full);
    let method = req.method();
    let expect = |wanted: &'static str| -> Result<(), ApiError> {
        if method.as_str() == wanted || (wanted == "GET" && method == Method::HEAD) {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed(wanted))
        }
    };
    match path {
        "/api/whoami" => {
            expect("GET")?;
            let id = caller(app, req)?;
            Ok(json_response(json!({
                "user": id.subject,
                "upload_prefix": id.upload_prefix(),
                "galleries": id.galleries,
            })))
        }
        "/api/sign-url" => {
            expect("POST")?;
            let id = caller(app, req)?;
            sign_url(app, &id, viewer_address(req), body(req)?, now)
        }
        "/api/sign-cookies" => {
            expect("POST")?;
            let id = caller(app, req)?;
            sign_cookies(app, &id, viewer_address(req), body(req)?, now)
        }
        "/api/clear-cookies" => {
            expect("POST")?;
            caller(app, req)?;
            let mut resp = json_response(json!({ "cleared": true }));
            for name in COOKIE_NAMES {
                append_cookie(&mut resp, &cookie_header(&app.config, name, "", 0))?;
            }
            Ok(resp)
        }
        "/api/upload-url" => {
            expect("POST")?;
            let id = caller(app, req)?;
            upload_url(app, &id, body(req)?, now).await
        }
        "/api/upload-form" => {
            expect("POST")?;
            let id = caller(app, req)?;
            upload_form(app, &id, body(req)?, now).await
        }
        "/api/multipart/begin" => {
            expect("POST")?;
            let id = caller(app, req)?;
            multipart_begin(app, &id, body(req)?, now).await
        }
        "/api/multipart/complete" => {
            expect("POST")?;
            let id = caller(app, req)?;
            let input: MultipartComplete = body(req)?;
            own_upload_key(&id, &input.key)?;
            let parts: Vec<(i32, String)> =
                input.parts.into_iter().map(|p| (p.part_number, p.etag)).collect();
            if parts.is_empty() {
                return Err(ApiError::InvalidParts("no parts".into()));
            }
            let etag =
                app.presigner.complete_multipart(&input.key, &input.upload_id, &parts).await?;
            Ok(json_response(json!({ "key": input.key, "etag": etag })))
        }
        "/api/multipart/abort" => {
            expect("POST")?;
            let id = caller(app, req)?;
            let input: MultipartRef = body(req)?;
            own_upload_key(&id, &input.key)?;
            app.presigner.abort_multipart(&input.key, &input.upload_id).await?;
            Ok(json_response(json!({ "key": input.key, "aborted": true })))
        }
        "/api/download-url" => {
            expect("POST")?;
            let id = caller(app, req)?;
            let input: DownloadUrl = body(req)?;
            if !id.may_read(&input.key) {
                return Err(ApiError::Forbidden(format!("you may not read {:?}", input.key)));
            }
            let ttl = lifetime(app, input.expires_in)?;
            let presigned = app.presigner.get(&input.key, now, ttl).await?;
            Ok(json_response(json!({
                "url": presigned.url,
                "expires": epoch(now).saturating_add(ttl.as_secs()),
            })))
        }
        other => Err(ApiError::NoRoute(other.to_owned())),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUrl {
    /// `/300x300/private/galleries/g1/cat.jpg`: a path under PUBLIC_BASE_URL.
    path: String,
    expires_in: Option<u64>,
    #[serde(default)]
    bind_to_ip: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignCookies {
    gallery: Option<String>,
    #[serde(default)]
    uploads: bool,
    expires_in: Option<u64>,
    #[serde(default)]
    bind_to_ip: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadUrl {
    content_type: String,
    size: u64,
    /// The key under the user's prefix; a fresh `{uuid}.{ext}` when absent.
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadForm {
    content_type: String,
    max_bytes: Option<u64>,
    /// The key under the user's prefix; a fresh `{uuid}.{ext}` when absent.
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MultipartRef {
    key: String,
    upload_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletedPart {
    part_number: i32,
    etag: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MultipartComplete {
    key: String,
    upload_id: String,
    parts: Vec<CompletedPart>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadUrl {
    key: String,
    expires_in: Option<u64>,
}

fn epoch(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn lifetime(app: &App, asked: Option<u64>) -> Result<Duration, ApiError> {
    match asked {
        None => Ok(app.config.default_ttl),
        Some(0) => Err(ApiError::InvalidField("expires_in must be at least 1 second".into())),
        Some(s) if s > app.config.max_ttl.as_secs() => {
            Err(ApiError::LifetimeTooLong { asked: s, max: app.config.max_ttl.as_secs() })
        }
        Some(s) => Ok(Duration::from_secs(s)),
    }
}

/// The policy's IpAddress condition: none unless `bind` asks, else the viewer's address,
/// which is needed only then (a request without it may still sign unbound).
fn ip_condition(
    bind: bool,
    viewer: Result<IpAddr, ApiError>,
) -> Result<Option<Ipv4Cidr>, ApiError> {
    if !bind {
        return Ok(None);
    }
    match viewer? {
        IpAddr::V4(v4) => Ok(Some(
            Ipv4Cidr::parse(&v4.to_string()).map_err(|e| ApiError::Internal(e.to_string()))?,
        )),
        IpAddr::V6(_) => Err(ApiError::InvalidField(
            "bind_to_ip needs an IPv4 caller (CloudFront policies are IPv4 only)".into(),
        )),
    }
}

/// The original key a public path refers to: the path without `/` and without a size
/// prefix, percent-decoded.
fn original_key(path: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::InvalidField(format!(
            "{path:?} is not a path like /300x300/private/galleries/g1/cat.jpg"
        ))
    };
    let rest = path.strip_prefix('/').ok_or_else(invalid)?;
    // RFC 3986 path characters only: no `*` (it would be a wildcard in a custom policy) and
    // nothing a browser would re-encode on the way (the signature covers the exact bytes).
    let path_char = |b: u8| b.is_ascii_alphanumeric() || b"-._~/%!$&'()+,;=:@".contains(&b);
    if rest.is_empty() || path.len() > 2048 || !path.bytes().all(path_char) {
        return Err(invalid());
    }
    let decoded =
        percent_encoding::percent_decode_str(rest).decode_utf8().map_err(|_| invalid())?;
    if keyspace::check_private_shape(&decoded, None).is_err() {
        return Err(invalid());
    }
    let key = match decoded.split_once('/') {
        Some((first, key)) if is_size_segment(first) => key,
        _ => &decoded,
    };
    Ok(key.to_owned())
}

fn sign_url(
    app: &App,
    id: &Identity,
    viewer: Result<IpAddr, ApiError>,
    input: SignUrl,
    now: SystemTime,
) -> Result<Response<Body>, ApiError> {
    let key = original_key(&input.path)?;
    if !id.may_read(&key) {
        return Err(ApiError::Forbidden(format!("you may not sign {:?}", input.path)));
    }
    let ttl = lifetime(app, input.expires_in)?;
    let url = format!("{}{}", app.config.public_base_url, input.path);
    let expires = epoch(now).saturating_add(ttl.as_secs());
    let policy = Policy {
        resource: Some(url.clone()),
        date_less_than: expires,
        date_greater_than: None,
        ip_address: ip_condition(input.bind_to_ip, viewer)?,
    };
    let signed = app.signer.sign_url(&url, &policy)?;
    Ok(json_response(json!({ "url": signed, "expires": expires })))
}

fn sign_cookies(
    app: &App,
    id: &Identity,
    viewer: Result<IpAddr, ApiError>,
    input: SignCookies,
    now: SystemTime,
) -> Result<Response<Body>, ApiError> {
    let base = &app.config.public_base_url;
    let resource = match (&input.gallery, input.uploads) {
        (Some(gallery), false) => {
            if !is_gallery_id(gallery) {
                return Err(ApiError::InvalidField(format!("{gallery:?} is not a gallery id")));
            }
            if !id.may_open_gallery(gallery) {
                return Err(ApiError::Forbidden(format!(
                    "gallery {gallery:?} is not granted to you"
                )));
            }
            // `*` spans `/`: the originals and every size prefix of the gallery.
            format!("{base}/*{GALLERY_PREFIX}{gallery}/*")
        }
        (None, true) => format!("{base}/*{}*", id.upload_prefix()),
        _ => {
            return Err(ApiError::InvalidField(
                "give either \"gallery\": \"<id>\" or \"uploads\": true".into(),
            ))
        }
    };
    let ttl = lifetime(app, input.expires_in)?;
    let expires = epoch(now).saturating_add(ttl.as_secs());
    let policy = Policy {
        resource: Some(resource.clone()),
        date_less_than: expires,
        date_greater_than: None,
        ip_address: ip_condition(input.bind_to_ip, viewer)?,
    };
    let cookies = app.signer.sign_cookies(&policy)?;
    let mut resp = json_response(json!({
        "resource": resource,
        "expires": expires,
        "cookies": cookies.pairs.iter().map(|(n, v)| (n.to_string(), Value::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
    }));
    for (name, value) in &cookies.pairs {
        append_cookie(&mut resp, &cookie_header(&app.config, name, value, ttl.as_secs()))?;
    }
    // One cookie set per domain: a stale CloudFront-Expires or CloudFront-Hash-Algorithm
    // from an earlier set would make CloudFront read this one as malformed.
    for stale in COOKIE_NAMES.iter().filter(|n| !cookies.pairs.iter().any(|(p, _)| p == *n)) {
        append_cookie(&mut resp, &cookie_header(&app.config, stale, "", 0))?;
    }
    Ok(resp)
}

fn cookie_header(config: &Config, name: &str, value: &str, max_age: u64) -> String {
    let mut cookie = format!("{name}={value}; Path=/; Max-Age={max_age}");
    if let Some(domain) = &config.cookie_domain {
        cookie.push_str(&format!("; Domain={domain}"));
    }
    if config.cookie_secure {
        cookie.push_str("; Secure");
    }
    // Lax: sent with <img> loads and top-level navigation from this site, not with
    // cross-site subrequests.
    cookie.push_str("; HttpOnly; SameSite=Lax");
    cookie
}

fn append_cookie(resp: &mut Response<Body>, cookie: &str) -> Result<(), ApiError> {
    let value = HeaderValue::from_str(cookie).map_err(|e| ApiError::Internal(e.to_string()))?;
    resp.headers_mut().append(header::SET_COOKIE, value);
    Ok(())
}

fn upload_extension(content_type: &str) -> Result<&'static str, ApiError> {
    UPLOAD_TYPES
        .iter()
        .find(|(t, _)| *t == content_type)
        .map(|(_, ext)| *ext)
        .ok_or_else(|| ApiError::UnsupportedContentType(content_type.to_owned()))
}

/// Why `name` cannot follow `uploads/{user}/`: the resizer's rules for an original key
/// (checked here, before anything is signed, rather than at the first resize), plus the
/// path guard's. `key` is the whole key the name makes.
fn check_upload_name(name: &str, key: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    if name.split('/').any(str::is_empty) {
        return Err(format!(
            "name {name:?} has an empty segment (a leading, trailing or double '/')"
        ));
    }
    if name.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("name {name:?} has a '.' or '..' segment"));
    }
    if name.contains('\\') {
        return Err(format!("name {name:?} contains a backslash"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("name {name:?} contains a control character"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!("the key would be {} bytes; S3's limit is {MAX_KEY_BYTES}", key.len()));
    }
    // The resizer refuses an original that starts with a size (no chains); a name is held
    // to the same rule, so it is a valid original key wherever it is put.
    if name.split('/').next().is_some_and(is_size_segment) {
        return Err(format!("name {name:?} starts with a size segment"));
    }
    // The path guard refuses a grant prefix inside a private key (`.../uploads/bob/...`):
    // such an upload could never be served.
    keyspace::check_private_shape(key, None).map_err(|e| format!("name {name:?}: {e}"))
}

/// The key an upload goes to: `uploads/{user}/{name}` when the caller names it, else a
/// fresh `uploads/{user}/{uuid}.{ext}`. Refused when the name is not a valid original, or
/// when the delivery mode could not carry the key to the resizer on a miss (uploads are
/// private, so `?` counts as a query private paths may not have).
fn upload_key(app: &App, id: &Identity, name: Option<&str>, ext: &str) -> Result<String, ApiError> {
    let key = match name {
        None => format!("{}{}.{ext}", id.upload_prefix(), uuid::Uuid::new_v4()),
        Some(name) => {
            let key = format!("{}{name}", id.upload_prefix());
            check_upload_name(name, &key).map_err(ApiError::InvalidField)?;
            key
        }
    };
    let config = &app.config;
    carried(&key, config.delivery_mode, config.redirect_key_encoding, true)
        .map_err(ApiError::KeyNotDeliverable)?;
    Ok(key)
}

fn check_size(app: &App, size: u64) -> Result<(), ApiError> {
    if size == 0 {
        return Err(ApiError::InvalidField("size must be at least 1 byte".into()));
    }
    if size > app.config.max_upload_bytes {
        return Err(ApiError::UploadTooLarge { size, limit: app.config.max_upload_bytes });
    }
    Ok(())
}

/// Whether `key` is one the caller may have been given to upload to (multipart complete
/// and abort name it again).
fn own_upload_key(id: &Identity, key: &str) -> Result<(), ApiError> {
    match key.strip_prefix(&id.upload_prefix()) {
        Some(name) if check_upload_name(name, key).is_ok() => Ok(()),
        _ => Err(ApiError::Forbidden(format!("{key:?} is not one of your uploads"))),
    }
}

async fn upload_url(
    app: &App,
    id: &Identity,
    input: UploadUrl,
    now: SystemTime,
) -> Result<Response<Body>, ApiError> {
    let ext = upload_extension(&input.content_type)?;
    check_size(app, input.size)?;
    if input.size > MAX_SINGLE_UPLOAD {
        return Err(ApiError::UploadTooLarge { size: input.size, limit: MAX_SINGLE_UPLOAD });
    }
    let key = upload_key(app, id, input.name.as_deref(), ext)?;
    let ttl = app.config.upload_ttl;
    let cache_control = &app.config.upload_cache_control;
    // Create-only at S3: a taken name is 412 to the PUT (If-None-Match is signed).
    let presigned =
        app.presigner.put(&key, &input.content_type, input.size, cache_control, now, ttl).await?;
    Ok(json_response(json!({
        "key": key,
        "method": presigned.method,
        "url": presigned.url,
        "headers": presigned.headers,
        "expires": epoch(now).saturating_add(ttl.as_secs()),
    })))
}

async fn upload_form(
    app: &App,
    id: &Identity,
    input: UploadForm,
    now: SystemTime,
) -> Result<Response<Body>, ApiError> {
    let ext = upload_extension(&input.content_type)?;
    let max = match input.max_bytes {
        None => app.config.max_upload_bytes,
        Some(m) => {
            check_size(app, m)?;
            m
        }
    }
    .min(MAX_SINGLE_UPLOAD);
    let key = upload_key(app, id, input.name.as_deref(), ext)?;
    // S3 has no create-only POST: a form for a taken name would replace it. A fresh uuid is
    // never taken; a chosen name is looked up (a race with another upload of the same name
    // remains, as does posting the same form twice).
    if input.name.is_some() && app.presigner.exists(&key).await? {
        return Err(ApiError::AlreadyExists);
    }
    let prefix = id.upload_prefix();
    let ttl = app.config.upload_ttl;
    let rules = PostRules {
        key: &key,
        key_prefix: &prefix,
        content_type: &input.content_type,
        cache_control: &app.config.upload_cache_control,
        length_range: (1, max),
        expires_in: ttl,
    };
    let post = app.presigner.post(&rules, now).await?;
    Ok(json_response(json!({
        "key": key,
        "url": post.url,
        "fields": post.fields.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "max_bytes": max,
        "expires": epoch(now).saturating_add(ttl.as_secs()),
    })))
}

async fn multipart_begin(
    app: &App,
    id: &Identity,
    input: UploadUrl,
    now: SystemTime,
) -> Result<Response<Body>, ApiError> {
    let ext = upload_extension(&input.content_type)?;
    check_size(app, input.size)?;
    let part_bytes = app.config.part_bytes;
    let count = input.size.div_ceil(part_bytes);
    if count > MAX_PARTS {
        return Err(ApiError::UploadTooLarge { size: input.size, limit: part_bytes * MAX_PARTS });
    }
    let key = upload_key(app, id, input.name.as_deref(), ext)?;
    // Create-only at S3: a taken name is 409 already-exists at completion.
    let upload_id = app
        .presigner
        .begin_multipart(&key, &input.content_type, &app.config.upload_cache_control)
        .await?;
    let ttl = app.config.upload_ttl;
    let mut parts = Vec::with_capacity(count as usize);
    for n in 1..=count {
        let length = if n == count { input.size - part_bytes * (count - 1) } else { part_bytes };
        let part_number = i32::try_from(n).map_err(|e| ApiError::Internal(e.to_string()))?;
        let presigned = app.presigner.part(&key, &upload_id, part_number, length, now, ttl).await?;
        parts.push(json!({
            "part_number": part_number,
            "size": length,
            "url": presigned.url,
            "headers": presigned.headers,
        }));
    }
    Ok(json_response(json!({
        "key": key,
        "upload_id": upload_id,
        "part_size": part_bytes,
        "parts": parts,
        "expires": epoch(now).saturating_add(ttl.as_secs()),
    })))
}

fn json_response(value: Value) -> Response<Body> {
    let mut resp = Response::new(Body::Text(value.to_string()));
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Signed URLs and cookies are per-user secrets: never cached.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_keys_drop_the_size_and_decode_once() {
        assert_eq!(
            original_key("/300x300/private/galleries/g1/a%20b.jpg").unwrap(),
            "private/galleries/g1/a b.jpg"
        );
        assert_eq!(
            original_key("/private/galleries/g1/a.jpg").unwrap(),
            "private/galleries/g1/a.jpg"
        );
        assert_eq!(original_key("/640x/uploads/u/a.jpg").unwrap(), "uploads/u/a.jpg");
        for bad in ["", "/", "private/a.jpg", "/a.jpg?x=1", "/a b.jpg", "/a.jpg#f"] {
            assert!(original_key(bad).is_err(), "{bad}");
        }
    }
}

/// Why the signer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The private key secret could not be read from Secrets Manager.
    #[error("CLOUDFRONT_PRIVATE_KEY_SECRET_ARN: {0}")]
    Secret(String),
    /// The private key does not parse or is not a key CloudFront accepts.
    #[error("{variable}: {source}")]
    Key {
        /// The variable the key came from.
        variable: &'static str,
        /// Why it was refused.
        source: crate::keys::KeyError,
    },
    /// No credentials for presigning.
    #[error("AWS credentials: no credentials provider is configured")]
    NoCredentials,
}

impl App {
    /// Builds the app once at start-up: reads the private key (from the PEM variable, or
    /// from Secrets Manager by ARN), parses it, and builds the S3 client.
    pub async fn build(config: Config, sdk: &aws_config::SdkConfig) -> Result<Self, StartupError> {
        use crate::config::KeySource;
        let (pem, variable) = match &config.key_source {
            KeySource::Pem(pem) => (pem.clone(), "CLOUDFRONT_PRIVATE_KEY"),
            KeySource::SecretArn(arn) => {
                let client = aws_sdk_secretsmanager::Client::new(sdk);
                let out = client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
                    StartupError::Secret(
                        aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
                    )
                })?;
                let pem = out.secret_string.ok_or_else(|| {
                    StartupError::Secret(
                        "the secret has no SecretString (store the PEM as text)".into(),
                    )
                })?;
                (pem, "CLOUDFRONT_PRIVATE_KEY_SECRET_ARN")
            }
        };
        let key = crate::keys::SigningKey::from_pem(pem.as_bytes())
            .map_err(|source| StartupError::Key { variable, source })?;
        let signer = CloudFrontSigner::new(config.key_pair_id.clone(), key, config.hash);
        let credentials = sdk.credentials_provider().ok_or(StartupError::NoCredentials)?;
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(config.force_path_style)
            .build();
        let presigner =
            Presigner::new(aws_sdk_s3::Client::from_conf(s3), config.bucket.clone(), credentials);
        Ok(Self { config, signer, presigner })
    }
}
