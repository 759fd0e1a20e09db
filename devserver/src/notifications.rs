//! S3 event notifications and CloudFront invalidations, as the deployed stack has them: the
//! embedded store notes every write and delete ([`Notifier`]), and a delivery task hands each
//! one, as the JSON SQS gives a Lambda (an S3 event notification in a message body), to the
//! events function's handler ([`resizer::events`]) in-process. A message the handler reports
//! as failed is delivered again with its receive count raised, up to [`MAX_RECEIVES`] times
//! (the template's redrive policy), then dropped with a log line, as the dead-letter queue
//! would take it.
//!
//! Invalidations ([`DevInvalidator`]) drop the edge's cached copies of the paths and are
//! recorded, since there is no CDN to ask.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use futures::future::BoxFuture;
use resizer::events::{Events, Invalidator};
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

/// Deliveries of one message before it goes to the dead-letter queue (the template's
/// `maxReceiveCount`).
pub const MAX_RECEIVES: u32 = 5;

/// One object change the store made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreEvent {
    /// `ObjectCreated:Put`, `ObjectCreated:CompleteMultipartUpload`,
    /// `ObjectRemoved:DeleteMarkerCreated`...
    pub name: &'static str,
    /// The bucket.
    pub bucket: String,
    /// The key, raw.
    pub key: String,
    /// The object's size (creates only).
    pub size: Option<i64>,
    /// The object's ETag, without quotes (creates only).
    pub etag: Option<String>,
    /// Orders the events of one key, as S3's sequencer does: hex, increasing.
    pub sequencer: String,
}

/// The store's side: notes changes, counts those not yet handled.
#[derive(Debug, Clone)]
pub struct Notifier {
    sender: mpsc::UnboundedSender<StoreEvent>,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    pending: AtomicUsize,
    sequence: AtomicU64,
    settled: Notify,
}

impl State {
    fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.settled.notify_waiters();
        }
    }
}

/// The delivery side of a [`Notifier`].
pub struct Queue {
    receiver: mpsc::UnboundedReceiver<StoreEvent>,
    state: Arc<State>,
}

/// A notifier and its queue.
pub fn channel() -> (Notifier, Queue) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let state = Arc::new(State::default());
    (Notifier { sender, state: Arc::clone(&state) }, Queue { receiver, state })
}

impl Notifier {
    /// Notes a change. Counted as pending before the store answers the request that made it.
    pub fn notify(
        &self,
        name: &'static str,
        bucket: &str,
        key: &str,
        size: Option<i64>,
        etag: Option<&str>,
    ) {
        let sequence = self.state.sequence.fetch_add(1, Ordering::SeqCst);
        let event = StoreEvent {
            name,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size,
            etag: etag.map(|e| e.trim_matches('"').to_owned()),
            sequencer: format!("{sequence:018X}"),
        };
        self.state.pending.fetch_add(1, Ordering::SeqCst);
        if self.sender.send(event).is_err() {
            self.done();
        }
    }

    fn done(&self) {
        self.state.done();
    }

