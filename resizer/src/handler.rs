//! The HTTP handler: `GET|HEAD /resize?key={derivative key}`.
//!
//! The same `handle` runs under lambda_http in AWS and mounted in-process by the devserver.
//! It never fails: every error becomes a JSON response through [`ApiError::status`], one
//! exhaustive match.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};
use http::{header, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};

use crate::config::{AllowedResolutions, Config};
use crate::key::{
    decode_key_param, encode_key_path, parse_derivative_key, DerivativeKey, KeyError, Size,
};
use crate::pipeline::{self, Limits, PipelineError};
use crate::store::{PutOutcome, Store, StoreError};

/// Everything the handler can answer other than a redirect.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The path is not `/resize`.
    #[error("no route for {0}")]
    NoRoute(String),
    /// A method other than GET or HEAD.
    #[error("method {0} is not allowed; use GET or HEAD")]
    MethodNotAllowed(String),
    /// No `key` query parameter, or an empty one.
    #[error("the key query parameter is required, e.g. /resize?key=300x300/photos/cat.jpg")]
    MissingKey,
    /// The key is not a valid derivative key.
    #[error("{0}")]
    InvalidKey(#[from] KeyError),
    /// The size is valid but not in ALLOWED_RESOLUTIONS.
    #[error("{0} is not in ALLOWED_RESOLUTIONS")]
    ResolutionNotAllowed(Size),
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
            ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::MissingKey => StatusCode::BAD_REQUEST,
            ApiError::InvalidKey(_) => StatusCode::BAD_REQUEST,
            ApiError::ResolutionNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::OutputTooLarge { .. } => StatusCode::BAD_REQUEST,
            ApiError::OriginalNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::SourceTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedImage(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::StorageTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::StorageUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::StorageFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code in the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NoRoute(_) => "not-found",
            ApiError::MethodNotAllowed(_) => "method-not-allowed",
            ApiError::MissingKey => "missing-key",
            ApiError::InvalidKey(_) => "invalid-key",
            ApiError::ResolutionNotAllowed(_) => "resolution-not-allowed",
            ApiError::OutputTooLarge { .. } => "output-too-large",
            ApiError::OriginalNotFound(_) => "original-not-found",
            ApiError::SourceTooLarge(_) => "source-too-large",
            ApiError::UnsupportedImage(_) => "unsupported-image",
            ApiError::StorageTimeout(_) => "storage-timeout",
            ApiError::StorageUnavailable(_) => "storage-unavailable",
            ApiError::StorageFailed(_) => "storage-error",
            ApiError::Internal(_) => "internal-error",
        }
    }

    fn from_store(err: StoreError, original: &str) -> Self {
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
            PipelineError::Encode(m) => ApiError::Internal(m),
        }
    }
}

type Flight = Shared<BoxFuture<'static, Result<(), ApiError>>>;

/// The handler's state: configuration, the bucket, the resizes under way and the ones this
/// process finished last.
#[derive(Clone)]
pub struct App {
    config: Arc<Config>,
    store: Store,
    in_flight: Arc<Mutex<HashMap<String, Flight>>>,
    recent: Arc<Mutex<RecentKeys>>,
}

/// The last [`RecentKeys::CAPACITY`] derivative keys this process made or found made: a
/// request for one of them is a client that raced the resize (its 404 came before the write)
/// or one calling `/resize` again by hand, and is answered after a HEAD alone.
#[derive(Default)]
struct RecentKeys {
    order: VecDeque<String>,
    keys: HashSet<String>,
}

impl RecentKeys {
    const CAPACITY: usize = 1024;

    fn contains(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    fn insert(&mut self, key: &str) {
        if !self.keys.insert(key.to_owned()) {
            return;
        }
        self.order.push_back(key.to_owned());
        if self.order.len() > Self::CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&oldest);
            }
        }
    }
}

