//! CloudFront, as template.yaml's distribution describes it for the chosen delivery mode:
//! the behaviour is picked on the normalised path, in the template's order; its
//! viewer-request function runs (a Rust twin of the template's JavaScript), and the path it
//! leaves (a function may rewrite it) is the cache key and what the origin is asked for; a
//! behaviour with trusted key groups checks the signature; the cache answers what it holds;
//! then the request goes to the behaviour's origin or origin group, carrying only what the
//! behaviour's policies forward and the origin's custom headers, signed for origin access
//! control where the origin uses it; the behaviour's response headers policy adds its
//! headers to what the cache or the origin answers. The edge adds nothing AWS does not do:
//! its refusals are CloudFront's, and the reasons behind them go to a log
//! ([`Edge::refusals`]).
//!
//! The origins are separate servers on their own ports ([`crate::origins`]), reached over
//! HTTP from a different loopback address than the viewers', so an origin sees the edge's
//! address as its client, as in AWS.

pub mod cache;
pub mod distribution;
pub mod functions;
pub mod signature;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use signer::cloudfront::TrustedKeys;

use self::cache::Cache;
use self::distribution::{Behaviour, Distribution, Forwarding, OriginKind};
use self::functions::{FunctionResponse, Parameters, Twin, ViewerRequest};
use crate::cloudformation::TemplateError;
use crate::origins::oac;

type Reply = Response<Full<Bytes>>;

/// The largest request body the edge passes on (the signer's JSON; uploads go to S3).
const MAX_BODY: usize = 10 * 1024 * 1024;

/// The loopback address the edge's origin requests come from, so origins see CloudFront's
/// address, not the viewer's.
pub const EDGE_ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// Where the origins listen.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The S3 website endpoint (`host:port`), redirect mode.
    pub website: Option<String>,
    /// The HTTP API's own URL (`host:port`).
    pub api: String,
    /// The resizer's function URL (`host:port`), failover mode.
    pub function_url: Option<String>,
    /// The S3 REST endpoint (`host:port`) and bucket, path-style.
    pub store: String,
    /// The bucket.
    pub bucket: String,
    /// Whether the bucket policy grants CloudFront `s3:ListBucket` (REST origin): a
    /// missing key is then 404, else 403.
    pub rest_list_bucket: bool,
}

/// Why the edge refused a request, for tests and the log (CloudFront's answer itself
/// carries only CloudFront's wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The path as requested.
    pub path: String,
    /// The function's `x-refusal`, or the signature check's reason (`missing-signature`,
    /// `bad-signature`, `signature-expired`, ...).
    pub reason: String,
}

/// The distribution on loopback.
pub struct Edge {
    distribution: Distribution,
    twins: HashMap<String, (Twin, Parameters)>,
    keys: TrustedKeys,
    /// `http://host:port`: the distribution's own origin, against which signatures are checked.
    site: String,
    endpoints: Endpoints,
    oac: oac::Signer,
    client: Client<HttpConnector, Full<Bytes>>,
    cache: Cache,
    refusals: Mutex<VecDeque<Refusal>>,
}

impl Edge {
    /// An edge for `distribution`, refusing to start when a behaviour uses a function the
    /// devserver has no twin of, or an origin kind it does not run.
    pub fn new(
        distribution: Distribution,
        keys: TrustedKeys,
        site: String,
        endpoints: Endpoints,
        oac: oac::Signer,
    ) -> Result<Self, TemplateError> {
        let mut twins = HashMap::new();
        for (name, function) in &distribution.functions {
            let twin = functions::twin(name).ok_or_else(|| {
                TemplateError::Unsupported(format!("the devserver has no twin of function {name}"))
            })?;
            functions::check_parameters(name, &function.parameters).map_err(|e| {
                TemplateError::Unsupported(format!("the twin of function {name}: {e}"))
            })?;
            twins.insert(name.clone(), (twin, function.parameters.clone()));
        }
        for origin in distribution.origins.values() {
            let present = match origin.kind {
                OriginKind::S3Website => endpoints.website.is_some(),
                OriginKind::FunctionUrl => endpoints.function_url.is_some(),
                OriginKind::HttpApi | OriginKind::S3Rest => true,
            };
            if !present {
                return Err(TemplateError::Unsupported(format!(
                    "origin {} ({:?}) is not running",
                    origin.id, origin.kind
                )));
            }
        }
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(EDGE_ADDRESS));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            distribution,
            twins,
            keys,
            site,
            endpoints,
            oac,
            client,
            cache: Cache::default(),
            refusals: Mutex::default(),
        })
    }

    /// The distribution the edge follows.
    pub fn distribution(&self) -> &Distribution {
        &self.distribution
    }

    /// The last refusals, oldest first.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// Drops cached responses whose path matches `pattern` (a CloudFront invalidation).
    pub fn invalidate(&self, pattern: &str) {
        self.cache.invalidate(pattern);
    }

    fn refuse(&self, path: &str, reason: &str) {
        tracing::info!(path, reason, "edge refused the request");
        let mut log = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        log.push_back(Refusal { path: path.to_owned(), reason: reason.to_owned() });
        if log.len() > 256 {
            log.pop_front();
        }
    }
}

