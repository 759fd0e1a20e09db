//! Harness for the end-to-end tests: a devserver on ephemeral loopback ports with its
//! embedded S3 store in a temporary directory, in either delivery mode, an HTTP client that
//! does not follow redirects, and helpers to walk a redirect chain as a browser does and
//! read the bucket over S3.

pub mod fault_proxy;
pub mod runtime_api;

use std::collections::HashMap;
use std::net::SocketAddr;

use aws_sdk_s3::primitives::ByteStream;
use devserver::{DevServer, Options};
pub use keyspace::{DeliveryMode, LocationEncoding};

/// Both delivery modes, for tests about delivery.
pub const MODES: [DeliveryMode; 2] = [DeliveryMode::Redirect, DeliveryMode::Failover];

/// Defines `mod $name { redirect, failover }`: one test per delivery mode, each running
/// `$body(mode)` (on a multi-threaded runtime when `multi_thread` follows: the browser
/// tests wait on child processes while the stack serves).
#[macro_export]
macro_rules! in_both_modes {
    ($name:ident, $body:ident, multi_thread) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redirect() {
                super::$body($crate::DeliveryMode::Redirect).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn failover() {
                super::$body($crate::DeliveryMode::Failover).await
            }
        }
    };
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn redirect() {
                super::$body($crate::DeliveryMode::Redirect).await
            }
            #[tokio::test]
            async fn failover() {
                super::$body($crate::DeliveryMode::Failover).await
            }
        }
    };
}

/// One running stack and what the tests need to reach it.
pub struct Stack {
    /// The running devserver (dropping it stops the servers).
    pub server: DevServer,
    /// Where the store keeps its files; removed on drop.
    pub data_dir: tempfile::TempDir,
    /// A client that never follows redirects.
    pub http: reqwest::Client,
}

/// Every port on loopback, chosen by the system.
pub fn ephemeral(opts: &mut Options) {
    opts.listen = loopback();
    opts.s3_listen = loopback();
    opts.website_listen = loopback();
    opts.api_listen = loopback();
    opts.function_url_listen = loopback();
    opts.idp_listen = loopback();
}

/// One hop of a redirect chain.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The URL requested.
    pub url: String,
    /// Its status.
    pub status: u16,
    /// Its headers.
    pub headers: reqwest::header::HeaderMap,
}

/// A redirect chain and its final body.
#[derive(Debug)]
pub struct Chain {
    /// Every response, first to last.
    pub hops: Vec<Hop>,
    /// The last response's body.
    pub body: bytes::Bytes,
}

impl Chain {
    /// The statuses in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.hops.iter().map(|h| h.status).collect()
    }

    /// The final response.
    pub fn last(&self) -> &Hop {
        self.hops.last().expect("a chain has at least one hop")
    }

    /// The final body parsed as a JSON error.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The project's website-rules.json.
pub fn rules() -> String {
    std::fs::read_to_string(devserver::RULES_PATH).expect("website-rules.json is readable")
}

/// template.yaml with the bucket policy's grant of ListBucket to the website's readers
/// removed (the policy of the original AWS sample, under which S3 may answer a miss 403).
pub fn template_without_list_bucket() -> String {
    let template = devserver::cloudformation::TEMPLATE;
    let grant = "            - Sid: MissingKeysAre404";
    let start = template.find(grant).expect("the grant");
    let end = start + template[start..].find("          # Origin access control").expect("its end");
    let without = format!("{}{}", &template[..start], &template[end..]);
    assert_eq!(without.matches(grant).count(), template.matches(grant).count() - 1);
    without
}

impl Stack {
    /// A stack with the embedded store, default settings (redirect mode) plus `resizer_env`.
    pub async fn start(resizer_env: &[(&str, &str)]) -> Self {
        Self::start_with(resizer_env, |_| {}).await
    }

    /// A stack in `mode`, default settings plus `resizer_env`.
    pub async fn start_in(mode: DeliveryMode, resizer_env: &[(&str, &str)]) -> Self {
        Self::start_with(resizer_env, |o| o.delivery = mode).await
    }

    /// The delivery mode.
    pub fn delivery(&self) -> DeliveryMode {
        self.server.delivery
    }

    /// The statuses a browser sees for a miss that succeeds: the website's 307 and the
    /// resizer's 307 before the image, or the image at once.
    pub fn miss(&self) -> Vec<u16> {
        match self.delivery() {
            DeliveryMode::Redirect => vec![307, 307, 200],
            DeliveryMode::Failover => vec![200],
        }
    }

