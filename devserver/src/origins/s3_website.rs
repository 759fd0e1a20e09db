//! The website endpoint: what `http://{bucket}.s3-website-{region}.amazonaws.com` does, on
//! loopback. GET/HEAD of objects with their stored headers, website-rules.json applied on a
//! miss with S3's semantics, and the resizer's handler mounted at `/resize` (in AWS it sits
//! behind API Gateway; here it shares the port so the redirect chain needs one host).

use std::convert::Infallible;
use std::sync::Arc;

use aws_sdk_s3::error::SdkError;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::auth::DevAuth;
use crate::private::{refused, PrivateGuard};
use crate::website::{Origin, WebsiteConfiguration};
use crate::PeerAddr;

/// Everything the website endpoint needs.
pub struct Site {
    /// The filled, validated website configuration.
    pub website: WebsiteConfiguration,
    /// Reads objects through the S3 protocol, as the website endpoint reads the bucket.
    pub client: aws_sdk_s3::Client,
    /// The bucket served.
    pub bucket: String,
    /// The resizer, mounted in-process.
    pub resizer: resizer::App,
    /// `host:port` this endpoint answers on, for redirects that keep the host.
    pub host: String,
    /// The signer, mounted in-process at `/api/`.
    pub signer: signer::handler::App,
    /// Development sign-in (the JWT authorizer's stand-in).
    pub auth: DevAuth,
    /// The CloudFront-like check on private paths.
    pub guard: PrivateGuard,
}

type Reply = Response<Full<Bytes>>;