/// Answers one viewer request.
pub async fn serve(
    edge: Arc<Edge>,
    req: Request<hyper::body::Incoming>,
) -> Result<Reply, Infallible> {
    let (parts, body, viewer) = crate::read_request(req, MAX_BODY).await;
    let Some(body) = body else {
        return Ok(cloudfront_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"));
    };
    let mut reply = answer(&edge, &parts, body, viewer.ip()).await;
    if reply.status() == StatusCode::OK && not_modified(&parts.headers, reply.headers()) {
        *reply.status_mut() = StatusCode::NOT_MODIFIED;
        *reply.body_mut() = Full::new(Bytes::new());
        reply.headers_mut().remove(header::CONTENT_LENGTH);
    }
    reply.headers_mut().insert(HeaderName::from_static("via"), HeaderValue::from_static(VIA));
    if parts.method == Method::HEAD {
        *reply.body_mut() = Full::new(Bytes::new());
    }
    Ok(reply)
}

const VIA: &str = "1.1 devserver.cloudfront.net (CloudFront)";

/// CloudFront answers a viewer's conditional GET itself: 304 when `If-None-Match` names
/// the object's ETag (or `*`).
fn not_modified(request: &HeaderMap, response: &HeaderMap) -> bool {
    let (Some(wanted), Some(etag)) = (
        request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()),
        response.get(header::ETAG).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    wanted
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

async fn answer(edge: &Edge, parts: &http::request::Parts, body: Bytes, viewer: IpAddr) -> Reply {
    let raw_path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let behaviour = edge.distribution.behaviour_for(&normalise(raw_path));
    if !behaviour.allowed_methods.iter().any(|m| m == parts.method.as_str()) {
        return cloudfront_error(
            StatusCode::FORBIDDEN,
            "This distribution is not configured to allow the HTTP request method that was used for this request.",
        );
    }
    let mut request = ViewerRequest {
        uri: raw_path.to_owned(),
        querystring: query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (n, v) = p.split_once('=').unwrap_or((p, ""));
                (n.to_owned(), v.to_owned())
            })
            .collect(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())
            })
            .collect(),
        added_headers: Vec::new(),
        viewer_ip: viewer,
    };
    // The function runs before the signature check. AWS does not document the order; an
    // encoded private spelling on a signed behaviour is refused either way (tests accept
    // either answer, and scripts/smoke reports which one AWS gives).
    if let Some(name) = &behaviour.viewer_request {
        if let Some(response) =
            edge.twins.get(name).and_then(|(twin, parameters)| twin(&mut request, parameters))
        {
            return function_response(edge, raw_path, response);
        }
    }
    // The function's path, from here on: the cache key and what the origin is asked for.
    // The signature is checked against the viewer's URL (whether CloudFront checks the
    // viewer's or the function's is undocumented; the path guard rewrites no signed URL,
    // and a gallery cookie's wildcard matches both).
    let path = request.uri.clone();
    if behaviour.signed {
        let url =
            format!("{}{}", edge.site, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
        if let Err(refusal) = signature::check(&edge.keys, &url, &parts.headers, viewer) {
            edge.refuse(raw_path, refusal.code());
            let mut reply = signature::refused(&refusal);
            reply
                .headers_mut()
                .insert("x-cache", HeaderValue::from_static("Error from cloudfront"));
            return reply;
        }
    }
    let cacheable = matches!(parts.method, Method::GET | Method::HEAD) && behaviour.cache.caches();
    if cacheable {
        if let Some(hit) = edge.cache.get(&path) {
            let mut reply = Response::new(Full::new(hit.body.clone()));
            *reply.status_mut() = hit.status;
            *reply.headers_mut() = hit.headers.clone();
            add_policy_headers(behaviour, reply.headers_mut());
            reply.headers_mut().insert(header::AGE, HeaderValue::from(hit.age()));
            reply.headers_mut().insert("x-cache", HeaderValue::from_static("Hit from cloudfront"));
            return reply;
        }
    }
    let (status, mut headers, body) =
        match fetch_target(edge, behaviour, parts, &request, body, viewer).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(path, "origin unreachable: {e}");
                return cloudfront_error(
                    StatusCode::BAD_GATEWAY,
                    "The request could not be satisfied.",
                );
            }
        };
    strip_hop_by_hop(&mut headers);
    if cacheable && parts.method == Method::GET {
        let error_min = edge.distribution.error_caching_min_ttl.get(&status.as_u16()).copied();
        let ttl = cache::ttl(&behaviour.cache, status.as_u16(), &headers, error_min);
        edge.cache.put(&path, status, &headers, &body, ttl);
    }
    let mut reply = Response::new(Full::new(body));
    *reply.status_mut() = status;
    *reply.headers_mut() = headers;
    add_policy_headers(behaviour, reply.headers_mut());
    let x_cache =
        if status.as_u16() >= 400 { "Error from cloudfront" } else { "Miss from cloudfront" };
    reply.headers_mut().insert("x-cache", HeaderValue::from_static(x_cache));
    reply
}

