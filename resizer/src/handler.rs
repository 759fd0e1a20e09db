//! The Lambda's doors. The same `handle` runs under lambda_http in AWS and behind the
//! devserver's emulated API Gateway and function URL. Which door is open is the deployment's
//! DELIVERY_MODE, chosen in one match in [`answer`]:
//!
//! - **redirect**: `GET|HEAD /resize/{derivative key}`, reached through CloudFront from the
//!   S3 website's routing-rule 307. The key arrives however S3 wrote it (encoded once,
//!   twice, or raw: `keyspace::routing`); the answer is a `no-store` 307 back to the sized
//!   path.
//! - **failover**: `GET|HEAD /{derivative key}`, the viewer's own path, forwarded by
//!   CloudFront's origin group after the private bucket answered 403/404; the answer is the
//!   image itself (200), or a `no-store` 307 to the same path when it is too large for a
//!   function response.
//!
//! Each door only turns its request into a [`DerivativeKey`] and an [`Access`], calls
//! [`derivatives::ensure`], and turns the outcome into its response. The `resize` CLI is the
//! third door (bin/resize.rs). Nothing here ever returns `Err`: errors are JSON responses
//! ([`error_response`]).

use http::{header, HeaderValue, Method, StatusCode};
use keyspace::routing::{decode_path, key_candidates};
use keyspace::{encode_key_path, DeliveryMode};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::config::Config;
use crate::derivatives::{self, Access, Made};
pub use crate::derivatives::{admit, App};
pub use crate::error::{error_response, ApiError};
use crate::key::{parse_derivative_key, DerivativeKey, KeyError};
use crate::store::StoreError;

/// The header CloudFront adds to every request it sends the functions (an origin custom
/// header whose value is ORIGIN_VERIFY_SECRET).
pub const ORIGIN_VERIFY_HEADER: &str = "x-origin-verify";

/// The path prefix of the redirect door (after an optional API Gateway stage).
const RESIZE_ROUTE: &str = "/resize/";

/// Builds the S3 client the way the Lambda does: the SDK's default chain (region,
/// credentials, and the standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` overrides), plus
/// path-style addressing when configured.
pub async fn s3_client_from_env(config: &Config) -> aws_sdk_s3::Client {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let s3_config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(config.force_path_style)
        .timeout_config(timeouts(config))
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// The SDK timeouts for S3_OPERATION_TIMEOUT_MS: the whole call, and a connect timeout that
/// leaves room for a retry.
pub fn timeouts(config: &Config) -> aws_sdk_s3::config::timeout::TimeoutConfig {
    aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .operation_timeout(config.s3_operation_timeout)
        .connect_timeout(config.s3_operation_timeout / 3)
        .build()
}

/// Answers one request. Never fails: errors are JSON responses.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    match answer(app, &req).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    }
}

async fn answer(app: &App, req: &Request) -> Result<Response<Body>, ApiError> {
    verify_origin(app.config(), req)?;
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        ref other => return Err(ApiError::MethodNotAllowed(other.to_string())),
    };
    // The path as the client sent it (API Gateway's rawPath), not lambda_http's URI, which
    // a URL parser has normalised (dot segments resolved, characters re-encoded).
    let path = match req.raw_http_path() {
        "" => req.uri().path(),
        raw => raw,
    };
    match app.config().delivery {
        DeliveryMode::Redirect => redirect_door(app, path, req.uri().query()).await,
        DeliveryMode::Failover => failover_door(app, path, head).await,
    }
}

/// Refuses requests without CloudFront's secret header, when one is configured, before
/// anything else: the API's own URL must not be a way around the distribution.
fn verify_origin(config: &Config, req: &Request) -> Result<(), ApiError> {
    let Some(secret) = &config.origin_secret else { return Ok(()) };
    let given = req.headers().get(ORIGIN_VERIFY_HEADER).map(HeaderValue::as_bytes);
    match given {
        Some(given) if constant_time_eq(given, secret.as_bytes()) => Ok(()),
        _ => Err(ApiError::OriginNotVerified),
    }
}

