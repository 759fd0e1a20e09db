//! The bucket's S3 website endpoint (`http://{bucket}.s3-website-{region}.amazonaws.com`)
//! on loopback: GET/HEAD of objects with their stored headers, website-rules.json applied
//! on a miss with S3's semantics, and the bucket policy's part in it: only readers that
//! present the secret Referer are served (CloudFront adds it), and a missing key is 404
//! only when the policy grants those readers `s3:ListBucket` (403 otherwise, the reading
//! users of the original AWS sample report, on which no routing rule fires).

use std::convert::Infallible;
use std::sync::Arc;

use aws_sdk_s3::error::SdkError;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use keyspace::LocationEncoding;

use crate::website::{Origin, WebsiteConfiguration};

/// What the bucket policy grants the website endpoint's readers.
#[derive(Debug, Clone)]
pub struct ReaderPolicy {
    /// The `aws:Referer` a reader must present (`None`: anyone may read).
    pub referer: Option<String>,
    /// Whether the readers also have `s3:ListBucket`, so a missing key is 404 not 403.
    pub list_bucket: bool,
}

/// Everything the website endpoint needs.
pub struct Website {
    /// The filled, validated website configuration.
    pub config: WebsiteConfiguration,
    /// Reads objects through the S3 protocol, as the website endpoint reads the bucket.
    pub client: aws_sdk_s3::Client,
    /// The bucket served.
    pub bucket: String,
    /// `host:port` this endpoint answers on, for redirects that keep the host.
    pub host: String,
    /// The bucket policy's grant to readers.
    pub policy: ReaderPolicy,
    /// How S3 writes a key into a routing rule's Location (undocumented; each reading is
    /// emulated).
    pub encoding: LocationEncoding,
}

type Reply = Response<Full<Bytes>>;

/// Answers one request to the website endpoint.
pub async fn serve(
    site: Arc<Website>,
    req: Request<hyper::body::Incoming>,
) -> Result<Reply, Infallible> {
    Ok(answer(&site, req.method(), req.uri().path(), req.headers()).await)
}

async fn answer(site: &Website, method: &Method, path: &str, headers: &HeaderMap) -> Reply {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
    }
    if let Some(want) = &site.policy.referer {
        let given = headers.get(header::REFERER).map(HeaderValue::as_bytes);
        if given != Some(want.as_bytes()) {
            return access_denied();
        }
    }
    let raw = path.strip_prefix('/').unwrap_or(path);
    // Exactly one `/` goes: S3 reads `//a.jpg` as the key `/a.jpg`.
    let Ok(key) = percent_encoding::percent_decode_str(raw).decode_utf8() else {
        return text(StatusCode::BAD_REQUEST, "400 Bad Request: the path is not UTF-8");
    };
    let key = site.config.object_key(&key);
    let origin =
        Origin { protocol: "http", host: &site.host, requested: raw, encoding: site.encoding };
    if let Some(to) = site.config.route(&key, None, origin) {
        return redirect(to.status, &to.location);
    }
    match fetch(site, &key, method == Method::HEAD).await {
        Ok(object) => object.reply(headers),
        Err(Lookup::NotFound) if !site.policy.list_bucket => access_denied(),
        Err(Lookup::NotFound) => {
            if let Some(to) = site.config.route(&key, Some(404), origin) {
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

/// The website endpoint's 403 for a reader the policy does not allow (or, without
/// ListBucket, for a key that does not exist).
fn access_denied() -> Reply {
    let body = "<html><head><title>403 Forbidden</title></head><body><h1>403 Forbidden</h1>\
                <ul><li>Code: AccessDenied</li><li>Message: Access Denied</li></ul></body></html>\n";
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    resp.headers_mut().insert("x-amz-error-code", HeaderValue::from_static("AccessDenied"));
    resp
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

async fn fetch(site: &Website, key: &str, head_only: bool) -> Result<Object, Lookup> {
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
async fn not_found(site: &Website, key: &str) -> Reply {
    if let Some(doc) = &site.config.error_document {
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