/// The behaviour's response headers policy, on a response from the cache or the origin
/// (AWS: "the responses that it serves from the cache and the ones that it forwards from
/// the origin"). Not on a function's own response or CloudFront's refusals, which come
/// from neither (AWS documents neither way; no test depends on it).
fn add_policy_headers(behaviour: &Behaviour, headers: &mut HeaderMap) {
    for custom in &behaviour.response_headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::try_from(custom.name.as_str()),
            HeaderValue::try_from(custom.value.as_str()),
        ) else {
            continue;
        };
        if custom.replace || !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    }
}

fn function_response(edge: &Edge, path: &str, response: FunctionResponse) -> Reply {
    if let Some((_, reason)) = response.headers.iter().find(|(n, _)| n == "x-refusal") {
        edge.refuse(path, reason);
    }
    let mut reply = Response::new(Full::new(Bytes::from(response.body)));
    *reply.status_mut() = StatusCode::from_u16(response.status).unwrap_or(StatusCode::FORBIDDEN);
    for (name, value) in &response.headers {
        if let (Ok(n), Ok(v)) =
            (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
        {
            reply.headers_mut().insert(n, v);
        }
    }
    reply
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static("FunctionGeneratedResponse from cloudfront"));
    reply
}

/// CloudFront's own error page.
fn cloudfront_error(status: StatusCode, message: &str) -> Reply {
    let body = format!(
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01 Transitional//EN\"><HTML><HEAD><TITLE>ERROR: The request could not be satisfied</TITLE></HEAD><BODY><H1>{} ERROR</H1><H2>The request could not be satisfied.</H2><HR noshade size=\"1px\">{message}</BODY></HTML>",
        status.as_u16()
    );
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    reply.headers_mut().insert("x-cache", HeaderValue::from_static("Error from cloudfront"));
    reply
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The path CloudFront matches path patterns against: unreserved escapes decoded (`%70`
/// is `p`), dot segments resolved and repeated slashes collapsed (RFC 3986). The origin,
/// the signature check and the function still see the raw path.
pub fn normalise(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())
            .filter(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b));
        match escaped {
            Some(b) => {
                decoded.push(b);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8_lossy(&decoded);
    let mut out: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = decoded.ends_with('/') && !out.is_empty();
    format!("/{}{}", out.join("/"), if trailing { "/" } else { "" })
}

/// The request to an origin: the behaviour's forwarding decides which viewer headers, the
/// query and the body go along; the origin's custom headers are added last.
async fn fetch_target(
    edge: &Edge,
    behaviour: &Behaviour,
    parts: &http::request::Parts,
    request: &ViewerRequest,
    body: Bytes,
    viewer: IpAddr,
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    if let Some(group) = edge.distribution.groups.get(&behaviour.target) {
        let first =
            fetch(edge, &group.primary, behaviour, parts, request, body.clone(), viewer).await;
        let fail_over = match &first {
            Ok((status, _, _)) => group.failover_on.contains(&status.as_u16()),
            Err(_) => true,
        };
        if !fail_over {
            return first;
        }
        return fetch(edge, &group.secondary, behaviour, parts, request, body, viewer).await;
    }
    fetch(edge, &behaviour.target, behaviour, parts, request, body, viewer).await
}

async fn fetch(
    edge: &Edge,
    origin_id: &str,
    behaviour: &Behaviour,
    parts: &http::request::Parts,
    request: &ViewerRequest,
    body: Bytes,
    viewer: IpAddr,
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    let origin =
        edge.distribution.origins.get(origin_id).ok_or_else(|| format!("no origin {origin_id}"))?;
    let e = &edge.endpoints;
    // The path as the viewer-request function left it.
    let raw_path = request.uri.as_str();
    let forward_all = behaviour.forwarding == Forwarding::AllViewerExceptHost;
    let (host, path) = match origin.kind {
        OriginKind::S3Website => (e.website.clone().unwrap_or_default(), raw_path.to_owned()),
        OriginKind::HttpApi => (e.api.clone(), raw_path.to_owned()),
        OriginKind::FunctionUrl => {
            (e.function_url.clone().unwrap_or_default(), raw_path.to_owned())
        }
        OriginKind::S3Rest => {
            // Path-style on the embedded store, the key written in the one canonical
            // encoding so the signature's canonical path is the path sent.
            let key = keyspace::routing::decode_path(raw_path.trim_start_matches('/'))
                .ok_or_else(|| "the path is not valid percent-encoded UTF-8".to_owned())?;
            (e.store.clone(), format!("/{}/{}", e.bucket, keyspace::encode_key_path(&key)))
        }
    };
    let query = parts.uri.query().filter(|q| forward_all && !q.is_empty());
    let uri = match query {
        Some(q) => format!("http://{host}{path}?{q}"),
        None => format!("http://{host}{path}"),
    };
    let method = match origin.kind {
        // The bucket's endpoints read; a HEAD is answered from a GET's headers.
        OriginKind::S3Website | OriginKind::S3Rest if parts.method == Method::HEAD => Method::HEAD,
        OriginKind::S3Website | OriginKind::S3Rest => Method::GET,
        _ => parts.method.clone(),
    };
    let mut builder = Request::builder().method(method).uri(&uri);
    let headers = builder.headers_mut().ok_or("request builder")?;
    if forward_all {
        for (name, value) in &parts.headers {
            if name != header::HOST && !HOP_BY_HOP.contains(&name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    // A function's headers replace the viewer's of the same name.
    for (name, value) in &request.added_headers {
        if let (Ok(n), Ok(v)) =
            (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
        {
            headers.insert(n, v);
        }
    }
    headers.insert(header::HOST, HeaderValue::try_from(host.as_str()).map_err(|e| e.to_string())?);
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_str(&viewer.to_string()).map_err(|e| e.to_string())?,
    );
    headers.insert("via", HeaderValue::from_static(VIA));
    for (name, value) in &origin.custom_headers {
        let n = HeaderName::try_from(name.as_str()).map_err(|e| e.to_string())?;
        headers.insert(n, HeaderValue::try_from(value.as_str()).map_err(|e| e.to_string())?);
    }
    let body = if forward_all { body } else { Bytes::new() };
    let mut outgoing = builder.body(Full::new(body.clone())).map_err(|e| e.to_string())?;
    match origin.kind {
        OriginKind::S3Rest => oac::sign(&edge.oac, "s3", &mut outgoing, &body),
        OriginKind::FunctionUrl => oac::sign(&edge.oac, "lambda", &mut outgoing, &body),
        OriginKind::S3Website | OriginKind::HttpApi => {}
    }
    let response = edge.client.request(outgoing).await.map_err(|e| format!("{uri}: {e}"))?;
    let (head, incoming) = response.into_parts();
    let bytes = incoming.collect().await.map_err(|e| format!("{uri}: {e}"))?.to_bytes();
    let mut status = head.status;
    // Without s3:ListBucket, S3 answers a missing key 403 AccessDenied.
    if origin.kind == OriginKind::S3Rest && status == StatusCode::NOT_FOUND && !e.rest_list_bucket {
        status = StatusCode::FORBIDDEN;
    }
    Ok((status, head.headers, bytes))
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn paths_are_normalised_for_matching_as_rfc_3986_says() {
        assert_eq!(normalise("/a/../private/x.jpg"), "/private/x.jpg");
        assert_eq!(normalise("/%70rivate/x.jpg"), "/private/x.jpg");
        assert_eq!(normalise("/private%2Fx.jpg"), "/private%2Fx.jpg");
        assert_eq!(normalise("//private/./x.jpg"), "/private/x.jpg");
        assert_eq!(normalise("/a%20b/"), "/a%20b/");
        assert_eq!(normalise("/"), "/");
    }
}
