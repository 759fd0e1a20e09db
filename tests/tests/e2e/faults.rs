//! Storage faults between the resizer and its bucket. A stack's S3 endpoint is our fault
//! proxy ([`e2e::fault_proxy`]) in front of another stack's embedded store; each test picks
//! faults for the resizer's calls (GET of the original, HEAD of the derivative, HEAD of the
//! original before the write, the create-only PUT) and checks, in both delivery modes:
//! - the answer is a whole image when the SDK's retries healed the fault, else the
//!   documented 5xx JSON (storage-error 502, storage-unavailable 503, storage-timeout 504);
//! - how many times the proxy saw the call (the SDK's retries), and how long the answer took;
//! - a request for another key succeeds meanwhile (the process keeps serving);
//! - the next request once the faults stop succeeds;
//! - every object in the bucket is whole: each original byte-identical to its upload, each
//!   derivative decoding completely at the size its key asks.
//!
//! Each case prints one `fault-row` line (`--nocapture`), the rows of
//! docs/reliability-faults.md.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use e2e::fault_proxy::{Fault, FaultProxy, Rule};
use e2e::{in_both_modes, DeliveryMode, Stack};
use futures::StreamExt as _;
use reqwest::Method;
use resizer::key::{parse_derivative_key, Size};

/// S3_OPERATION_TIMEOUT_MS where a fault is meant to outlast it: small, so a stall costs the
/// test little.
const SHORT_TIMEOUT: Duration = Duration::from_millis(1500);

/// S3_OPERATION_TIMEOUT_MS where the SDK's retries must run their course: three attempts
/// with the standard policy's jittered backoff (up to 1 s, then up to 2 s) fit well inside.
const RETRY_TIMEOUT: Duration = Duration::from_millis(6000);

/// The original the faults aim at.
const ORIGINAL: &str = "faults/a.jpg";
/// Another original, asked for meanwhile.
const OTHER: &str = "faults/b.jpg";
/// Both originals' dimensions.
const ORIGINAL_SIZE: (u32, u32) = (1200, 800);

/// A JPEG of a gradient with some noise (a few hundred KB), different for each `seed`.
fn original(seed: u32) -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32 ^ seed;
    let (w, h) = ORIGINAL_SIZE;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 48) as u8;
        image::Rgb([(x * 255 / w) as u8 ^ noise, (y * 255 / h) as u8, seed as u8 ^ noise])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .expect("encode the original");
    out
}

/// What a viewer got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A whole image at the size asked.
    Image,
    /// The resizer's JSON error: status and code.
    Error(u16, &'static str),
}

const STORAGE_ERROR: Outcome = Outcome::Error(502, "storage-error");
const UNAVAILABLE: Outcome = Outcome::Error(503, "storage-unavailable");
const TIMED_OUT: Outcome = Outcome::Error(504, "storage-timeout");
const INTERNAL: Outcome = Outcome::Error(500, "internal-error");

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Image => f.write_str("image"),
            Outcome::Error(status, code) => write!(f, "{status} {code}"),
        }
    }
}

/// Which of the resizer's S3 calls a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// GET of the original.
    GetOriginal,
    /// HEAD of the derivative (was it made meanwhile?), beside the GET.
    HeadDerivative,
    /// HEAD of the original after the resize (did it change?).
    HeadOriginal,
    /// The derivative's create-only PUT.
    PutDerivative,
}

impl Place {
    fn call(self, derivative: &str) -> (Method, String) {
        match self {
            Place::GetOriginal => (Method::GET, ORIGINAL.into()),
            Place::HeadDerivative => (Method::HEAD, derivative.into()),
            Place::HeadOriginal => (Method::HEAD, ORIGINAL.into()),
            Place::PutDerivative => (Method::PUT, derivative.into()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Place::GetOriginal => "GET original",
            Place::HeadDerivative => "HEAD derivative",
            Place::HeadOriginal => "HEAD original",
            Place::PutDerivative => "PUT derivative",
        }
    }
}

/// How often the fault repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Times {
    /// The first call only: a retry meets a healthy store.
    Once,
    /// Every call until the test clears it.
    Always,
}

