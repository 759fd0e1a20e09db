//! HTTP/1.1 to the site and the functions' own URLs: plain HTTP (the devserver) or HTTPS
//! (CloudFront, API Gateway, Lambda), with hyper-util's client and the TLS stack the AWS SDK
//! already links (rustls with aws-lc-rs, the system's root certificates).
//!
//! A request's path is sent exactly as the caller wrote it: no URL library sits between
//! the check and the wire, so `..`, `%2E%2E`, `%70rivate` and `%2F` reach the edge as
//! written (a browser or reqwest would normalise some of them away, and the check would
//! prove nothing). Redirects are followed by hand, reading each Location as a browser
//! does (WHATWG URL parsing against the URL it came from), so every hop is recorded.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The longest one request may take: a cold Lambda resizing an image answers in a few
/// seconds, a hung connection never.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The largest body read (the derivatives are small; an error page smaller still).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// The most hops one chain may take before it counts as a loop.
const MAX_HOPS: usize = 10;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The URL cannot be sent (not a valid request target).
    #[error("{url}: not a valid URL ({reason})")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The connection failed or broke (DNS, TCP, TLS, HTTP).
    #[error("{url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// The error and its causes.
        reason: String,
    },
    /// No complete answer within [`TIMEOUT`].
    #[error("{url}: no answer within {TIMEOUT:?}")]
    Timeout {
        /// The URL.
        url: String,
    },
    /// The body broke off or was larger than [`MAX_BODY`].
    #[error("{url}: reading the body: {reason}")]
    Body {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A Location that does not resolve to a URL.
    #[error("{url}: Location {location:?} is not a URL")]
    Location {
        /// The URL that answered.
        url: String,
        /// Its Location.
        location: String,
    },
    /// More than [`MAX_HOPS`] redirects.
    #[error("{0}: more than {MAX_HOPS} redirects")]
    Loop(String),
    /// The TLS configuration could not be built.
    #[error("TLS set-up: {0}")]
    Tls(#[from] rustls::Error),
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The URL requested.
    pub url: String,
    /// Its status.
    pub status: u16,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Reply {
    /// A header's value as text (lossy), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// CloudFront's X-Cache, or `-` when there is none (the devserver and CloudFront both
    /// send one; an origin reached directly does not).
    pub fn x_cache(&self) -> String {
        self.header("x-cache").unwrap_or_else(|| "-".to_owned())
    }

    /// Whether CloudFront answered from its cache (`Hit`, `RefreshHit`).
    pub fn is_cache_hit(&self) -> bool {
        self.header("x-cache").is_some_and(|v| v.to_ascii_lowercase().contains("hit"))
    }

    /// The `code` of a JSON error body (the resizer's and the signer's), if it is one.
    pub fn json_code(&self) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        value.get("code")?.as_str().map(str::to_owned)
    }

    /// The `<Code>` of an XML error body (CloudFront's signature check, S3), if it is one.
    pub fn xml_code(&self) -> Option<String> {
        let text = std::str::from_utf8(&self.body).ok()?;
        let start = text.find("<Code>")? + "<Code>".len();
        let end = start + text[start..].find("</Code>")?;
        Some(text[start..end].to_owned())
    }

    /// `status` plus the JSON code, the path guard's refusal reason or the XML error code
    /// when there is one.
    pub fn summary(&self) -> String {
        let mut out = self.status.to_string();
        if let Some(code) = self.json_code() {
            out.push_str(&format!(" {code}"));
        } else if let Some(reason) = self.header("x-refusal") {
            out.push_str(&format!(" ({reason})"));
        } else if let Some(code) = self.xml_code() {
            out.push_str(&format!(" {code}"));
        }
        out
    }
}

/// The hops of one request followed through its redirects.
#[derive(Debug, Clone)]
pub struct Chain {
    /// Every answer, first to last (never empty).
    pub hops: Vec<Reply>,
}

impl Chain {
    /// The statuses in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.hops.iter().map(|h| h.status).collect()
    }

    /// The last answer.
    pub fn last(&self) -> &Reply {
        // A chain is only built with at least one hop.
        &self.hops[self.hops.len() - 1]
    }

    /// `307 -> 307 -> 200`.
    pub fn describe(&self) -> String {
        self.hops.iter().map(|h| h.status.to_string()).collect::<Vec<_>>().join(" -> ")
    }

    /// [`Chain::describe`] with the last answer's [`Reply::summary`]: `307 -> 404
    /// original-not-found`.
    pub fn describe_with_code(&self) -> String {
        let mut statuses: Vec<String> = self.hops.iter().map(|h| h.status.to_string()).collect();
        if let Some(last) = statuses.last_mut() {
            *last = self.last().summary();
        }
        statuses.join(" -> ")
    }
}

/// A client for the site and the functions' URLs.
#[derive(Clone)]
pub struct Web {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Web {
    /// A client for `http://` and `https://` URLs, trusting the system's root certificates.
    pub fn new() -> Result<Self, WebError> {
        Self::build(None)
    }

    /// Like [`Web::new`], connecting over IPv4 only: CloudFront policies bind IPv4
    /// addresses only, and the distribution also answers over IPv6, which the system may
    /// prefer.
    pub fn ipv4_only() -> Result<Self, WebError> {
        Self::build(Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }

    fn build(local: Option<IpAddr>) -> Result<Self, WebError> {
        let native = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        // An empty store only matters for https://, where every handshake then fails with
        // a message naming the certificate: no need to stop here.
        let _ = roots.add_parsable_certificates(native.certs);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        // Bound to an IPv4 address, the connector tries only the host's IPv4 addresses.
        http.set_local_address(local);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self { client: Client::builder(TokioExecutor::new()).build(connector) })
    }

