//! A Lambda Runtime API on loopback, as the Lambda service offers it to a custom runtime
//! (`provided.al2023`): the built `bootstrap` long-polls `GET .../invocation/next`, answers
//! with `POST .../invocation/{id}/response` or `.../error`, and reports start-up failures to
//! `POST .../init/error`. Written from the Runtime API reference (version 2018-06-01), so that
//! the binaries are driven exactly as Lambda drives them: by their own `lambda_runtime` client,
//! over HTTP, with the event JSON as the body.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Mutex};

const PREFIX: &str = "/2018-06-01/runtime";

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST /invocation/{id}/response`: the function's result.
    Response(serde_json::Value),
    /// `POST /invocation/{id}/error`: the error document the runtime reported.
    Error(serde_json::Value),
}

struct Pending {
    id: String,
    event: Bytes,
    done: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_errors: std::sync::Mutex<Vec<serde_json::Value>>,
    polls: std::sync::atomic::AtomicUsize,
}

/// A running Runtime API endpoint.
pub struct RuntimeApi {
    addr: SocketAddr,
    queue: mpsc::UnboundedSender<Pending>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    /// Listens on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the Runtime API");
        let addr = listener.local_addr().unwrap();
        let (queue, events) = mpsc::unbounded_channel::<Pending>();
        let events = Arc::new(Mutex::new(events));
        let shared = Arc::new(Shared::default());
        let task = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let (events, shared) = (events.clone(), shared.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            serve(req, events.clone(), shared.clone())
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    });
                }
            })
        };
        Self { addr, queue, shared, task, next_id: Default::default() }
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` (`host:port`).
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `event` for the next `invocation/next` and waits for its outcome.
    pub async fn invoke(&self, event: &str, timeout: Duration) -> Outcome {
        let n = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("8f5c7a2e-0000-4000-8000-{n:012}");
        let (done, outcome) = oneshot::channel();
        self.queue
            .send(Pending { id, event: Bytes::copy_from_slice(event.as_bytes()), done })
            .expect("the Runtime API is running");
        tokio::time::timeout(timeout, outcome)
            .await
            .expect("the function answered the invocation in time")
            .expect("the invocation was answered")
    }

    /// What the runtime posted to `init/error`.
    pub fn init_errors(&self) -> Vec<serde_json::Value> {
        self.shared.init_errors.lock().unwrap().clone()
    }

    /// How many times the runtime asked for the next invocation.
    pub fn polls(&self) -> usize {
        self.shared.polls.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap()
}

async fn serve(
    req: Request<Incoming>,
    events: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    let Some(route) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, r#"{"errorType":"NotFound"}"#));
    };
    let method = req.method().clone();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let json = || serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    match (method, route) {
        (Method::GET, "/invocation/next") => {
            shared.polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Long poll, as Lambda does: the answer comes when there is an event.
            let Some(pending) = events.lock().await.recv().await else {
                return Ok(reply(StatusCode::GONE, "{}"));
            };
            let deadline =
                SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 30_000;
            shared.waiting.lock().await.insert(pending.id.clone(), pending.done);
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("lambda-runtime-aws-request-id", &pending.id)
                .header("lambda-runtime-deadline-ms", deadline.to_string())
                .header(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:eu-west-1:123456789012:function:under-test",
                )
                .header(
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000;Sampled=0",
                )
                .body(Full::new(pending.event))
                .unwrap())
        }
        (Method::POST, "/init/error") => {
            shared.init_errors.lock().unwrap().push(json());
            Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
        }
        (Method::POST, route) => {
            let Some(rest) = route.strip_prefix("/invocation/") else {
                return Ok(reply(StatusCode::NOT_FOUND, r#"{"errorType":"NotFound"}"#));
            };
            let (id, outcome) = match rest.rsplit_once('/') {
                Some((id, "response")) => (id, Outcome::Response(json())),
                Some((id, "error")) => (id, Outcome::Error(json())),
                _ => return Ok(reply(StatusCode::NOT_FOUND, r#"{"errorType":"NotFound"}"#)),
            };
            match shared.waiting.lock().await.remove(id) {
                Some(done) => {
                    let _ = done.send(outcome);
                    Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
                }
                None => Ok(reply(
                    StatusCode::BAD_REQUEST,
                    r#"{"errorType":"InvalidRequestID","errorMessage":"unknown request id"}"#,
                )),
            }
        }
        _ => Ok(reply(StatusCode::METHOD_NOT_ALLOWED, r#"{"errorType":"MethodNotAllowed"}"#)),
    }
}

/// The `bootstrap` for function binary `name`: `$LAMBDA_BOOTSTRAP_DIR/{name}/bootstrap` when
/// set (what `cargo lambda build` writes, as `scripts/test` does), else the workspace's own
/// build of the binary next to this test.
pub fn bootstrap(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("LAMBDA_BOOTSTRAP_DIR") {
        // Relative to the workspace root, where scripts run.
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let path = root.join(dir).join(name).join("bootstrap");
        assert!(path.is_file(), "{} is missing: run cargo lambda build first", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/<name>
    let path = exe.parent().and_then(|d| d.parent()).expect("target/<profile>").join(name);
    assert!(path.is_file(), "{} is missing: cargo build -p {name} first", path.display());
    path
}

/// The environment Lambda gives a function, for `name`, on this Runtime API.
pub fn lambda_environment(api: &RuntimeApi, name: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api.address()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/21/[$LATEST]0123456789abcdef".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("AWS_REGION", "eu-west-1".to_owned()),
        ("AWS_DEFAULT_REGION", "eu-west-1".to_owned()),
        ("TZ", ":UTC".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A function binary started with exactly `env` (nothing inherited), its output captured.
pub struct Function {
    child: tokio::process::Child,
}

impl Function {
    /// Starts `binary` with `env` only.
    pub fn spawn(binary: &std::path::Path, env: &[(String, String)]) -> Self {
        let child = tokio::process::Command::new(binary)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", binary.display()));
        Self { child }
    }

    /// Waits for the process to exit (within `timeout`); returns (success, stdout + stderr).
    pub async fn exit(self, timeout: Duration) -> (bool, String) {
        let out = tokio::time::timeout(timeout, self.child.wait_with_output())
            .await
            .expect("the function exits on its own")
            .expect("wait for the function");
        let text = [out.stdout, out.stderr].map(|b| String::from_utf8_lossy(&b).into_owned());
        (out.status.success(), text.concat())
    }
}