/// One fault, where, how often, and what must come of it.
struct Case {
    fault: Fault,
    place: Place,
    times: Times,
    expected: Outcome,
    /// How many times the proxy must see the call (1: not retried).
    calls: usize,
}

/// A store, the proxy in front of it, and the stack using the proxy as its S3 endpoint.
struct Rig {
    store: Stack,
    proxy: FaultProxy,
    stack: Stack,
    timeout: Duration,
    originals: Vec<(&'static str, Vec<u8>)>,
    sizes: AtomicU32,
}

impl Rig {
    async fn start(mode: DeliveryMode, timeout: Duration) -> Self {
        let store = Stack::start_with(&[], |o| o.upload_samples = false).await;
        let originals = vec![(ORIGINAL, original(1)), (OTHER, original(2))];
        for (key, bytes) in &originals {
            store.put(key, bytes.clone(), "image/jpeg").await;
        }
        let proxy = FaultProxy::start(&store.server.s3_endpoint).await;
        let ms = timeout.as_millis().to_string();
        let stack = Stack::start_with(&[("S3_OPERATION_TIMEOUT_MS", ms.as_str())], |o| {
            o.delivery = mode;
            o.s3_endpoint = Some(proxy.url.clone());
            o.upload_samples = false;
        })
        .await;
        Self { store, proxy, stack, timeout, originals, sizes: AtomicU32::new(0) }
    }

    /// A box size no other request of this rig asked for.
    fn fresh_size(&self) -> String {
        let n = self.sizes.fetch_add(1, Ordering::SeqCst);
        format!("{}x{}", 200 + n, 150 + n)
    }

    /// Requests the viewer path of `key` and checks the answer's shape: a whole image at
    /// the size the key asks, or the resizer's JSON error with a 5xx that carries no
    /// internals.
    async fn answer(&self, key: &str) -> Outcome {
        let chain = self.stack.follow(Method::GET, &format!("/{key}")).await;
        let last = chain.last();
        if last.status == 200 {
            let statuses = chain.statuses();
            assert!(statuses == self.stack.miss() || statuses == [200], "{key}: {statuses:?}");
            assert_whole(key, &chain.body);
            return Outcome::Image;
        }
        let text = String::from_utf8_lossy(&chain.body);
        let before: &[u16] = match self.stack.delivery() {
            DeliveryMode::Redirect => &[307],
            DeliveryMode::Failover => &[],
        };
        assert_eq!(&chain.statuses()[..before.len()], before, "{key}: {text}");
        assert_eq!(chain.hops.len(), before.len() + 1, "{key}: {:?} {text}", chain.statuses());
        assert_eq!(last.headers["content-type"], "application/json", "{key}: {text}");
        assert_eq!(last.headers["cache-control"], "no-store", "{key}");
        let json = chain.json();
        assert!(!text.contains("127.0.0.1"), "5xx bodies carry no internals: {text}");
        let code = json["code"].as_str().expect("a code");
        [STORAGE_ERROR, UNAVAILABLE, TIMED_OUT, INTERNAL]
            .into_iter()
            .find(|o| matches!(o, Outcome::Error(s, c) if *s == last.status && *c == code))
            .unwrap_or_else(|| panic!("{key}: unexpected answer {} {json}", last.status))
    }

    /// Every object in the bucket is whole: the originals byte-identical to their uploads,
    /// every other object a derivative that decodes completely at the size its key asks.
    async fn assert_bucket_whole(&self) {
        for key in self.store.keys().await {
            let (bytes, _, _) = self.store.get(&key).await.expect("listed, so readable");
            if let Some((_, uploaded)) = self.originals.iter().find(|(k, _)| *k == key) {
                assert!(bytes[..] == uploaded[..], "{key}: the original changed");
                continue;
            }
            let parsed = parse_derivative_key(&key, 10_000)
                .unwrap_or_else(|e| panic!("{key}: neither an original nor a derivative: {e}"));
            assert!(
                self.originals.iter().any(|(k, _)| *k == parsed.original),
                "{key}: a derivative of no original"
            );
            assert_whole(&key, &bytes);
        }
    }

