//! A fault-injecting HTTP proxy between an S3 client and an S3-compatible store, on loopback:
//! real HTTP/1.1, real sockets. It forwards every request untouched unless a rule (or the
//! seeded random mode) picks a fault for it: S3's own error answers (500 InternalError, 503
//! SlowDown), a connection reset, an answer cut in its head or in its body, an answer held
//! back, a body that stalls or trickles. It counts what it saw and what it injected, so a
//! test can tell how many times the client retried.
//!
//! Requests are matched by method and object key, read from the path-style URL
//! (`/{bucket}/{key}`, percent-decoded; the query is ignored).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

type ProxyBody = BoxBody<Bytes, Cut>;

/// One fault, injected in place of forwarding a request or answering it faithfully.
///
/// The first three never reach the store; the others forward the request first, so a PUT
/// they hit has been stored when its answer goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `500 InternalError` with S3's XML error body (no body for a HEAD, as S3 answers).
    InternalError,
    /// `503 SlowDown` with S3's XML error body (no body for a HEAD).
    SlowDown,
    /// The connection is reset (RST) without a byte of an answer.
    Reset,
    /// Forwarded; the answer is cut in the middle of its status line and headers, and the
    /// connection reset.
    CutHeaders,
    /// Forwarded; the answer's head, with its Content-Length N, and N/2 bytes of its body,
    /// then the connection closes. An answer without a body (a PUT's) is cut in its head, as
    /// [`Fault::CutHeaders`] does.
    CutBody,
    /// Forwarded; the answer is held back this long, then the connection closes without it.
    Stall(Duration),
    /// Forwarded; the answer's head and half its body, then nothing for this long, then the
    /// connection closes. An answer without a body is held back, as [`Fault::Stall`] does.
    StallBody(Duration),
    /// Forwarded; the whole answer, its body in [`SLOW_BODY_PIECES`] pieces spread over this
    /// long.
    SlowBody(Duration),
}

/// How many pieces a [`Fault::SlowBody`] trickles the body in.
pub const SLOW_BODY_PIECES: u32 = 16;

impl Fault {
    /// The fault's name in counters and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::InternalError => "internal-error",
            Fault::SlowDown => "slow-down",
            Fault::Reset => "reset",
            Fault::CutHeaders => "cut-headers",
            Fault::CutBody => "cut-body",
            Fault::Stall(_) => "stall",
            Fault::StallBody(_) => "stall-body",
            Fault::SlowBody(_) => "slow-body",
        }
    }
}

/// Which requests a rule applies to, and how many times.
#[derive(Debug, Clone)]
pub struct Rule {
    method: Method,
    /// `None`: any key.
    key: Option<String>,
    fault: Fault,
    /// `None`: every time.
    remaining: Option<usize>,
}

impl Rule {
    /// `fault` on the next `method` request for `key` only.
    pub fn once(method: Method, key: &str, fault: Fault) -> Self {
        Self::times(method, key, fault, 1)
    }

    /// `fault` on the next `n` `method` requests for `key`.
    pub fn times(method: Method, key: &str, fault: Fault, n: usize) -> Self {
        Self { method, key: Some(key.to_owned()), fault, remaining: Some(n) }
    }

    /// `fault` on every `method` request for `key` until the rules are cleared.
    pub fn always(method: Method, key: &str, fault: Fault) -> Self {
        Self { method, key: Some(key.to_owned()), fault, remaining: None }
    }

    fn matches(&self, method: &Method, key: &str) -> bool {
        self.remaining != Some(0)
            && self.method == *method
            && self.key.as_deref().is_none_or(|k| k == key)
    }
}

type Applies = Arc<dyn Fn(&Method, &str) -> bool + Send + Sync>;

/// Faults at random: each request that `applies` accepts gets, with probability
/// `per_mille`/1000, one of `faults`, drawn from a generator seeded with `seed`.
struct Chaos {
    state: u64,
    per_mille: u64,
    faults: Vec<Fault>,
    applies: Applies,
}

