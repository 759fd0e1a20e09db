//! The core every door calls: given a parsed derivative key and who is asking, make sure
//! the derivative exists, making it at most once per process at a time, and say what was
//! made or why not. It knows nothing of HTTP paths, redirects or Lambda events.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use keyspace::LocationEncoding;

use crate::admission::{Admission, Version};
use crate::config::{AllowedResolutions, Config};
use crate::error::ApiError;
use crate::key::{DerivativeKey, Size, SizeSegment};
use crate::metrics::{self, Record, Sink};
use crate::pipeline::{self, Format, Limits};
use crate::store::{PutOutcome, Stamp, Store, StoredObject};

/// Who may be asking, as far as the resizer can tell from the path it was reached by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The path, spelt as it arrived, matches a private pattern: CloudFront sent it through a
    /// behaviour with the trusted key group, so a signature was checked.
    Signed,
    /// Any other path: no signature was checked.
    Unsigned,
}

/// A derivative and the headers it is stored with, for a response.
#[derive(Debug, Clone)]
pub struct Made {
    /// The encoded image.
    pub bytes: Bytes,
    /// Its Content-Type.
    pub content_type: String,
    /// Its Cache-Control.
    pub cache_control: String,
}

/// How long each phase of one miss took; `None` for a phase that did not run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// Reading the original, with the HEAD that asks whether the derivative was made
    /// meanwhile running beside it: until both answered. Timed whether the read succeeded
    /// or not, so a storage timeout shows here; not when the derivative turned out to exist.
    pub fetch: Option<Duration>,
    /// Detecting the format, checking the limits and decoding.
    pub decode: Option<Duration>,
    /// Resampling, cropping and orienting.
    pub resize: Option<Duration>,
    /// Encoding the derivative.
    pub encode: Option<Duration>,
    /// The create-only PUT, retries included, whether it succeeded or not.
    pub store: Option<Duration>,
}

/// What one miss measured, for metrics and Server-Timing. Concurrent misses for one key share
/// one resize ([`ensure_measured`]), so every request that waited on it gets that resize's
/// measurements, including those that did not start it ([`Measurements::joined`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measurements {
    /// The phases that ran.
    pub phases: Phases,
    /// The original's size, once read.
    pub bytes_in: Option<u64>,
    /// The derivative's size, once made (or, in failover mode, read back to answer with).
    pub bytes_out: Option<u64>,
    /// The original's format, once detected.
    pub source_format: Option<Format>,
    /// The derivative's format, once made.
    pub output_format: Option<Format>,
    /// This request found the resize already under way for another and waited on it.
    pub joined: bool,
    /// The ETag of the original as it was read (what a refusal is remembered for).
    pub source_etag: Option<String>,
}

/// What a resize gives every request that waited on it.
type Produced = (Result<Option<Made>, ApiError>, Measurements);

type Flight = Shared<BoxFuture<'static, Produced>>;

/// The resizer's state: configuration, the bucket, the resizes under way and the ones this
/// process finished last.
#[derive(Clone)]
pub struct App {
    config: Arc<Config>,
    store: Store,
    in_flight: Arc<Mutex<HashMap<String, Flight>>>,
    recent: Arc<Mutex<RecentKeys>>,
    reading: Arc<Mutex<Option<LocationEncoding>>>,
    admission: Admission,
    metrics: Sink,
}