    /// Runs one case: the fault, a request for another key meanwhile, then the request
    /// again once the faults stop, then the bucket's check. Prints its row; returns how long
    /// the faulted request took.
    async fn run(&self, case: &Case) -> Duration {
        let derivative = format!("{}/{ORIGINAL}", self.fresh_size());
        let other = format!("{}/{OTHER}", self.fresh_size());
        let (method, key) = case.place.call(&derivative);
        self.proxy.add(match case.times {
            Times::Once => Rule::once(method.clone(), &key, case.fault),
            Times::Always => Rule::always(method.clone(), &key, case.fault),
        });
        let earlier = self.proxy.seen().len();
        let started = Instant::now();
        let faulted = async { (self.answer(&derivative).await, started.elapsed()) };
        let meanwhile = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let asked = Instant::now();
            (self.answer(&other).await, asked.elapsed(), started.elapsed())
        };
        let ((outcome, took), (meanwhile, other_took, other_done)) =
            tokio::join!(faulted, meanwhile);
        let log: Vec<_> = self.proxy.seen()[earlier..]
            .iter()
            .filter(|s| s.method == method && s.key == key)
            .cloned()
            .collect();
        let calls = log.len();
        self.proxy.clear();
        let row = format!(
            "fault-row | {} | {} | {} | {:?} | {outcome} | {calls} | {} ms | other key {} ms",
            self.stack.delivery(),
            case.fault.name(),
            case.place.name(),
            case.times,
            took.as_millis(),
            other_took.as_millis(),
        );
        eprintln!("{row}");
        assert_eq!(outcome, case.expected, "{row}");
        assert_eq!(calls, case.calls, "calls seen by the proxy: {row}\n{log:#?}");
        assert_eq!(meanwhile, Outcome::Image, "another key meanwhile: {row}");
        if took > Duration::from_millis(500) {
            assert!(other_done < took, "the other key did not wait for the fault: {row}");
        }
        assert_eq!(self.answer(&derivative).await, Outcome::Image, "once the faults stop: {row}");
        self.assert_bucket_whole().await;
        if outcome == TIMED_OUT {
            // Stalls last four times the timeout: a 504 well before that came from the
            // timeout, not from the stall's end (a loose line, for loaded machines).
            assert!(took < self.timeout * 3, "answered in time: {row}");
        }
        took
    }
}

/// `bytes` is a whole image at the size `key` asks of [`ORIGINAL_SIZE`]: it decodes to the
/// end (a JPEG ends with its EOI marker), at that size.
#[track_caller]
fn assert_whole(key: &str, bytes: &[u8]) {
    let parsed = parse_derivative_key(key, 10_000).expect("a derivative key");
    let format = image::guess_format(bytes).unwrap_or_else(|e| panic!("{key}: {e}"));
    if format == image::ImageFormat::Jpeg {
        assert!(
            bytes.ends_with(&[0xff, 0xd9]),
            "{key}: a JPEG without its end ({} B)",
            bytes.len()
        );
    }
    let img = image::load_from_memory(bytes).unwrap_or_else(|e| panic!("{key}: {e}"));
    let (w0, h0) = ORIGINAL_SIZE;
    let got = (img.width(), img.height());
    match parsed.size {
        Size::Box { width, height } => assert_eq!(got, (width, height), "{key}"),
        Size::Width(w) => assert_eq!(got.0, w.min(w0), "{key}"),
        Size::Height(h) => assert_eq!(got.1, h.min(h0), "{key}"),
    }
}

async fn run_all(mode: DeliveryMode, timeout: Duration, cases: &[Case]) {
    let rig = Rig::start(mode, timeout).await;
    for case in cases {
        rig.run(case).await;
    }
}

in_both_modes!(internal_errors_heal_by_retry_or_else_answer_502, internal_errors);
async fn internal_errors(mode: DeliveryMode) {
    use Place::*;
    use Times::*;
    let fault = Fault::InternalError;
    let case = |place, times, expected, calls| Case { fault, place, times, expected, calls };
    run_all(
        mode,
        RETRY_TIMEOUT,
        &[
            case(GetOriginal, Once, Outcome::Image, 2),
            case(GetOriginal, Always, STORAGE_ERROR, 3),
            case(HeadDerivative, Once, Outcome::Image, 2),
            case(HeadDerivative, Always, STORAGE_ERROR, 3),
            case(HeadOriginal, Always, STORAGE_ERROR, 3),
            case(PutDerivative, Once, Outcome::Image, 2),
            case(PutDerivative, Always, STORAGE_ERROR, 3),
        ],
    )
    .await;
}