    /// Waits until every change noted so far (and those its handling caused) was handled.
    pub async fn settled(&self) {
        loop {
            let notified = self.state.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// The S3 event notification S3 sends for `event` (event version 2.1), built with the
/// `aws_lambda_events` types the function reads it with. The key is form-encoded, as S3
/// writes it.
pub fn s3_notification(event: &StoreEvent) -> S3Event {
    let mut record = S3EventRecord::default();
    record.event_version = Some("2.1".into());
    record.event_source = Some("aws:s3".into());
    record.aws_region = Some(crate::REGION.into());
    record.event_time = chrono_now();
    record.event_name = Some(event.name.into());
    record.principal_id.principal_id = Some("AWS:devserver".into());
    record.request_parameters.source_ip_address = Some("127.0.0.1".into());
    record.s3.schema_version = Some("1.0".into());
    record.s3.configuration_id = Some("originals".into());
    record.s3.bucket.name = Some(event.bucket.clone());
    record.s3.bucket.arn = Some(format!("arn:aws:s3:::{}", event.bucket));
    record.s3.object.key = Some(crate::store::encode_listed_key(&event.key));
    record.s3.object.size = event.size;
    record.s3.object.e_tag = event.etag.clone();
    record.s3.object.sequencer = Some(event.sequencer.clone());
    let mut notification = S3Event::default();
    notification.records = vec![record];
    notification
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// The SQS event a Lambda event source mapping delivers for one message whose body is
/// `body`, received `receive_count` times.
pub fn sqs_event(message_id: &str, body: &str, receive_count: u32) -> SqsEvent {
    let mut message = SqsMessage::default();
    message.message_id = Some(message_id.to_owned());
    message.receipt_handle = Some(format!("{message_id}#{receive_count}"));
    message.body = Some(body.to_owned());
    message.attributes = [
        ("ApproximateReceiveCount".to_owned(), receive_count.to_string()),
        ("SenderId".to_owned(), "AIDAS3NOTIFICATIONS".to_owned()),
    ]
    .into_iter()
    .collect();
    message.event_source = Some("aws:sqs".into());
    message.event_source_arn = Some(format!("arn:aws:sqs:{}:000000000000:events", crate::REGION));
    message.aws_region = Some(crate::REGION.into());
    let mut event = SqsEvent::default();
    event.records = vec![message];
    event
}

impl Queue {
    /// Delivers every change to `events`, one message at a time, until the store is gone.
    pub async fn deliver(mut self, events: Events) {
        while let Some(change) = self.receiver.recv().await {
            let body = serde_json::to_string(&s3_notification(&change))
                .unwrap_or_else(|e| format!("unserialisable: {e}"));
            let id = uuid::Uuid::new_v4().to_string();
            for receive in 1..=MAX_RECEIVES {
                // Through JSON, as the Lambda runtime hands the function its event.
                let json = serde_json::to_value(sqs_event(&id, &body, receive))
                    .and_then(serde_json::from_value::<SqsEvent>);
                let event = match json {
                    Ok(event) => event,
                    Err(e) => {
                        tracing::error!(error = %e, "SQS event does not round-trip");
                        break;
                    }
                };
                let response = events.handle_sqs(event).await;
                if response.batch_item_failures.is_empty() {
                    break;
                }
                if receive == MAX_RECEIVES {
                    tracing::error!(key = change.key, "event moved to the dead-letter queue");
                } else {
                    tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(receive)))
                        .await;
                }
            }
            self.state.done();
        }
    }
}

/// One recorded invalidation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invalidation {
    /// The batch's CallerReference.
    pub reference: String,
    /// The paths, as sent.
    pub paths: Vec<String>,
}

/// Invalidations on the devserver: the edge's cached copies go, and the batch is recorded.
#[derive(Clone)]
pub struct DevInvalidator {
    edge: Arc<crate::edge::Edge>,
    log: Arc<Mutex<Vec<Invalidation>>>,
}

impl DevInvalidator {
    /// Invalidates in `edge`'s cache.
    pub fn new(edge: Arc<crate::edge::Edge>) -> Self {
        Self { edge, log: Arc::default() }
    }

    /// Every invalidation so far, oldest first. CloudFront takes the same reference with the
    /// same paths as one invalidation, so a repeat is recorded once.
    pub fn invalidations(&self) -> Vec<Invalidation> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Invalidator for DevInvalidator {
    fn invalidate<'a>(
        &'a self,
        paths: &'a [String],
        reference: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(earlier) = log.iter().find(|i| i.reference == reference) {
                // CloudFront: InvalidationBatchAlreadyExists for another batch under it.
                return if earlier.paths == paths {
                    Ok(())
                } else {
                    Err(format!("InvalidationBatchAlreadyExists: {reference}"))
                };
            }
            for path in paths {
                self.edge.invalidate(path);
            }
            tracing::info!(reference, ?paths, "CloudFront invalidation");
            log.push(Invalidation { reference: reference.to_owned(), paths: paths.to_vec() });
            Ok(())
        })
    }
}

/// Where the development identity provider's port lists the invalidations made so far.
pub const INVALIDATIONS_ROUTE: &str = "/_devserver/invalidations";

/// The invalidations as JSON (`[{"reference": ..., "paths": [...]}, ...]`).
pub fn invalidations_response(
    invalidator: &DevInvalidator,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let body = serde_json::to_vec(&invalidator.invalidations()).unwrap_or_default();
    let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}
