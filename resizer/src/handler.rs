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
//!
//! Every answer, from either door, success or error, logs one CloudWatch EMF line
//! ([`miss_record`]) to the App's metrics sink and carries a `Server-Timing` header
//! ([`server_timing`]): docs/OPERATIONS.md lists what each holds.

use std::time::{Duration, Instant};

use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use keyspace::routing::{decode_path, key_candidates};
use keyspace::{encode_key_path, DeliveryMode};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::config::Config;
use crate::derivatives::{self, Access, Made, Measurements, Phases};
pub use crate::derivatives::{admit, App};
pub use crate::error::{error_response, error_response_cached, ApiError};
use crate::key::{parse_derivative_key, DerivativeKey, KeyError};
use crate::metrics::{Record, Unit};
use crate::store::StoreError;

/// The header CloudFront adds to every request it sends the functions (an origin custom
/// header whose value is ORIGIN_VERIFY_SECRET).
pub const ORIGIN_VERIFY_HEADER: &str = "x-origin-verify";

/// The path prefix of the redirect door (after an optional API Gateway stage).
const RESIZE_ROUTE: &str = "/resize/";

/// The W3C Server-Timing response header.
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// The metrics' `Outcome` when this request made the derivative (errors use their code).
pub const OUTCOME_MADE: &str = "made";

/// The metrics' `Outcome` when the derivative was there already, or another writer made it
/// first.
pub const OUTCOME_EXISTED: &str = "existed";

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

/// Answers one request. Never fails: errors are JSON responses. Logs one metrics record and
/// adds Server-Timing, whatever the answer.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let started = Instant::now();
    let mut miss = Miss::default();
    let answered = answer(app, &req, &mut miss).await;
    let outcome = match &answered {
        Ok(_) if miss.made => OUTCOME_MADE,
        Ok(_) => OUTCOME_EXISTED,
        Err(err) => err.code(),
    };
    let cache_seconds = app.config().error_cache_seconds;
    let mut resp = answered.unwrap_or_else(|err| error_response_cached(&err, cache_seconds));
    let latency = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&server_timing(&miss.measured.phases, latency)) {
        resp.headers_mut().insert(SERVER_TIMING, value);
    }
    app.emit(&miss_record(&miss, outcome, resp.status(), latency));
    resp
}

/// What the doors learn on the way, for the request's metrics record.
#[derive(Debug, Default)]
pub struct Miss {
    /// The derivative key, once parsed (in redirect mode, the last reading tried).
    pub key: Option<String>,
    /// This request made the derivative.
    pub made: bool,
    /// What making it measured.
    pub measured: Measurements,
}

/// The request's one EMF record, on [`crate::metrics::NAMESPACE`], published without
/// dimensions and by `Outcome` (`made`, `existed`, or the error's code):
///
/// - `Misses` (Count): 1, for every request the resizer answers.
/// - `Errors` (Count): 1 when the answer is an error, whatever its status (a refusal such
///   as `resolution-not-allowed` as much as `storage-timeout`), else 0; so its average is
///   the error rate, and its sum by `Outcome` the count of each code.
/// - `ServerErrors` (Count): 1 when the answer is a 5xx, else 0: the errors that are ours or
///   S3's, never the caller's, which anyone can cause by asking for a missing original.
/// - `Latency` (Milliseconds): the whole request, as the resizer saw it.
/// - `FetchTime`, `DecodeTime`, `ResizeTime`, `EncodeTime`, `StoreTime` (Milliseconds): the
///   phases that ran ([`Phases`]).
/// - `BytesIn`, `BytesOut` (Bytes): the original's and the derivative's sizes, when known.
///
/// Properties (searchable in Logs Insights, not metrics): `Status`, and when known `Key`,
/// `SourceFormat`, `OutputFormat`, and `Joined` (true when the request waited on a resize
/// another request had started; its phases are that resize's).
pub fn miss_record(miss: &Miss, outcome: &str, status: StatusCode, latency: Duration) -> Record {
    let measured = &miss.measured;
    let error = outcome != OUTCOME_MADE && outcome != OUTCOME_EXISTED;
    let mut record = Record::new()
        .metric("Misses", 1.0, Unit::Count)
        .metric("Errors", f64::from(u8::from(error)), Unit::Count)
        .metric("ServerErrors", f64::from(u8::from(status.is_server_error())), Unit::Count)
        .metric("Latency", millis(latency), Unit::Milliseconds);
    for (_, metric, took) in phase_list(&measured.phases) {
        if let Some(took) = took {
            record = record.metric(metric, millis(took), Unit::Milliseconds);
        }
    }
    for (name, bytes) in [("BytesIn", measured.bytes_in), ("BytesOut", measured.bytes_out)] {
        if let Some(bytes) = bytes {
            record = record.metric(name, bytes as f64, Unit::Bytes);
        }
    }
    record = record.by("Outcome").dimension("Outcome", outcome).property("Status", status.as_u16());
    if let Some(key) = &miss.key {
        record = record.property("Key", key.as_str());
    }
    for (name, format) in
        [("SourceFormat", measured.source_format), ("OutputFormat", measured.output_format)]
    {
        if let Some(format) = format {
            record = record.property(name, format.name());
        }
    }
    if measured.joined {
        record = record.property("Joined", true);
    }
    record
}

/// The phases in the order they run, each with its Server-Timing name and its metric's.
fn phase_list(phases: &Phases) -> [(&'static str, &'static str, Option<Duration>); 5] {
    [
        ("fetch", "FetchTime", phases.fetch),
        ("decode", "DecodeTime", phases.decode),
        ("resize", "ResizeTime", phases.resize),
        ("encode", "EncodeTime", phases.encode),
        ("store", "StoreTime", phases.store),
    ]
}

