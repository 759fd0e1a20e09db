//! The events function: S3 event notifications (delivered through SQS) keep an original's
//! sizes true to it.
//!
//! Every event is read as "this original may have changed": the handler looks at the
//! original as it is *now* and reconciles its sizes with it, whatever the event said. So a
//! duplicate changes nothing, and an event that arrives late or out of order (a create after
//! the delete that followed it) cannot resurrect or keep a stale size:
//!
//! - the original is gone: every size of it is **purged** (deleted, and its CloudFront path
//!   invalidated);
//! - the original exists: sizes stamped with another ETag (made from an older version; see
//!   [`crate::store::SOURCE_ETAG_METADATA`]) or with none are purged; an upload under
//!   `uploads/` that is not an image within the limits is deleted (its sizes with it); then
//!   the PREGENERATE sizes are made with the resizer's own create-only write.
//!
//! The sizes of an original are computed, never listed: ALLOWED_RESOLUTIONS is a finite list
//! and ALLOWED_FORMATS at most five formats, so `{size}/{original}` and `{size}.{fmt}/{original}`
//! for each size and format is every derivative it can have. Events for
//! derivative keys (the resizer's and this function's own writes) are ignored, so nothing
//! loops.

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures::future::BoxFuture;

use crate::config::{AllowedResolutions, ConfigError};
use crate::derivatives::{self, Access, App};
use crate::error::ApiError;
use crate::key::{parse_derivative_key, parse_size_segment, DerivativeKey, SizeSegment};
use crate::metrics::{Record, Unit};
use crate::pipeline::{detect_format, Format, Limits};
use crate::store::StoreError;

/// The prefix of uploads made through the signer: validated before they become resizable.
pub const UPLOADS_PREFIX: &str = "uploads/";

/// Invalidates CloudFront paths (the distribution in AWS; the devserver's edge cache locally).
pub trait Invalidator: Send + Sync {
    /// Invalidates `paths` (each starting with `/`) as one batch. `reference` identifies the
    /// batch: the same reference with the same paths is one invalidation, however often sent.
    fn invalidate<'a>(
        &'a self,
        paths: &'a [String],
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// CloudFront's CreateInvalidation, through aws-sdk-cloudfront.
pub struct CloudFrontInvalidator {
    client: aws_sdk_cloudfront::Client,
    distribution_id: String,
}

impl CloudFrontInvalidator {
    /// Invalidates on `distribution_id` through `client`.
    pub fn new(client: aws_sdk_cloudfront::Client, distribution_id: String) -> Self {
        Self { client, distribution_id }
    }
}

impl Invalidator for CloudFrontInvalidator {
    fn invalidate<'a>(
        &'a self,
        paths: &'a [String],
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
        Box::pin(async move {
            let paths = Paths::builder()
                .quantity(paths.len() as i32)
                .set_items(Some(paths.to_vec()))
                .build()
                .map_err(|e| e.to_string())?;
            let batch = InvalidationBatch::builder()
                .paths(paths)
                .caller_reference(reference)
                .build()
                .map_err(|e| e.to_string())?;
            self.client
                .create_invalidation()
                .distribution_id(&self.distribution_id)
                .invalidation_batch(batch)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())
        })
    }
}

/// What the events function reads from its environment besides the resizer's settings.
#[derive(Debug, Clone, Default)]
pub struct EventsConfig {
    /// PREGENERATE: sizes made as soon as an original is created (each one allowed; a size
    /// may name its format, `640x.webp`).
    pub pregenerate: Vec<SizeSegment>,
    /// DISTRIBUTION_ID: the distribution whose paths are invalidated; unset, none are.
    pub distribution_id: Option<String>,
}

impl EventsConfig {
    /// Parses PREGENERATE (checked against `allowed` sizes and `formats`) and DISTRIBUTION_ID.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        allowed: &AllowedResolutions,
        formats: &[Format],
        max_dimension: u32,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let raw = get("PREGENERATE").unwrap_or_default();
        let mut pregenerate = Vec::new();
        for token in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let invalid = |reason: String| ConfigError::Invalid {
                var: "PREGENERATE",
                value: raw.clone(),
                reason,
            };
            let segment =
                parse_size_segment(token, max_dimension).map_err(|e| invalid(e.to_string()))?;
            if !allowed.allows(segment.size) {
                return Err(invalid(format!("{} is not in ALLOWED_RESOLUTIONS", segment.size)));
            }
            if let Some(format) = segment.format.filter(|f| !formats.contains(f)) {
                return Err(invalid(format!("{} is not in ALLOWED_FORMATS", format.name())));
            }
            if !pregenerate.contains(&segment) {
                pregenerate.push(segment);
            }
        }
        Ok(Self { pregenerate, distribution_id: get("DISTRIBUTION_ID") })
    }
}