in_both_modes!(slow_down_heals_by_retry_or_else_answers_503, slow_down);
async fn slow_down(mode: DeliveryMode) {
    use Place::*;
    use Times::*;
    let fault = Fault::SlowDown;
    let case = |place, times, expected, calls| Case { fault, place, times, expected, calls };
    run_all(
        mode,
        RETRY_TIMEOUT,
        &[
            case(GetOriginal, Once, Outcome::Image, 2),
            case(GetOriginal, Always, UNAVAILABLE, 3),
            case(PutDerivative, Once, Outcome::Image, 2),
            case(PutDerivative, Always, UNAVAILABLE, 3),
        ],
    )
    .await;
}

in_both_modes!(connection_resets_heal_by_retry_or_else_answer_503, resets);
async fn resets(mode: DeliveryMode) {
    use Place::*;
    use Times::*;
    let case = |fault, place, times, expected, calls| Case { fault, place, times, expected, calls };
    run_all(
        mode,
        RETRY_TIMEOUT,
        &[
            case(Fault::Reset, GetOriginal, Once, Outcome::Image, 2),
            case(Fault::Reset, GetOriginal, Always, UNAVAILABLE, 3),
            case(Fault::Reset, PutDerivative, Once, Outcome::Image, 2),
            case(Fault::Reset, PutDerivative, Always, UNAVAILABLE, 3),
            case(Fault::CutHeaders, GetOriginal, Once, Outcome::Image, 2),
            case(Fault::CutHeaders, GetOriginal, Always, UNAVAILABLE, 3),
        ],
    )
    .await;
}

in_both_modes!(a_put_whose_answer_is_cut_after_storing_serves_what_it_stored, cut_put_answers);
async fn cut_put_answers(mode: DeliveryMode) {
    use Place::*;
    use Times::*;
    // The store has the derivative when the answer breaks: the retry's create-only PUT then
    // finds it (412), and the miss is served; when every answer breaks, the request fails
    // but the next one finds the derivative made.
    let case = |fault, times, expected, calls| Case {
        fault,
        place: PutDerivative,
        times,
        expected,
        calls,
    };
    run_all(
        mode,
        RETRY_TIMEOUT,
        &[
            case(Fault::CutHeaders, Once, Outcome::Image, 2),
            case(Fault::CutHeaders, Always, UNAVAILABLE, 3),
            case(Fault::CutBody, Once, Outcome::Image, 2),
        ],
    )
    .await;
}

in_both_modes!(storage_stalling_past_the_operation_timeout_answers_504_in_time, stalls);
async fn stalls(mode: DeliveryMode) {
    use Place::*;
    let stall = Fault::Stall(SHORT_TIMEOUT * 4);
    let case =
        |place| Case { fault: stall, place, times: Times::Once, expected: TIMED_OUT, calls: 1 };
    // The stalled PUT reached the store: the next request finds the derivative made.
    run_all(mode, SHORT_TIMEOUT, &[case(GetOriginal), case(HeadDerivative), case(PutDerivative)])
        .await;
}

in_both_modes!(an_original_whose_body_is_cut_is_never_resized, cut_original);
async fn cut_original(mode: DeliveryMode) {
    // The SDK does not retry a body it already handed over; the store reads it once more.
    let case = |times, expected| Case {
        fault: Fault::CutBody,
        place: Place::GetOriginal,
        times,
        expected,
        calls: 2,
    };
    run_all(
        mode,
        RETRY_TIMEOUT,
        &[case(Times::Once, Outcome::Image), case(Times::Always, UNAVAILABLE)],
    )
    .await;
}