/// Compares every byte of the longer input whatever the contents, so the time taken says
/// nothing about how much of a guess was right.
fn constant_time_eq(given: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != secret.len());
    for i in 0..given.len().max(secret.len()) {
        diff |= given.get(i).copied().unwrap_or(0) ^ secret.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// Private keys are made only for paths that CloudFront's signed behaviours match as they
/// were spelt: an encoded spelling (`%70rivate`, `%2F`) may have reached an unsigned
/// behaviour, and is refused even when it decodes to a private key.
fn access(app: &App, raw: &str) -> Access {
    if app.config().private_paths.is_private_key(raw) {
        Access::Signed
    } else {
        Access::Unsigned
    }
}

/// `/resize/{key}`: every reading of the key S3 may have written is a candidate; the first
/// whose original exists is made. Candidates agree for keys of unreserved characters, so
/// the common case reads S3 once.
async fn redirect_door(
    app: &App,
    path: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let rest = match path.find(RESIZE_ROUTE) {
        Some(at) => &path[at + RESIZE_ROUTE.len()..],
        None => return Err(ApiError::NoRoute(path.to_owned())),
    };
    if rest.is_empty() {
        return Err(ApiError::MissingKey);
    }
    let config = app.config();
    let candidates = key_candidates(rest, query, config.key_decoding, app.preferred_reading());
    let mut keys = Vec::new();
    let mut refusal = None;
    for (reading, text) in &candidates {
        match parse_derivative_key(text, config.max_dimension) {
            Ok(key) => keys.push((*reading, key)),
            Err(e) => {
                refusal.get_or_insert(e);
            }
        }
    }
    if keys.is_empty() {
        return Err(ApiError::InvalidKey(refusal.unwrap_or(KeyError::BadEncoding)));
    }
    // Every candidate is checked before the first S3 call.
    let access = access(app, rest);
    for (_, key) in &keys {
        derivatives::check_access(app, key, access)?;
    }
    let last = keys.len() - 1;
    for (i, (reading, key)) in keys.iter().enumerate() {
        match derivatives::ensure(app, key, access).await {
            Ok(_) => {
                if keys.len() > 1 {
                    app.remember_reading(*reading);
                }
                return Ok(redirect(&sized_path(key)));
            }
            Err(ApiError::OriginalNotFound(_)) if i < last => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns on its last candidate")
}

/// `/{key}`, the viewer's path: the image itself, so the viewer's one request is answered
/// with no redirect.
async fn failover_door(app: &App, path: &str, head: bool) -> Result<Response<Body>, ApiError> {
    let raw = path.strip_prefix('/').unwrap_or(path);
    if raw.is_empty() {
        return Err(ApiError::NoRoute(path.to_owned()));
    }
    let text = decode_path(raw).ok_or(KeyError::BadEncoding)?;
    let key = parse_derivative_key(&text, app.config().max_dimension)?;
    let made = derivatives::ensure(app, &key, access(app, raw)).await?;
    let limit = app.config().max_response_bytes;
    let made = match made {
        Some(made) => made,
        // Made by another writer, or before: read it back to answer with it.
        None => match app.store().get_object(&key.to_string(), limit).await {
            // The stored object's own headers, whoever wrote it.
            Ok(object) => Made {
                content_type: object
                    .content_type
                    .unwrap_or_else(|| "application/octet-stream".to_owned()),
                cache_control: object
                    .cache_control
                    .unwrap_or_else(|| app.config().derivative_cache_control.clone()),
                bytes: object.body,
            },
            Err(StoreError::TooLarge { .. }) => return Ok(redirect(path)),
            Err(e) => return Err(ApiError::from_store(e, &key.original)),
        },
    };
    if made.bytes.len() as u64 > limit {
        return Ok(redirect(path));
    }
    Ok(image(made, head))
}

/// The sized path of a derivative, as a relative reference: the 307 goes back to the host
/// the viewer used (the distribution, a custom domain, or the devserver), which the
/// function never needs to be told.
fn sized_path(key: &DerivativeKey) -> String {
    format!("/{}", encode_key_path(&key.to_string()))
}

fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    let headers = resp.headers_mut();
    // Locations are built from percent-encoded keys or the path as received.
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    // A cached redirect loops forever behind CloudFront once the derivative exists.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn image(made: Made, head: bool) -> Response<Body> {
    let length = made.bytes.len();
    let mut resp =
        Response::new(if head { Body::Empty } else { Body::Binary(made.bytes.to_vec()) });
    let headers = resp.headers_mut();
    for (name, value) in
        [(header::CONTENT_TYPE, &made.content_type), (header::CACHE_CONTROL, &made.cache_control)]
    {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    resp
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn the_secret_comparison_needs_every_byte() {
        let secret = b"0123456789abcdef0123456789abcdef";
        assert!(constant_time_eq(secret, secret));
        assert!(!constant_time_eq(b"0123456789abcdef0123456789abcdee", secret));
        assert!(!constant_time_eq(b"0123456789abcdef0123456789abcde", secret));
        assert!(!constant_time_eq(b"0123456789abcdef0123456789abcdef0", secret));
        assert!(!constant_time_eq(b"", secret));
    }
}