    /// Sends one request to `url` exactly as written, with `headers` and `body`.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, WebError> {
        let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| WebError::Url {
            url: url.into(),
            reason: e.to_string(),
        })?;
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            let value = HeaderValue::from_str(value)
                .map_err(|e| WebError::Url { url: url.into(), reason: format!("{name}: {e}") })?;
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| WebError::Url { url: url.into(), reason: e.to_string() })?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| WebError::Connect {
                url: url.into(),
                reason: format!("{:#}", anyhow::Error::new(e)),
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| WebError::Body { url: url.into(), reason: e.to_string() })?
                .to_bytes();
            Ok(Reply {
                url: url.to_owned(),
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| WebError::Timeout { url: url.into() })?
    }

    /// A GET of `url`, with a `Cookie` header when given.
    pub async fn get(&self, url: &str, cookie: Option<&str>) -> Result<Reply, WebError> {
        let headers: Vec<(&str, &str)> =
            cookie.map(|c| (header::COOKIE.as_str(), c)).into_iter().collect();
        self.send(Method::GET, url, &headers, Bytes::new()).await
    }

    /// A GET of `url` followed through its redirects, as a browser follows them: the
    /// first request is sent as written; each Location is resolved against the URL that
    /// answered (its bytes read as UTF-8, spaces and non-ASCII escaped, any fragment
    /// dropped). The cookie goes only to hops on the first URL's origin, as a browser's
    /// cookies for the site would.
    pub async fn follow(&self, url: &str, cookie: Option<&str>) -> Result<Chain, WebError> {
        let origin = origin_of(url);
        let mut current = url.to_owned();
        let mut hops = Vec::new();
        for _ in 0..MAX_HOPS {
            let same_origin = origin.is_some() && origin_of(&current) == origin;
            let reply = self.get(&current, cookie.filter(|_| same_origin)).await?;
            let redirect = (300..400).contains(&reply.status);
            let location = reply.headers.get(header::LOCATION).cloned();
            hops.push(reply);
            let Some(location) = location.filter(|_| redirect) else {
                return Ok(Chain { hops });
            };
            current = resolve(&current, location.as_bytes())?;
        }
        Err(WebError::Loop(url.to_owned()))
    }
}

/// `scheme://host[:port]` of a URL (WHATWG), if it parses.
fn origin_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().map(|u| u.origin().ascii_serialization())
}

/// Where a browser goes for `location` received from `base`.
pub fn resolve(base: &str, location: &[u8]) -> Result<String, WebError> {
    let text = String::from_utf8_lossy(location);
    let error = || WebError::Location { url: base.to_owned(), location: text.to_string() };
    let base = url::Url::parse(base).map_err(|_| error())?;
    let mut next = base.join(&text).map_err(|_| error())?;
    next.set_fragment(None);
    Ok(next.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_as_a_browser_reads_them() {
        let base = "https://cdn.example.com/320x/smoke/r/a%20b.jpg";
        let case = |location: &str| resolve(base, location.as_bytes()).unwrap();
        assert_eq!(
            case("/resize/320x/smoke/r/a%20b.jpg"),
            "https://cdn.example.com/resize/320x/smoke/r/a%20b.jpg"
        );
        assert_eq!(
            case("https://cdn.example.com/resize/320x/a b.jpg"),
            "https://cdn.example.com/resize/320x/a%20b.jpg"
        );
        assert_eq!(
            case("https://cdn.example.com/resize/320x/a#b.jpg"),
            "https://cdn.example.com/resize/320x/a"
        );
        assert_eq!(
            case("https://cdn.example.com/resize/ảnh.jpg"),
            "https://cdn.example.com/resize/%E1%BA%A3nh.jpg"
        );
    }

    #[test]
    fn request_targets_keep_dot_segments_and_escapes() {
        for path in [
            "/private/galleries/g/../h/a.jpg",
            "/private/galleries/g/%2E%2E/h/a.jpg",
            "/private%2Fgalleries%2Fh%2Fa.jpg",
            "//private/galleries/h/a.jpg",
            "/resize//private/galleries/h/a.jpg",
            "/smoke/r/a+b.jpg",
        ] {
            let uri: Uri = format!("https://cdn.example.com{path}").parse().unwrap();
            assert_eq!(uri.path(), path);
        }
        let uri: Uri =
            "https://cdn.example.com/private/galleries/h/a.jpg?Policy=/private/galleries/g/"
                .parse()
                .unwrap();
        assert_eq!(uri.query(), Some("Policy=/private/galleries/g/"));
    }

    #[test]
    fn summaries_name_the_refusal() {
        let reply = |headers: &[(&'static str, &'static str)], body: &'static str| {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.insert(*name, HeaderValue::from_static(value));
            }
            Reply { url: String::new(), status: 403, headers: map, body: Bytes::from(body) }
        };
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>MissingKey</Code>\
                   <Message>Missing Key-Pair-Id query parameter or cookie value</Message></Error>";
        assert_eq!(reply(&[], xml).summary(), "403 MissingKey");
        assert_eq!(reply(&[("x-refusal", "dot-segment")], "").summary(), "403 (dot-segment)");
        assert_eq!(reply(&[], r#"{"code":"forbidden"}"#).summary(), "403 forbidden");
        assert_eq!(reply(&[], "<html>").summary(), "403");
    }
}