/// The `Server-Timing` value: the phases that ran, in order, then `total` (the whole
/// request), each as `name;dur=milliseconds` with one decimal. A request that waited on
/// another's resize reports that resize's phases and its own total.
pub fn server_timing(phases: &Phases, total: Duration) -> String {
    phase_list(phases)
        .into_iter()
        .filter_map(|(name, _, took)| took.map(|took| (name, took)))
        .chain([("total", total)])
        .map(|(name, took)| format!("{name};dur={:.1}", millis(took)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Milliseconds to the microsecond (no binary fractions such as 61.233999999999995 in the
/// log).
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

async fn answer(app: &App, req: &Request, miss: &mut Miss) -> Result<Response<Body>, ApiError> {
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
        DeliveryMode::Redirect => redirect_door(app, path, req.uri().query(), miss).await,
        DeliveryMode::Failover => failover_door(app, path, head, miss).await,
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
    miss: &mut Miss,
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
        miss.key = Some(key.to_string());
        let (result, measured) = derivatives::ensure_measured(app, key, access).await;
        miss.measured = measured;
        match result {
            Ok(made) => {
                miss.made = made.is_some();
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
async fn failover_door(
    app: &App,
    path: &str,
    head: bool,
    miss: &mut Miss,
) -> Result<Response<Body>, ApiError> {
    let raw = path.strip_prefix('/').unwrap_or(path);
    if raw.is_empty() {
        return Err(ApiError::NoRoute(path.to_owned()));
    }
    let text = decode_path(raw).ok_or(KeyError::BadEncoding)?;
    let key = parse_derivative_key(&text, app.config().max_dimension)?;
    miss.key = Some(key.to_string());
    let (result, measured) = derivatives::ensure_measured(app, &key, access(app, raw)).await;
    miss.measured = measured;
    let limit = app.config().max_response_bytes;
    let made = match result? {
        Some(made) => {
            miss.made = true;
            made
        }
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
    miss.measured.bytes_out = Some(made.bytes.len() as u64);
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
    use super::*;

    fn ms(millis: f64) -> Duration {
        Duration::from_secs_f64(millis / 1e3)
    }

    #[test]
    fn server_timing_lists_the_phases_that_ran_then_the_total() {
        #[track_caller]
        fn case(phases: Phases, total: f64, expected: &str) {
            let value = server_timing(&phases, ms(total));
            assert_eq!(value, expected);
            // W3C Server-Timing: `token;dur=number`, comma-separated.
            let entry =
                regex::Regex::new(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+;dur=[0-9]+\.[0-9]$").unwrap();
            assert!(value.split(", ").all(|e| entry.is_match(e)), "{value}");
            assert!(HeaderValue::from_str(&value).is_ok());
        }
        let all = Phases {
            fetch: Some(ms(12.34)),
            decode: Some(ms(20.0)),
            resize: Some(ms(3.26)),
            encode: Some(ms(0.04)),
            store: Some(ms(30.96)),
        };
        case(
            all,
            70.0,
            "fetch;dur=12.3, decode;dur=20.0, resize;dur=3.3, encode;dur=0.0, store;dur=31.0, \
             total;dur=70.0",
        );
        case(
            Phases { fetch: Some(ms(4.0)), ..Phases::default() },
            5.0,
            "fetch;dur=4.0, total;dur=5.0",
        );
        case(Phases::default(), 0.26, "total;dur=0.3");
    }

    #[test]
    fn an_error_record_counts_an_error_under_its_code_and_omits_what_did_not_happen() {
        let miss = Miss {
            key: Some("300x300/photos/cat.jpg".into()),
            made: false,
            measured: Measurements {
                phases: Phases { fetch: Some(ms(8.0)), ..Phases::default() },
                ..Measurements::default()
            },
        };
        let code = ApiError::OriginalNotFound("photos/cat.jpg".into()).code();
        let doc = miss_record(&miss, code, StatusCode::NOT_FOUND, ms(9.5)).to_json(1);
        assert!(crate::metrics::violations(&doc).is_empty(), "{doc}");
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Misses", "Errors", "ServerErrors", "Latency", "FetchTime"]);
        assert_eq!((doc["Errors"].as_f64(), doc["ServerErrors"].as_f64()), (Some(1.0), Some(0.0)));
        assert_eq!(doc["Latency"].as_f64(), Some(9.5));
        assert_eq!(doc["Outcome"], "original-not-found");
        assert_eq!(doc["Status"], 404);
        assert_eq!(doc["Key"], "300x300/photos/cat.jpg");
        for absent in ["SourceFormat", "OutputFormat", "BytesIn", "BytesOut", "Joined"] {
            assert!(doc.get(absent).is_none(), "{absent} in {doc}");
        }
    }

    #[test]
    fn a_5xx_is_a_server_error() {
        let doc =
            miss_record(&Miss::default(), "storage-timeout", StatusCode::GATEWAY_TIMEOUT, ms(1.0));
        let doc = doc.to_json(1);
        assert_eq!((doc["Errors"].as_f64(), doc["ServerErrors"].as_f64()), (Some(1.0), Some(1.0)));
    }

    #[test]
    fn a_made_record_has_no_error() {
        let miss = Miss { made: true, ..Miss::default() };
        let doc = miss_record(&miss, OUTCOME_MADE, StatusCode::TEMPORARY_REDIRECT, ms(1.0));
        let doc = doc.to_json(1);
        assert_eq!((doc["Errors"].as_f64(), doc["Outcome"].as_str()), (Some(0.0), Some("made")));
    }

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