impl App {
    /// Builds the handler state from a parsed configuration and an S3 client.
    pub fn new(config: Config, client: aws_sdk_s3::Client) -> Self {
        let store = Store::new(client, config.bucket.clone());
        Self { config: Arc::new(config), store, in_flight: Arc::default(), recent: Arc::default() }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

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
    match route(app, &req).await {
        Ok(location) => redirect(&location),
        Err(err) => error_response(&err),
    }
}

async fn route(app: &App, req: &Request) -> Result<String, ApiError> {
    // API Gateway may prefix a stage name (`/prod/resize`); the route is the last segment.
    let path = req.uri().path();
    if !(path == "/resize" || path.ends_with("/resize")) {
        return Err(ApiError::NoRoute(path.to_owned()));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(ApiError::MethodNotAllowed(req.method().to_string()));
    }
    let raw = decode_key_param(req.uri().query())?.ok_or(ApiError::MissingKey)?;
    let key = parse_derivative_key(&raw, app.config.max_dimension)?;
    admit(key.size, &app.config.allowed, &app.config.limits)?;
    ensure_derivative(app, key).await
}

/// The checks on a size made before anything is fetched (the Lambda and the `resize` CLI
/// share them): allowed by ALLOWED_RESOLUTIONS, and not too large to produce.
pub fn admit(size: Size, allowed: &AllowedResolutions, limits: &Limits) -> Result<(), ApiError> {
    if !allowed.allows(size) {
        return Err(ApiError::ResolutionNotAllowed(size));
    }
    // One-sided sizes never exceed the original, which the pixel limit already bounds; a
    // box can upscale, so it is bounded here.
    if let Size::Box { width, height } = size {
        let (pixels, limit) = (u64::from(width) * u64::from(height), limits.max_source_pixels);
        if pixels > limit {
            return Err(ApiError::OutputTooLarge { size, pixels, limit });
        }
    }
    Ok(())
}

/// Makes sure the derivative exists and returns where to find it.
async fn ensure_derivative(app: &App, key: DerivativeKey) -> Result<String, ApiError> {
    let derivative_key = key.to_string();
    let location = format!("{}/{}", app.config.public_base_url, encode_key_path(&derivative_key));
    let recent = app
        .recent
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .contains(&derivative_key);
    if recent
        && app
            .store
            .exists(&derivative_key)
            .await
            .map_err(|e| ApiError::from_store(e, &key.original))?
    {
        return Ok(location);
    }
    join_flight(app, derivative_key, key).await?;
    Ok(location)
}

/// Concurrent misses for one key in this process share one resize. The resize runs as its
/// own task, so it finishes (and leaves the map) even if every waiting client goes away.
async fn join_flight(
    app: &App,
    derivative_key: String,
    key: DerivativeKey,
) -> Result<(), ApiError> {
    let flight = {
        let mut map = app.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(derivative_key.clone())
            .or_insert_with(|| {
                let app = app.clone();
                let task = tokio::spawn(async move {
                    let result = produce(&app, &derivative_key, &key).await;
                    if result.is_ok() {
                        app.recent
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .insert(&derivative_key);
                    }
                    app.in_flight
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .remove(&derivative_key);
                    result
                });
                async move {
                    task.await
                        .unwrap_or_else(|e| Err(ApiError::Internal(format!("resize task: {e}"))))
                }
                .boxed()
                .shared()
            })
            .clone()
    };
    flight.await
}

async fn produce(app: &App, derivative_key: &str, key: &DerivativeKey) -> Result<(), ApiError> {
    let limits = app.config.limits;
    let Some(source) = fetch_unless_made(app, derivative_key, &key.original).await? else {
        return Ok(());
    };
    let size = key.size;
    let derivative = tokio::task::spawn_blocking(move || pipeline::resize(&source, size, &limits))
        .await
        .map_err(|e| ApiError::Internal(format!("resize task: {e}")))??;
    let outcome = app
        .store
        .put_if_absent(
            derivative_key,
            derivative.bytes,
            derivative.format.content_type(),
            &app.config.derivative_cache_control,
        )
        .await
        .map_err(|e| ApiError::from_store(e, &key.original))?;
    tracing::info!(
        key = derivative_key,
        width = derivative.width,
        height = derivative.height,
        created = outcome == PutOutcome::Created,
        "derivative ready"
    );
    Ok(())
}

/// Asks whether the derivative exists and reads the original at the same time, so a miss
/// waits for one store round trip before resizing instead of two. When the derivative is
/// already there (a client that raced another's resize), the read is dropped, cancelled
/// mid-body if it is still streaming, and nothing is made: `None`.
async fn fetch_unless_made(
    app: &App,
    derivative_key: &str,
    original: &str,
) -> Result<Option<bytes::Bytes>, ApiError> {
    let fail = |e| ApiError::from_store(e, original);
    let made = app.store.exists(derivative_key);
    let read = app.store.get(original, app.config.limits.max_source_bytes);
    tokio::pin!(made, read);
    tokio::select! {
        made_first = &mut made => {
            if made_first.map_err(fail)? { Ok(None) } else { read.await.map(Some).map_err(fail) }
        }
        read_first = &mut read => {
            if made.await.map_err(fail)? { Ok(None) } else { read_first.map(Some).map_err(fail) }
        }
    }
}

fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    let headers = resp.headers_mut();
    // The location is built from percent-encoded parts, so it is always a valid header.
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    // A cached redirect loops forever behind CloudFront once the derivative is deleted.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The JSON error response for `err`. 5xx bodies say only what the caller can act on; the
/// detail goes to the log.
pub fn error_response(err: &ApiError) -> Response<Body> {
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
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