/// The last [`RecentKeys::CAPACITY`] derivative keys this process made or found made: a
/// request for one of them is a client that raced the resize (its 404 came before the write)
/// or one calling the resizer again by hand, and is answered after a HEAD alone.
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl App {
    /// Builds the handler state from a parsed configuration and an S3 client.
    pub fn new(config: Config, client: aws_sdk_s3::Client) -> Self {
        let store = Store::new(client, config.bucket.clone())
            .with_read_timeout(config.s3_operation_timeout);
        let admission = Admission::new(
            config.max_concurrent_resizes,
            Duration::from_secs(config.error_cache_seconds),
        );
        Self {
            admission,
            config: Arc::new(config),
            store,
            in_flight: Arc::default(),
            recent: Arc::default(),
            reading: Arc::default(),
            metrics: metrics::stdout_sink(),
        }
    }

    /// Sends this App's metric records to `sink` instead of standard output (the tests read
    /// them this way).
    pub fn with_metrics_sink(mut self, sink: Sink) -> Self {
        self.metrics = sink;
        self
    }

    /// Emits `record`, stamped now, to this App's metrics sink.
    pub fn emit(&self, record: &Record) {
        record.emit_to(&self.metrics);
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The bound on resizes at once and the remembered refusals.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The bucket.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The reading of S3's redirect that last told apart keys whose readings differ; tried
    /// first next time, so a deployment pays the extra S3 read once, not on every such key.
    pub fn preferred_reading(&self) -> Option<LocationEncoding> {
        *lock(&self.reading)
    }

    /// Remembers the reading that found an original among several candidates.
    pub fn remember_reading(&self, reading: LocationEncoding) {
        *lock(&self.reading) = Some(reading);
    }
}

/// The checks on a size segment made before anything is fetched (the Lambda and the `resize`
/// CLI share them): the size allowed by ALLOWED_RESOLUTIONS, the format (if named) by
/// ALLOWED_FORMATS, and not too large to produce.
pub fn admit(
    segment: SizeSegment,
    allowed: &AllowedResolutions,
    formats: &[Format],
    limits: &Limits,
) -> Result<(), ApiError> {
    let size = segment.size;
    if !allowed.allows(size) {
        return Err(ApiError::ResolutionNotAllowed(size));
    }
    if let Some(format) = segment.format.filter(|f| !formats.contains(f)) {
        return Err(ApiError::FormatNotAllowed(format));
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

/// Refuses, before any S3 call, a private derivative asked for by a path no signed
/// behaviour covers.
pub fn check_access(app: &App, key: &DerivativeKey, access: Access) -> Result<(), ApiError> {
    if access == Access::Unsigned && app.config.private_paths.is_private_key(&key.to_string()) {
        return Err(ApiError::UnsignedPrivatePath);
    }
    Ok(())
}

/// Makes sure the derivative `key` exists. `Some` when this call made it (its bytes), `None`
/// when it already existed or another writer made it first.
pub async fn ensure(
    app: &App,
    key: &DerivativeKey,
    access: Access,
) -> Result<Option<Made>, ApiError> {
    ensure_measured(app, key, access).await.0
}

/// [`ensure`], and what the miss measured. A request that joins a resize already under way
/// gets that resize's measurements: the phases it waited on, though it did not run them.
pub async fn ensure_measured(
    app: &App,
    key: &DerivativeKey,
    access: Access,
) -> (Result<Option<Made>, ApiError>, Measurements) {
    let checked = check_access(app, key, access).and_then(|()| {
        admit(key.segment(), &app.config.allowed, &app.config.formats, &app.config.limits)
    });
    if let Err(e) = checked {
        return (Err(e), Measurements::default());
    }
    let derivative_key = key.to_string();
    if let Some((refused, version)) = app.admission.remembered(&derivative_key) {
        // One HEAD instead of a read and a decode: refused again only if the original is
        // still the one it was refused for.
        match app.store.head(&key.original).await {
            Ok(head) if head.as_ref().map(|h| h.etag.clone().unwrap_or_default()) == version => {
                return (Err(refused), Measurements::default());
            }
            Ok(_) => app.admission.forget(&derivative_key),
            Err(e) => {
                return (Err(ApiError::from_store(e, &key.original)), Measurements::default())
            }
        }
    }
    let recent = lock(&app.recent).contains(&derivative_key);
    if recent {
        match app.store.exists(&derivative_key).await {
            Ok(true) => return (Ok(None), Measurements::default()),
            Ok(false) => {}
            Err(e) => {
                return (Err(ApiError::from_store(e, &key.original)), Measurements::default())
            }
        }
    }
    join_flight(app, derivative_key, key.clone()).await
}

/// Concurrent misses for one key in this process share one resize. The resize runs as its
/// own task, so it finishes (and leaves the map) even if every waiting client goes away.
async fn join_flight(app: &App, derivative_key: String, key: DerivativeKey) -> Produced {
    let mut joined = true;
    let flight = {
        let mut map = lock(&app.in_flight);
        map.entry(derivative_key.clone())
            .or_insert_with(|| {
                joined = false;
                let app = app.clone();
                let task = tokio::spawn(async move {
                    let mut measured = Measurements::default();
                    let result = produce(&app, &derivative_key, &key, &mut measured).await;
                    match &result {
                        Ok(_) => lock(&app.recent).insert(&derivative_key),
                        Err(refused) if refused.is_terminal() => {
                            let version = refused_version(refused, &measured);
                            if let Some(version) = version {
                                app.admission.remember(&derivative_key, refused, version);
                            }
                        }
                        Err(_) => {}
                    }
                    lock(&app.in_flight).remove(&derivative_key);
                    (result, measured)
                });
                async move {
                    task.await.unwrap_or_else(|e| {
                        let failed = ApiError::Internal(format!("resize task: {e}"));
                        (Err(failed), Measurements::default())
                    })
                }
                .boxed()
                .shared()
            })
            .clone()
    };
    let (result, measured) = flight.await;
    (result, Measurements { joined, ..measured })
}

/// The version of the original a terminal refusal was given for: missing, or the ETag it was
/// read with. `None` (nothing remembered) when no body was read: a refusal from the
/// original's Content-Length alone (over MAX_SOURCE_BYTES) costs one GET's headers again,
/// and a HEAD made now could name a replacement the refusal was not given for.
fn refused_version(refused: &ApiError, measured: &Measurements) -> Option<Version> {
    if matches!(refused, ApiError::OriginalNotFound(_)) {
        return Some(None);
    }
    measured.source_etag.clone().map(Some)
}

/// How many times a miss builds a size when the original keeps changing under it.
const MAX_BUILDS: u32 = 3;

async fn produce(
    app: &App,
    derivative_key: &str,
    key: &DerivativeKey,
    measured: &mut Measurements,
) -> Result<Option<Made>, ApiError> {
    let limits = app.config.limits;
    let mut attempt = 0;
    let (derivative, etag) = loop {
        attempt += 1;
        // Held from before the original is read until the encoder returns, even if this
        // request stops waiting for it.
        let slot = app.admission.resize_slot().await;
        let started = Instant::now();
        let fetched = fetch_unless_made(app, derivative_key, &key.original).await;
        if !matches!(fetched, Ok(None)) {
            measured.phases.fetch = Some(started.elapsed());
        }
        let Some(StoredObject { body: source, etag, .. }) = fetched? else {
            return Ok(None);
        };
        measured.bytes_in = Some(source.len() as u64);
        measured.source_etag = Some(etag.clone().unwrap_or_default());
        let (size, format) = (key.size, key.format);
        let work = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            pipeline::resize_to(&source, size, format, &limits)
        });
        let budget = app.config.resize_budget;
        let derivative = tokio::time::timeout(budget, work)
            .await
            .map_err(|_| {
                ApiError::ResizeTooSlow(format!(
                    "the resize took longer than RESIZE_BUDGET_MS ({} ms); retry later",
                    budget.as_millis()
                ))
            })?
            .map_err(|e| ApiError::Internal(format!("resize task: {e}")))??;
        // The original may have been replaced while it was being resized, and the
        // replacement's event handled already: a size made from the old bytes would then
        // stay. So the ETag is read again before the write, and a changed original is
        // resized again (a few times at most: then the latest build is written, and the
        // next event for the original purges it if it is stale).
        let current = app
            .store
            .head(&key.original)
            .await
            .map_err(|e| ApiError::from_store(e, &key.original))?
            .ok_or_else(|| ApiError::OriginalNotFound(key.original.clone()))?;
        if current.etag == etag || attempt >= MAX_BUILDS {
            break (derivative, etag);
        }
        tracing::info!(key = derivative_key, "the original changed during the resize: again");
    };
    let timings = derivative.timings;
    measured.phases.decode = Some(timings.decode);
    measured.phases.resize = Some(timings.resize);
    measured.phases.encode = Some(timings.encode);
    measured.source_format = Some(derivative.source_format);
    measured.output_format = Some(derivative.format);
    measured.bytes_out = Some(derivative.bytes.len() as u64);
    let bytes = Bytes::from(derivative.bytes);
    let content_type = derivative.format.content_type();
    let stamp = Stamp {
        content_type,
        cache_control: &app.config.derivative_cache_control,
        source_etag: etag.as_deref(),
    };
    let storing = Instant::now();
    let stored = app.store.put_stamped(derivative_key, bytes.clone(), stamp).await;
    measured.phases.store = Some(storing.elapsed());
    let outcome = stored.map_err(|e| ApiError::from_store(e, &key.original))?;
    tracing::info!(
        key = derivative_key,
        width = derivative.width,
        height = derivative.height,
        created = outcome == PutOutcome::Created,
        "derivative ready"
    );
    Ok((outcome == PutOutcome::Created).then(|| Made {
        bytes,
        content_type: content_type.to_owned(),
        cache_control: app.config.derivative_cache_control.clone(),
    }))
}

/// Asks whether the derivative exists and reads the original at the same time, so a miss
/// waits for one store round trip before resizing instead of two. When the derivative is
/// already there (a client that raced another's resize), the read is dropped, cancelled
/// mid-body if it is still streaming, and nothing is made: `None`.
async fn fetch_unless_made(
    app: &App,
    derivative_key: &str,
    original: &str,
) -> Result<Option<StoredObject>, ApiError> {
    let fail = |e| ApiError::from_store(e, original);
    let made = app.store.exists(derivative_key);
    let read = app.store.get_object(original, app.config.limits.max_source_bytes);
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