in_both_modes!(an_original_whose_body_stalls_or_crawls_answers_504_in_time, stalled_original);
async fn stalled_original(mode: DeliveryMode) {
    // The headers come at once; the body stops halfway, or trickles for four times the
    // timeout. The SDK's own operation timeout ends when the headers arrive.
    let case = |fault| Case {
        fault,
        place: Place::GetOriginal,
        times: Times::Once,
        expected: TIMED_OUT,
        calls: 1,
    };
    let faults = [Fault::SlowBody(SHORT_TIMEOUT * 4), Fault::StallBody(SHORT_TIMEOUT * 4)];
    run_all(mode, SHORT_TIMEOUT, &faults.map(case)).await;
}

in_both_modes!(a_slow_original_within_the_timeout_makes_a_whole_image, slow_original);
async fn slow_original(mode: DeliveryMode) {
    let rig = Rig::start(mode, SHORT_TIMEOUT).await;
    let trickle = SHORT_TIMEOUT / 2;
    let case = Case {
        fault: Fault::SlowBody(trickle),
        place: Place::GetOriginal,
        times: Times::Always,
        expected: Outcome::Image,
        calls: 1,
    };
    assert!(rig.run(&case).await >= trickle, "the body was trickled");
}

in_both_modes!(faults_at_random_under_concurrent_load_leave_every_object_whole, chaos);
async fn chaos(mode: DeliveryMode) {
    let rig = Rig::start(mode, SHORT_TIMEOUT).await;
    let faults = [
        Fault::InternalError,
        Fault::SlowDown,
        Fault::Reset,
        Fault::CutHeaders,
        Fault::CutBody,
        Fault::Stall(SHORT_TIMEOUT * 2),
        Fault::StallBody(SHORT_TIMEOUT * 2),
        Fault::SlowBody(SHORT_TIMEOUT / 3),
    ];
    // The resizer's calls only: the bucket's own GETs of derivatives (the S3 website's, the
    // failover origin's) are CloudFront's, not the resizer's.
    rig.proxy.chaos(16, 500, &faults, |method, key| {
        *method != Method::GET || parse_derivative_key(key, 10_000).is_err()
    });
    let keys: Vec<String> = ["300x200", "150x150", "640x480", "90x60"]
        .iter()
        .flat_map(|size| [format!("{size}/{ORIGINAL}"), format!("{size}/{OTHER}")])
        .collect();
    let requests: Vec<&String> = (0..32).map(|i| &keys[(i * 3) % keys.len()]).collect();
    let started = Instant::now();
    let outcomes: Vec<Outcome> = futures::stream::iter(requests)
        .map(|key| rig.answer(key))
        .buffer_unordered(8)
        .collect()
        .await;
    let took = started.elapsed();
    rig.proxy.clear();
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    eprintln!(
        "fault-mix | {mode} | 32 requests, 8 keys, concurrency 8 | {} ms | images {} | 502 {} | \
         503 {} | 504 {} | injected {:?} | calls seen {}",
        took.as_millis(),
        count(Outcome::Image),
        count(STORAGE_ERROR),
        count(UNAVAILABLE),
        count(TIMED_OUT),
        rig.proxy.injected(),
        rig.proxy.seen().len(),
    );
    assert_eq!(outcomes.len(), 32);
    assert_eq!(rig.proxy.injected().len(), faults.len(), "every kind: {:?}", rig.proxy.injected());
    for key in &keys {
        assert_eq!(rig.answer(key).await, Outcome::Image, "{key} once the faults stop");
    }
    rig.assert_bucket_whole().await;
}

#[tokio::test]
async fn the_fault_proxy_forwards_untouched_without_rules() {
    let rig = Rig::start(DeliveryMode::Redirect, SHORT_TIMEOUT).await;
    let key = format!("{}/{ORIGINAL}", rig.fresh_size());
    assert_eq!(rig.answer(&key).await, Outcome::Image);
    assert_eq!(rig.proxy.injected_total(), 0);
    // The resizer's calls went through it: each once.
    assert_eq!(rig.proxy.requests(&Method::GET, ORIGINAL), 1);
    assert_eq!(rig.proxy.requests(&Method::HEAD, &key), 1);
    assert_eq!(rig.proxy.requests(&Method::PUT, &key), 1);
    rig.assert_bucket_whole().await;
}