/// Answers one request to the website port.
pub async fn serve(
    site: Arc<Site>,
    req: Request<hyper::body::Incoming>,
) -> Result<Reply, Infallible> {
    let client_ip = req
        .extensions()
        .get::<PeerAddr>()
        .map(|p| p.0.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let path = req.uri().path().to_owned();
    // Signatures are checked against the configured origin (CloudFront's own domain), never
    // against the client's Host header, which the client controls.
    let host = site.host.clone();
    let reply = if path == "/resize" {
        // A miss on a private sized path reaches the resizer only with a signature that
        // opens that sized path (the 307 chain carries cookies, not query parameters).
        if let Some(key) = resize_key(req.uri().query()) {
            let derivative = format!("/{}", resizer::key::encode_key_path(&key));
            let url = format!("http://{host}{derivative}");
            if let Err(refusal) =
                site.guard.check(&derivative, None, &url, req.headers(), client_ip)
            {
                return Ok(refused(refusal));
            }
        }
        resize(&site, req).await
    } else if path.starts_with("/api/") {
        crate::api::serve(&site.signer, &site.auth, req, client_ip).await
    } else {
        let url = format!(
            "http://{host}{}",
            req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/")
        );
        if let Err(refusal) =
            site.guard.check(&path, req.uri().query(), &url, req.headers(), client_ip)
        {
            return Ok(refused(refusal));
        }
        website(&site, req.method(), &path, req.headers()).await
    };
    Ok(reply)
}

/// The resizer's `key` parameter, decoded as the resizer decodes it.
fn resize_key(query: Option<&str>) -> Option<String> {
    resizer::key::decode_key_param(query).ok().flatten()
}

/// Hands the request to the resizer's own `handle`, as lambda_http would.
async fn resize(site: &Site, req: Request<hyper::body::Incoming>) -> Reply {
    let (parts, _body) = req.into_parts();
    let lambda_req = Request::from_parts(parts, lambda_http::Body::Empty);
    from_lambda(resizer::handle(&site.resizer, lambda_req).await)
}

/// A mounted handler's lambda_http response as the devserver's HTTP response.
pub(crate) fn from_lambda(resp: Response<lambda_http::Body>) -> Reply {
    let (parts, body) = resp.into_parts();
    let bytes = match body {
        lambda_http::Body::Text(text) => Bytes::from(text),
        lambda_http::Body::Binary(data) => Bytes::from(data),
        _ => Bytes::new(),
    };
    Response::from_parts(parts, Full::new(bytes))
}

async fn website(site: &Site, method: &Method, path: &str, headers: &HeaderMap) -> Reply {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
    }
    // Exactly one `/` goes: S3 reads `//a.jpg` as the key `/a.jpg`.
    let Ok(key) =
        percent_encoding::percent_decode_str(path.strip_prefix('/').unwrap_or(path)).decode_utf8()
    else {
        return text(StatusCode::BAD_REQUEST, "400 Bad Request: the path is not UTF-8");
    };
    let key = site.website.object_key(&key);
    let origin = Origin {
        protocol: "http",
        host: headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or(&site.host),
    };
    if let Some(to) = site.website.route(&key, None, origin) {
        return redirect(to.status, &to.location);
    }
    match fetch(site, &key, method == Method::HEAD).await {
        Ok(object) => object.reply(headers),
        Err(Lookup::NotFound) => {
            if let Some(to) = site.website.route(&key, Some(404), origin) {
                return redirect(to.status, &to.location);
            }
            not_found(site, &key).await
        }
        Err(Lookup::Failed(detail)) => {
            tracing::error!(%detail, key, "website lookup failed");
            text(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable")
        }
    }
}

/// An object as the website endpoint returns it.
struct Object {
    body: Bytes,
    headers: HeaderMap,
    etag: Option<String>,
}

impl Object {
    fn reply(self, request_headers: &HeaderMap) -> Reply {
        let not_modified = match (&self.etag, request_headers.get(header::IF_NONE_MATCH)) {
            (Some(etag), Some(wanted)) => wanted
                .to_str()
                .map(|w| w.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
                .unwrap_or(false),
            _ => false,
        };
        let mut resp =
            Response::new(Full::new(if not_modified { Bytes::new() } else { self.body }));
        *resp.headers_mut() = self.headers;
        if not_modified {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            resp.headers_mut().remove(header::CONTENT_LENGTH);
        }
        resp
    }
}

enum Lookup {
    NotFound,
    Failed(String),
}

fn put(headers: &mut HeaderMap, name: header::HeaderName, value: Option<&str>) {
    if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(name, v);
    }
}

/// Copies the stored object headers the website endpoint returns. HeadObjectOutput and
/// GetObjectOutput have the same accessors but no common trait, hence a macro.
macro_rules! stored_headers {
    ($out:expr) => {{
        let out = &$out;
        let mut headers = HeaderMap::new();
        put(&mut headers, header::CONTENT_TYPE, out.content_type());
        put(&mut headers, header::CACHE_CONTROL, out.cache_control());
        put(&mut headers, header::CONTENT_ENCODING, out.content_encoding());
        put(&mut headers, header::CONTENT_DISPOSITION, out.content_disposition());
        put(&mut headers, header::CONTENT_LANGUAGE, out.content_language());
        put(&mut headers, header::LAST_MODIFIED, http_date(out.last_modified()).as_deref());
        put(
            &mut headers,
            header::CONTENT_LENGTH,
            out.content_length().map(|l| l.to_string()).as_deref(),
        );
        put(&mut headers, header::ETAG, out.e_tag());
        (headers, out.e_tag().map(str::to_owned))
    }};
}

async fn fetch(site: &Site, key: &str, head_only: bool) -> Result<Object, Lookup> {
    let classify = |e: &dyn ErrorStatus| match e.status() {
        Some(404) => Lookup::NotFound,
        _ => Lookup::Failed(e.describe()),
    };
    if head_only {
        let out = site
            .client
            .head_object()
            .bucket(&site.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let (headers, etag) = stored_headers!(out);
        return Ok(Object { body: Bytes::new(), headers, etag });
    }
    let out = site
        .client
        .get_object()
        .bucket(&site.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let (headers, etag) = stored_headers!(out);
    let body = out.body.collect().await.map_err(|e| Lookup::Failed(e.to_string()))?.into_bytes();
    Ok(Object { body, headers, etag })
}

fn http_date(t: Option<&aws_smithy_types::DateTime>) -> Option<String> {
    t.and_then(|t| t.fmt(aws_smithy_types::date_time::Format::HttpDate).ok())
}

/// The status and a description of an SDK error, whatever the operation.
trait ErrorStatus {
    fn status(&self) -> Option<u16>;
    fn describe(&self) -> String;
}

impl<E: std::error::Error + 'static> ErrorStatus
    for SdkError<E, aws_sdk_s3::config::http::HttpResponse>
{
    fn status(&self) -> Option<u16> {
        self.raw_response().map(|r| r.status().as_u16())
    }
    fn describe(&self) -> String {
        aws_smithy_types::error::display::DisplayErrorContext(self).to_string()
    }
}

/// S3's website 404: the ErrorDocument when one is configured and exists, else a small page.
async fn not_found(site: &Site, key: &str) -> Reply {
    if let Some(doc) = &site.website.error_document {
        if let Ok(object) = fetch(site, &doc.key, false).await {
            let mut resp = object.reply(&HeaderMap::new());
            *resp.status_mut() = StatusCode::NOT_FOUND;
            return resp;
        }
    }
    let body = format!(
        "<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1>\
         <ul><li>Code: NoSuchKey</li><li>Key: {}</li></ul></body></html>\n",
        html_escape(key)
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    resp.headers_mut().insert("x-amz-error-code", HeaderValue::from_static("NoSuchKey"));
    resp
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn redirect(status: u16, location: &str) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    if let Ok(value) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, value);
    }
    resp
}

fn text(status: StatusCode, body: &'static str) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