/// What happened to an object, as the event's name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `ObjectCreated:*` (Put, Post, Copy, CompleteMultipartUpload).
    Created,
    /// `ObjectRemoved:*` (Delete, DeleteMarkerCreated).
    Removed,
}

/// One S3 event record, as the handler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    /// The object's key, decoded (S3 writes it form-encoded: a space as `+`).
    pub key: String,
    /// Created or removed.
    pub change: Change,
    /// S3's sequencer for the key (orders events of one key), or empty.
    pub sequencer: String,
}

/// Why an SQS message could not be read as S3 events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The body is not an S3 event notification.
    #[error("not an S3 event notification: {0}")]
    Malformed(String),
}

/// Decodes a key as S3 writes it in an event notification: form encoding (`+` for a
/// space, `%XX` for other bytes). `None` when the result is not UTF-8.
pub fn decode_event_key(raw: &str) -> Option<String> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().ok().map(|s| s.into_owned())
}

/// The S3 events in one SQS message body. S3's test message (`s3:TestEvent`, sent when the
/// notification is configured) and event types other than created/removed give none.
pub fn object_events(body: &str) -> Result<Vec<ObjectEvent>, EventError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| EventError::Malformed(e.to_string()))?;
    if value.get("Event").and_then(|v| v.as_str()) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    let event: S3Event =
        serde_json::from_value(value).map_err(|e| EventError::Malformed(e.to_string()))?;
    let mut out = Vec::new();
    for record in event.records {
        let name = record.event_name.unwrap_or_default();
        let change = if name.starts_with("ObjectCreated:") {
            Change::Created
        } else if name.starts_with("ObjectRemoved:") {
            Change::Removed
        } else {
            continue;
        };
        let raw = record.s3.object.key.unwrap_or_default();
        let key = decode_event_key(&raw)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| EventError::Malformed(format!("key {raw:?}")))?;
        out.push(ObjectEvent {
            key,
            change,
            sequencer: record.s3.object.sequencer.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// What reconciling one original did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Derivative keys deleted (stale, or of a removed or rejected original).
    pub purged: Vec<String>,
    /// CloudFront paths invalidated.
    pub invalidated: Vec<String>,
    /// Derivative keys this call made.
    pub pregenerated: Vec<String>,
    /// The original was an upload that is not an image within the limits, and was deleted.
    pub rejected: Option<String>,
    /// The key is a derivative (or not an original at all): nothing was done.
    pub ignored: bool,
}

/// The events function's state: the resizer's (its bucket, limits and resizes), the
/// settings, and where invalidations go.
#[derive(Clone)]
pub struct Events {
    app: App,
    config: EventsConfig,
    invalidator: Option<Arc<dyn Invalidator>>,
}

/// A failure worth a retry (SQS delivers the message again, then to the dead-letter queue).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReconcileError {
    /// S3 failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The resize failed for a reason other than the original itself.
    #[error("pregenerating: {0}")]
    Resize(String),
    /// CloudFront refused or failed the invalidation.
    #[error("invalidation: {0}")]
    Invalidation(String),
}

impl Events {
    /// The handler state. `invalidator` `None`: purged paths are not invalidated anywhere.
    pub fn new(app: App, config: EventsConfig, invalidator: Option<Arc<dyn Invalidator>>) -> Self {
        Self { app, config, invalidator }
    }