    /// A stack whose options `adjust` may change (for example to use an external endpoint).
    pub async fn start_with(
        resizer_env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Options),
    ) -> Self {
        let data_dir = tempfile::tempdir().expect("temporary directory");
        let mut opts = Options::new(rules());
        ephemeral(&mut opts);
        opts.data_dir = data_dir.path().to_owned();
        opts.resizer_env = resizer_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>();
        adjust(&mut opts);
        let server = DevServer::start(opts).await.expect("devserver starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        Self { server, data_dir, http }
    }

    /// `website_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.website_url)
    }

    /// Sends one request without following redirects.
    pub async fn request(&self, method: reqwest::Method, url: &str) -> (Hop, bytes::Bytes) {
        let resp =
            self.http.request(method, url).send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let hop = Hop {
            url: url.to_owned(),
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
        };
        let body = resp.bytes().await.expect("body");
        (hop, body)
    }

    /// Sends `path` exactly as written (no URL normalisation: `%2E`, `..` and `//` stay),
    /// as curl does and browsers do not; returns the status, headers and body.
    pub async fn request_raw(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> (u16, http::HeaderMap, bytes::Bytes) {
        self.request_raw_with(method, path, None).await
    }

    /// [`Stack::request_raw`] with a `Cookie` header.
    pub async fn request_raw_with(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
    ) -> (u16, http::HeaderMap, bytes::Bytes) {
        use http_body_util::BodyExt as _;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>();
        let uri: http::Uri = self.url(path).parse().unwrap_or_else(|e| panic!("{path}: {e}"));
        let method = http::Method::from_bytes(method.as_str().as_bytes()).expect("method");
        let mut req = http::Request::builder().method(method).uri(uri);
        if let Some(cookie) = cookie {
            req = req.header(http::header::COOKIE, cookie);
        }
        let req = req.body(http_body_util::Empty::new()).expect("request");
        let resp = client.request(req).await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        (parts.status.as_u16(), parts.headers, body)
    }

    /// Follows redirects by hand (at most 10), recording every hop. A Location is read as
    /// a browser reads it: its bytes as UTF-8, resolved against the URL it came from with
    /// WHATWG URL parsing (spaces and non-ASCII escaped, `#` starting a fragment that is
    /// never sent).
    pub async fn follow(&self, method: reqwest::Method, path: &str) -> Chain {
        self.follow_with(method, path, None).await
    }

    /// Like [`Stack::follow`], sending `cookie` (a `Cookie` header value) on every hop, as a
    /// browser sends a site's cookies along its redirect chain.
    pub async fn follow_with(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
    ) -> Chain {
        let cookie: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        self.follow_with_headers(method, path, &cookie).await
    }

    /// Like [`Stack::follow`], sending `headers` on every hop, as a browser sends its
    /// `Accept` and a site's cookies along a redirect chain.
    pub async fn follow_with_headers(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Chain {
        let mut url = if path.starts_with("http") { path.to_owned() } else { self.url(path) };
        let mut hops = Vec::new();
        for _ in 0..10 {
            let mut req = self.http.request(method.clone(), &url);
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            let hop = Hop {
                url: url.clone(),
                status: resp.status().as_u16(),
                headers: resp.headers().clone(),
            };
            let body = resp.bytes().await.expect("body");
            let next = hop.headers.get("location").map(|l| {
                let base = url::Url::parse(&url).expect("the URL requested parses");
                let mut next = base
                    .join(&String::from_utf8_lossy(l.as_bytes()))
                    .unwrap_or_else(|e| panic!("Location {l:?}: {e}"));
                next.set_fragment(None);
                next.to_string()
            });
            let redirect = (300..400).contains(&hop.status);
            hops.push(hop);
            match next {
                Some(next) if redirect => url = next,
                _ => return Chain { hops, body },
            }
        }
        panic!("redirect loop: {hops:#?}");
    }

    /// Signs in through the development identity provider; returns the bearer token.
    pub async fn sign_in(&self, user: &str, galleries: &[&str]) -> String {
        let body = serde_json::json!({ "user": user, "galleries": galleries });
        let resp = self
            .http
            .post(format!("{}/sign-in", self.server.idp_url))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let value: serde_json::Value =
            serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        value["token"].as_str().expect("token").to_owned()
    }

    /// Calls the signer API with a bearer token (or none); returns status, headers and JSON.
    pub async fn api(
        &self,
        route: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let mut req = self.http.post(self.url(route)).body(body.to_string());
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{route}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("{route}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
        });
        (status, headers, value)
    }

    /// Calls the signer API as [`Stack::api`] does and returns the JSON of its 200.
    pub async fn granted(
        &self,
        route: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let (status, _, value) = self.api(route, token, body).await;
        assert_eq!(status, 200, "{route}: {value}");
        value
    }

    /// Uploads an original through S3.
    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) {
        self.server
            .client()
            .put_object()
            .bucket(&self.server.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    /// Reads an object through S3: (body, content type, cache control), or None if absent.
    pub async fn get(&self, key: &str) -> Option<(bytes::Bytes, Option<String>, Option<String>)> {
        let out = self
            .server
            .client()
            .get_object()
            .bucket(&self.server.bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        let content_type = out.content_type().map(str::to_owned);
        let cache_control = out.cache_control().map(str::to_owned);
        let body = out.body.collect().await.expect("object body").into_bytes();
        Some((body, content_type, cache_control))
    }

    /// Every key in the bucket, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let out = self
            .server
            .client()
            .list_objects_v2()
            .bucket(&self.server.bucket)
            .send()
            .await
            .expect("list objects");
        let mut keys: Vec<String> =
            out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
        keys.sort();
        keys
    }
}

/// The `Cookie` header a browser would send back for these `Set-Cookie` headers (cookies
/// set with `Max-Age=0` are deletions, not cookies).
pub fn cookie_header(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.contains("Max-Age=0"))
        .filter_map(|v| v.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Decodes an image and returns its format and dimensions.
pub fn inspect(bytes: &[u8]) -> (image::ImageFormat, u32, u32) {
    let format = image::guess_format(bytes).expect("an image format");
    let img = image::load_from_memory(bytes).expect("image decodes");
    (format, img.width(), img.height())
}