impl Chaos {
    /// xorshift64*: enough to spread faults, and the same sequence for the same seed.
    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick(&mut self, method: &Method, key: &str) -> Option<Fault> {
        if self.faults.is_empty() || !(self.applies)(method, key) {
            return None;
        }
        // The high bits: xorshift64*'s low bits are its weakest.
        let roll = (self.next() >> 32) % 1000;
        let which = (self.next() >> 32) as usize % self.faults.len();
        (roll < self.per_mille).then(|| self.faults[which])
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its method.
    pub method: Method,
    /// The object key it named (empty for a bucket-level request).
    pub key: String,
    /// The fault it got, if any.
    pub fault: Option<Fault>,
    /// When it arrived, from the proxy's start.
    pub at: Duration,
}

#[derive(Default)]
struct Plan {
    rules: Vec<Rule>,
    chaos: Option<Chaos>,
}

struct State {
    upstream: String,
    started: Instant,
    plan: Mutex<Plan>,
    seen: Mutex<Vec<Seen>>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running proxy. Dropping it closes the listener and every connection.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`: give it to a client as its S3 endpoint.
    pub url: String,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fault proxy");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            started: Instant::now(),
            plan: Mutex::default(),
            seen: Mutex::default(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let task = tokio::spawn(accept(listener, Arc::clone(&state)));
        Self { url, state, task }
    }

    /// Adds a rule; the first rule that matches a request (in the order added) decides.
    pub fn add(&self, rule: Rule) {
        lock(&self.state.plan).rules.push(rule);
    }

    /// Faults at random from now on (see [`Fault`]): each request `applies` accepts gets one
    /// of `faults` with probability `per_mille`/1000, drawn from a generator seeded with
    /// `seed`. Rules still come first.
    pub fn chaos(
        &self,
        seed: u64,
        per_mille: u64,
        faults: &[Fault],
        applies: impl Fn(&Method, &str) -> bool + Send + Sync + 'static,
    ) {
        lock(&self.state.plan).chaos = Some(Chaos {
            // xorshift's state must not be zero.
            state: seed | 1,
            per_mille,
            faults: faults.to_vec(),
            applies: Arc::new(applies),
        });
    }

    /// Forwards everything untouched from now on: removes every rule and the random mode.
    pub fn clear(&self) {
        *lock(&self.state.plan) = Plan::default();
    }

    /// Every request seen so far, in order of arrival.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state.seen).clone()
    }

    /// How many `method` requests for `key` the proxy saw (the client's retries included).
    pub fn requests(&self, method: &Method, key: &str) -> usize {
        lock(&self.state.seen).iter().filter(|s| s.method == *method && s.key == key).count()
    }

    /// How many faults of each kind were injected, by [`Fault::name`].
    pub fn injected(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for fault in lock(&self.state.seen).iter().filter_map(|s| s.fault) {
            *counts.entry(fault.name()).or_insert(0) += 1;
        }
        counts
    }

    /// How many faults were injected in all.
    pub fn injected_total(&self) -> usize {
        self.injected().values().sum()
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    // Owned here, so aborting this task aborts every connection too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                let _ = socket.set_nodelay(true);
                connections.spawn(serve(socket, Arc::clone(&state)));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// What the service tells the socket under it: how many more bytes it may write (to cut an
/// answer's head), and whether closing it should reset the connection.
#[derive(Debug)]
struct Control {
    budget: AtomicUsize,
    reset: AtomicBool,
}

struct FaultyIo {
    stream: TcpStream,
    control: Arc<Control>,
}

impl Drop for FaultyIo {
    fn drop(&mut self) {
        if self.control.reset.load(Ordering::SeqCst) {
            // SO_LINGER 0: the close sends RST instead of FIN.
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for FaultyIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultyIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let budget = self.control.budget.load(Ordering::SeqCst);
        if budget == 0 {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "fault proxy: answer cut",
            )));
        }
        let n = buf.len().min(budget);
        let written = Pin::new(&mut self.stream).poll_write(cx, &buf[..n]);
        if let Poll::Ready(Ok(w)) = written {
            if budget != usize::MAX {
                self.control.budget.fetch_sub(w, Ordering::SeqCst);
            }
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

async fn serve(socket: TcpStream, state: Arc<State>) {
    let control = Arc::new(Control { budget: AtomicUsize::new(usize::MAX), reset: false.into() });
    let io = FaultyIo { stream: socket, control: Arc::clone(&control) };
    let service = hyper::service::service_fn(move |req| {
        let state = Arc::clone(&state);
        let control = Arc::clone(&control);
        async move { answer(&state, &control, req).await }
    });
    // Errors here are the faults themselves (or a client that went away).
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// The object key a path-style S3 URL names: `/{bucket}/{key}` percent-decoded.
fn object_key(path: &str) -> String {
    let rest = path.trim_start_matches('/');
    let key = rest.split_once('/').map_or("", |(_, key)| key);
    percent_encoding::percent_decode_str(key).decode_utf8_lossy().into_owned()
}

fn decide(state: &State, method: &Method, key: &str) -> Option<Fault> {
    let mut plan = lock(&state.plan);
    if let Some(rule) = plan.rules.iter_mut().find(|r| r.matches(method, key)) {
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        return Some(rule.fault);
    }
    plan.chaos.as_mut().and_then(|c| c.pick(method, key))
}

/// S3's error document.
fn s3_error(status: StatusCode, code: &str, message: &str, head: bool) -> Response<ProxyBody> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message><RequestId>FAULTPROXY</RequestId>\
         <HostId>fault-proxy</HostId></Error>"
    );
    let body = if head { Bytes::new() } else { Bytes::from(xml) };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/xml")
        .header("x-amz-request-id", "FAULTPROXY")
        .body(Full::new(body).map_err(|never| match never {}).boxed())
        .expect("an error response")
}

/// Why the proxy ended an answer early (a fault, or the store failing it); hyper then closes
/// the connection. A concrete type, not a boxed error: rustc cannot prove the connection's
/// future Send through `?` conversions into `Box<dyn Error>`.
#[derive(Debug)]
struct Cut(String);

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Cut {}

fn cut(why: impl std::fmt::Display) -> Cut {
    Cut(why.to_string())
}

async fn answer(
    state: &State,
    control: &Control,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Cut> {
    let method = req.method().clone();
    let key = object_key(req.uri().path());
    let fault = decide(state, &method, &key);
    lock(&state.seen).push(Seen {
        method: method.clone(),
        key,
        fault,
        at: state.started.elapsed(),
    });
    let head = method == Method::HEAD;
    match fault {
        Some(Fault::InternalError) => {
            let message = "We encountered an internal error. Please try again.";
            return Ok(s3_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message, head));
        }
        Some(Fault::SlowDown) => {
            let message = "Please reduce your request rate.";
            return Ok(s3_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown", message, head));
        }
        Some(Fault::Reset) => {
            control.reset.store(true, Ordering::SeqCst);
            return Err(cut("fault: reset"));
        }
        _ => {}
    }
    let (status, headers, upstream_body) = forward(state, req).await?;
    let length = upstream_body.len();
    let response = |body: ProxyBody| {
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = headers.clone();
        if !head {
            resp.headers_mut().insert(header::CONTENT_LENGTH, length.into());
        }
        resp
    };
    let whole = || Full::new(upstream_body.clone()).map_err(|never| match never {}).boxed();
    let cut_headers = || {
        // A few bytes of the status line and headers, then RST.
        control.budget.store(20, Ordering::SeqCst);
        control.reset.store(true, Ordering::SeqCst);
        Ok(response(whole()))
    };
    match fault {
        None => Ok(response(whole())),
        Some(Fault::CutHeaders) => cut_headers(),
        Some(Fault::CutBody) if head || length == 0 => cut_headers(),
        Some(Fault::CutBody) => {
            let half = upstream_body.slice(..length / 2);
            Ok(response(pieces(vec![(Duration::ZERO, half)], Some(Duration::ZERO))))
        }
        Some(Fault::Stall(time)) => {
            tokio::time::sleep(time).await;
            Err(cut("fault: stall"))
        }
        Some(Fault::StallBody(time)) if head || length == 0 => {
            tokio::time::sleep(time).await;
            Err(cut("fault: stall"))
        }
        Some(Fault::StallBody(time)) => {
            let half = upstream_body.slice(..length / 2);
            Ok(response(pieces(vec![(Duration::ZERO, half)], Some(time))))
        }
        Some(Fault::SlowBody(time)) => {
            let n = SLOW_BODY_PIECES as usize;
            let step = time / SLOW_BODY_PIECES;
            let size = length.div_ceil(n).max(1);
            let chunks = (0..length)
                .step_by(size)
                .map(|start| (step, upstream_body.slice(start..(start + size).min(length))))
                .collect();
            Ok(response(pieces(chunks, None)))
        }
        Some(Fault::InternalError | Fault::SlowDown | Fault::Reset) => unreachable!("answered"),
    }
}

/// A body sending each `(wait, bytes)` after its wait; then, when `fail_after` is set, waits
/// that long and fails, which makes hyper close the connection short of Content-Length.
fn pieces(chunks: Vec<(Duration, Bytes)>, fail_after: Option<Duration>) -> ProxyBody {
    let sent = futures::stream::iter(chunks).then(|(wait, bytes)| async move {
        tokio::time::sleep(wait).await;
        Ok::<_, Cut>(Frame::data(bytes))
    });
    let end = futures::stream::iter(fail_after).then(|wait| async move {
        tokio::time::sleep(wait).await;
        Err::<Frame<Bytes>, Cut>(cut("fault: body cut"))
    });
    http_body_util::BodyExt::boxed(StreamBody::new(sent.chain(end)))
}

/// Sends `req` to the store as it came (Host and signature untouched) and reads the whole
/// answer.
async fn forward(
    state: &State,
    req: Request<Incoming>,
) -> Result<(StatusCode, http::HeaderMap, Bytes), Cut> {
    let (mut parts, body) = req.into_parts();
    let body = body.collect().await.map_err(cut)?.to_bytes();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{}{path}", state.upstream).parse().map_err(cut)?;
    // The body is already here whole: no interim 100 Continue to relay.
    parts.headers.remove(header::EXPECT);
    let upstream =
        state.client.request(Request::from_parts(parts, Full::new(body))).await.map_err(cut)?;
    let (mut parts, body) = upstream.into_parts();
    let bytes = body.collect().await.map_err(cut)?.to_bytes();
    parts.headers.remove(header::TRANSFER_ENCODING);
    Ok((parts.status, parts.headers, bytes))
}