    /// Handles one SQS batch: every message is read and reconciled; the ones that failed are
    /// reported for SQS to deliver again (`ReportBatchItemFailures`), the others are done.
    pub async fn handle_sqs(&self, event: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in event.records {
            let id = message.message_id.clone().unwrap_or_default();
            // A message seen before may have been half done: its purge deleted sizes whose
            // invalidation then failed, so the retry cannot know them from the bucket.
            let redelivered = message
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n > 1);
            let body = message.body.unwrap_or_default();
            let failed = match object_events(&body) {
                Ok(events) => {
                    let mut failed = false;
                    for event in &events {
                        if let Err(e) = self.reconcile(event, redelivered).await {
                            tracing::warn!(key = event.key, error = %e, "event not reconciled");
                            failed = true;
                        }
                    }
                    failed
                }
                // Reported as failed: SQS delivers it again until the redrive policy moves it
                // to the dead-letter queue, whose alarm tells someone.
                Err(e) => {
                    tracing::error!(message_id = id, error = %e, "unreadable message");
                    true
                }
            };
            if failed {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Brings `event.key`'s sizes in line with the original as it is now. `redelivered`: the
    /// event was handled before and failed, so every size's path is invalidated, not only
    /// the ones this call deletes.
    pub async fn reconcile(
        &self,
        event: &ObjectEvent,
        redelivered: bool,
    ) -> Result<Reconciled, ReconcileError> {
        let mut done = Reconciled::default();
        let original = event.key.as_str();
        if is_derivative(original, self.app.config().max_dimension) {
            done.ignored = true;
            return Ok(done);
        }
        let store = self.app.store();
        let mut current = store.head(original).await?;
        if let Some(head) = &current {
            if original.starts_with(UPLOADS_PREFIX) {
                if let Err(reason) = self.validate_upload(original, head.size).await? {
                    tracing::warn!(key = original, reason, "upload rejected and deleted");
                    store.delete(original).await?;
                    done.rejected = Some(reason);
                    current = None;
                }
            }
        }
        let current_etag = current.as_ref().and_then(|h| h.etag.clone());
        let sizes = self.derivative_keys(original);
        let mut stale = Vec::new();
        for key in &sizes {
            let Some(derivative) = store.head(key).await? else { continue };
            let fresh = current_etag.is_some() && derivative.source_etag == current_etag;
            if !fresh {
                stale.push(key.clone());
            }
        }
        // Deleted first, then invalidated: once the invalidation takes effect, CloudFront can
        // only find the new size or none.
        for key in &stale {
            store.delete(key).await?;
        }
        let to_invalidate: Vec<String> = if redelivered && current_etag.is_none() {
            sizes.iter().map(|k| invalidation_path(k)).collect()
        } else if redelivered {
            // The original exists: its fresh sizes are right, only stale ones were deleted.
            let mut all: BTreeSet<String> = stale.iter().map(|k| invalidation_path(k)).collect();
            all.extend(sizes.iter().map(|k| invalidation_path(k)));
            all.into_iter().collect()
        } else {
            stale.iter().map(|k| invalidation_path(k)).collect()
        };
        if !to_invalidate.is_empty() {
            if let Some(invalidator) = &self.invalidator {
                let reference = invalidation_reference(original, &event.sequencer, &to_invalidate);
                invalidator
                    .invalidate(&to_invalidate, &reference)
                    .await
                    .map_err(ReconcileError::Invalidation)?;
                done.invalidated = to_invalidate;
            }
        }
        done.purged = stale;
        if current.is_some() && event.change == Change::Created {
            done.pregenerated = self.pregenerate(original).await?;
        }
        self.log(original, &done);
        Ok(done)
    }

    /// Every derivative key an original can have: each allowed size, in the original's
    /// format and in each of the five formats, allowed today or not (a format removed from
    /// ALLOWED_FORMATS may have written sizes before; they must not outlive a change of the
    /// original). With any
    /// size allowed there is no list to compute from, and the template gives the function no
    /// delete outside listed size prefixes (nothing else tells a size folder from an
    /// original's): no purge.
    fn derivative_keys(&self, original: &str) -> Vec<String> {
        let config = self.app.config();
        let sizes = match &config.allowed {
            AllowedResolutions::Only(sizes) => sizes.clone(),
            AllowedResolutions::Any => Vec::new(),
        };
        let formats: Vec<Option<Format>> =
            std::iter::once(None).chain(Format::ALL.into_iter().map(Some)).collect();
        sizes
            .iter()
            .flat_map(|&size| {
                formats.iter().map(move |&format| {
                    DerivativeKey { size, format, original: original.to_owned() }.to_string()
                })
            })
            .collect()
    }

    /// `Ok(Err(reason))` when the upload is not a JPEG, PNG, WebP or GIF within
    /// MAX_SOURCE_BYTES and MAX_SOURCE_PIXELS, judged from its bytes and its header.
    async fn validate_upload(
        &self,
        key: &str,
        size: u64,
    ) -> Result<Result<(), String>, ReconcileError> {
        let limits = self.app.config().limits;
        if size > limits.max_source_bytes {
            return Ok(Err(format!("{size} bytes, limit {}", limits.max_source_bytes)));
        }
        let bytes = match self.app.store().get(key, limits.max_source_bytes).await {
            Ok(bytes) => bytes,
            Err(StoreError::TooLarge { size, limit }) => {
                return Ok(Err(format!("{size} bytes, limit {limit}")))
            }
            // Deleted in the meantime: its own removal event purges.
            Err(StoreError::NotFound) => return Ok(Ok(())),
            Err(e) => return Err(e.into()),
        };
        Ok(check_image(&bytes, &limits))
    }

    async fn pregenerate(&self, original: &str) -> Result<Vec<String>, ReconcileError> {
        let mut made = Vec::new();
        for segment in &self.config.pregenerate {
            let key = DerivativeKey {
                size: segment.size,
                format: segment.format,
                original: original.to_owned(),
            };
            // Made for the owner of the bucket, not for a viewer: private originals too.
            match derivatives::ensure(&self.app, &key, Access::Signed).await {
                Ok(Some(_)) => made.push(key.to_string()),
                Ok(None) => {}
                // This format cannot hold the original (transparency asked as JPEG); the
                // other sizes and formats still can.
                Err(e @ ApiError::LosesTransparency(_)) => {
                    tracing::info!(key = %key, reason = %e, "size not made");
                }
                // The original is not something the resizer can make sizes of (a page, a
                // document): nothing to pregenerate, and no retry will change that.
                Err(
                    e @ (ApiError::UnsupportedImage(_)
                    | ApiError::SourceTooLarge(_)
                    | ApiError::OutputTooLarge { .. }
                    | ApiError::OriginalNotFound(_)
                    | ApiError::InvalidKey(_)),
                ) => {
                    tracing::info!(key = original, reason = %e, "no sizes made");
                    return Ok(made);
                }
                Err(e) => return Err(ReconcileError::Resize(e.to_string())),
            }
        }
        Ok(made)
    }

    fn log(&self, original: &str, done: &Reconciled) {
        tracing::info!(
            key = original,
            purged = done.purged.len(),
            invalidated = done.invalidated.len(),
            pregenerated = done.pregenerated.len(),
            rejected = done.rejected.is_some(),
            "reconciled"
        );
        let record = Record::new()
            .metric("Purges", f64::from(u8::from(!done.purged.is_empty())), Unit::Count)
            .metric("PurgedObjects", done.purged.len() as f64, Unit::Count)
            .metric("Pregenerated", done.pregenerated.len() as f64, Unit::Count)
            .metric("RejectedUploads", f64::from(u8::from(done.rejected.is_some())), Unit::Count)
            .metric("Invalidations", f64::from(u8::from(!done.invalidated.is_empty())), Unit::Count)
            .property("Key", original);
        self.app.emit(&record);
    }
}

/// Whether `key` is a derivative (`{size}/...`, a size the grammar accepts): the resizer's own
/// writes, never an original.
pub fn is_derivative(key: &str, max_dimension: u32) -> bool {
    parse_derivative_key(key, max_dimension).is_ok()
}

/// Whether `bytes` are an image the resizer reads, within `limits`, from its signature and
/// header alone (nothing is decoded).
pub fn check_image(bytes: &[u8], limits: &Limits) -> Result<(), String> {
    detect_format(bytes).map_err(|e| e.to_string())?;
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let (width, height) =
        reader.into_dimensions().map_err(|e| format!("unreadable header: {e}"))?;
    let pixels = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 {
        return Err(format!("{width}x{height} image"));
    }
    if pixels > limits.max_source_pixels {
        return Err(format!(
            "{width}x{height} is {pixels} pixels, limit {}",
            limits.max_source_pixels
        ));
    }
    Ok(())
}

/// A derivative's path as CloudFront is asked to invalidate it: the spelling the resizer's
/// 307 and the pages use (every byte but unreserved characters and `/` percent-encoded),
/// which is the one viewers' requests carry.
pub fn invalidation_path(derivative_key: &str) -> String {
    format!("/{}", keyspace::encode_key_path(derivative_key))
}

/// The CallerReference of an invalidation: the same event with the same paths (a retry that
/// found the same work) is one invalidation; anything else is a new one.
fn invalidation_reference(original: &str, sequencer: &str, paths: &[String]) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (original, paths).hash(&mut hasher);
    let stamp = if sequencer.is_empty() {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos().to_string())
            .unwrap_or_default()
    } else {
        sequencer.to_owned()
    };
    format!("purge-{stamp}-{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Size;

    #[test]
    fn event_keys_are_form_decoded() {
        assert_eq!(decode_event_key("photos/a+b%2Bc.jpg").unwrap(), "photos/a b+c.jpg");
        assert_eq!(decode_event_key("%E1%BA%A3nh/%ED%95%9C.png").unwrap(), "ảnh/한.png");
        assert_eq!(decode_event_key("100%25.jpg").unwrap(), "100%.jpg");
        assert!(decode_event_key("%FF.jpg").is_none());
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/../tests/data/s3_sqs/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn s3_notifications_give_their_decoded_key_and_change() {
        let key = "photos/ảnh mèo+1.jpg".to_owned();
        assert_eq!(
            object_events(&fixture("s3_object_created.json")).unwrap(),
            [ObjectEvent {
                key: key.clone(),
                change: Change::Created,
                sequencer: "0055AED6DCD90281E5".into()
            }]
        );
        assert_eq!(
            object_events(&fixture("s3_object_removed.json")).unwrap(),
            [ObjectEvent { key, change: Change::Removed, sequencer: "0055AED6DCD90281F0".into() }]
        );
        assert_eq!(object_events(&fixture("s3_test_event.json")).unwrap(), []);
        // Other event types are not ours to act on.
        let restore = fixture("s3_object_created.json")
            .replace("ObjectCreated:Put", "ObjectRestore:Completed");
        assert_eq!(object_events(&restore).unwrap(), []);
        assert!(object_events("not json").is_err());
        assert!(object_events(r#"{"Records": 3}"#).is_err());
    }

    #[test]
    fn derivatives_are_told_from_originals_by_the_grammar() {
        assert!(is_derivative("300x300/photos/cat.jpg", 4096));
        assert!(is_derivative("x480/cat.jpg", 4096));
        assert!(!is_derivative("photos/cat.jpg", 4096));
        assert!(!is_derivative("300x300", 4096));
        assert!(!is_derivative("resized/300x300/cat.jpg", 4096));
        assert!(!is_derivative("0x300/cat.jpg", 4096));
    }

    #[test]
    fn pregenerate_sizes_and_formats_must_be_allowed() {
        let allowed = AllowedResolutions::parse("200x200,640x", 4096).unwrap();
        let env = |v: &'static str| move |k: &str| (k == "PREGENERATE").then(|| v.to_owned());
        let config =
            EventsConfig::from_lookup(env("640x, 200x200,640x"), &allowed, &Format::ALL, 4096)
                .unwrap();
        let plain = |size| SizeSegment { size, format: None };
        assert_eq!(
            config.pregenerate,
            [plain(Size::Width(640)), plain(Size::Box { width: 200, height: 200 })]
        );
        let webp =
            EventsConfig::from_lookup(env("640x.webp,640x"), &allowed, &Format::ALL, 4096).unwrap();
        assert_eq!(
            webp.pregenerate[0],
            SizeSegment { size: Size::Width(640), format: Some(Format::WebP) }
        );
        let err = EventsConfig::from_lookup(env("640x.avif"), &allowed, &[Format::WebP], 4096)
            .unwrap_err();
        assert!(err.to_string().contains("not in ALLOWED_FORMATS"), "{err}");
        let err =
            EventsConfig::from_lookup(env("300x300"), &allowed, &Format::ALL, 4096).unwrap_err();
        assert!(err.to_string().contains("PREGENERATE"), "{err}");
        assert!(EventsConfig::from_lookup(env("3OOx"), &allowed, &Format::ALL, 4096).is_err());
        assert!(EventsConfig::from_lookup(env(""), &allowed, &Format::ALL, 4096)
            .unwrap()
            .pregenerate
            .is_empty());
    }

    #[test]
    fn invalidation_paths_are_the_redirects_spelling() {
        assert_eq!(invalidation_path("300x300/photos/cat.jpg"), "/300x300/photos/cat.jpg");
        assert_eq!(invalidation_path("640x/a b+c?#.jpg"), "/640x/a%20b%2Bc%3F%23.jpg");
        assert_eq!(invalidation_path("640x/ảnh.jpg"), "/640x/%E1%BA%A3nh.jpg");
    }

    #[test]
    fn an_upload_is_an_image_within_the_limits_or_refused() {
        let limits =
            Limits { max_source_bytes: 1 << 20, max_source_pixels: 100, ..Limits::default() };
        let mut png = Vec::new();
        image::RgbImage::new(10, 10)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(check_image(&png, &limits), Ok(()));
        let mut big = Vec::new();
        image::RgbImage::new(11, 10)
            .write_to(&mut std::io::Cursor::new(&mut big), image::ImageFormat::Png)
            .unwrap();
        assert!(check_image(&big, &limits).unwrap_err().contains("110 pixels"));
        assert!(check_image(b"<html>not an image</html>", &limits).is_err());
        assert!(check_image(&png[..20], &limits).is_err(), "a header cut short");
    }
}
