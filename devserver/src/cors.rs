//! The bucket's CORS configuration, applied to the embedded store as S3 applies a bucket's
//! `cors` subresource. The pages are served by the website endpoint and upload straight to
//! the store on another port: another origin, so the browser sends a preflight `OPTIONS`
//! before each upload and reads the answer only when `Access-Control-Allow-Origin` names
//! the page's origin.
//!
//! S3's rules, as implemented here:
//! - a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is matched
//!   against the rules in order; the first rule whose `AllowedOrigins` match the origin, whose
//!   `AllowedMethods` contain the method and whose `AllowedHeaders` cover every requested
//!   header wins. The answer is 200 with the origin, the rule's methods, the requested headers,
//!   `ExposeHeaders` and `MaxAgeSeconds`; no match is 403 `AccessForbidden`, and so is any
//!   preflight when the bucket has no CORS configuration; a preflight without `Origin` or
//!   the method is 400;
//! - an actual request with an `Origin` gets the same headers (less the requested headers)
//!   when a rule matches its origin and method, whatever its status, so a page can read S3's
//!   error XML; otherwise none, and the browser hides the answer;
//! - origins and headers may hold one `*` wildcard; header names compare case-insensitively,
//!   origins exactly.

use std::future::Future;
use std::pin::Pin;

use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

/// One `CORSRule` of a bucket's CORS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsRule {
    /// Origins allowed, each with at most one `*` (`https://*.example.com`, or `*`).
    pub allowed_origins: Vec<String>,
    /// `GET`, `PUT`, `HEAD`, `POST` or `DELETE`.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for, each with at most one `*`.
    pub allowed_headers: Vec<String>,
    /// Response headers the page's script may read (`ETag` for multipart uploads).
    pub expose_headers: Vec<String>,
    /// How long a browser may cache the preflight answer.
    pub max_age_seconds: Option<u32>,
}

impl CorsRule {
    /// What the pages need: uploads by presigned POST, PUT and multipart parts from `origin`,
    /// and the part's `ETag` readable by the page. The AWS bucket needs the same rule with
    /// the distribution's origin.
    pub fn for_pages(origin: &str) -> Self {
        Self {
            allowed_origins: vec![origin.to_owned()],
            allowed_methods: ["GET", "HEAD", "PUT", "POST"].map(String::from).to_vec(),
            allowed_headers: vec!["*".into()],
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(3000),
        }
    }

    fn allows(&self, origin: &str, method: &str) -> bool {
        self.allowed_origins.iter().any(|o| wildcard_match(o, origin))
            && self.allowed_methods.iter().any(|m| m == method)
    }

    fn allows_header(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.allowed_headers.iter().any(|h| wildcard_match(&h.to_ascii_lowercase(), &name))
    }

    /// Adds the headers S3 sends for a request this rule allowed.
    fn decorate(&self, origin: &str, headers: &mut HeaderMap) {
        let any_origin = self.allowed_origins.iter().any(|o| o == "*");
        let mut set = |name: header::HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        set(header::ACCESS_CONTROL_ALLOW_ORIGIN, if any_origin { "*" } else { origin });
        set(header::ACCESS_CONTROL_ALLOW_METHODS, &self.allowed_methods.join(", "));
        if !self.expose_headers.is_empty() {
            set(header::ACCESS_CONTROL_EXPOSE_HEADERS, &self.expose_headers.join(", "));
        }
        if let Some(age) = self.max_age_seconds {
            set(header::ACCESS_CONTROL_MAX_AGE, &age.to_string());
        }
        if !any_origin {
            set(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
        set(header::VARY, "Origin, Access-Control-Request-Headers, Access-Control-Request-Method");
    }
}

/// `pattern` with at most one `*` matching any run of characters.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.starts_with(prefix)
                && value.ends_with(suffix)
        }
    }
}

/// A bucket's CORS configuration: no rules means CORS is not enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsConfiguration {
    /// Matched in order; the first that allows the request applies.
    pub rules: Vec<CorsRule>,
}

/// The answer to a preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// 200 with these headers.
    Allowed(HeaderMap),
    /// 400: no `Origin` or no `Access-Control-Request-Method`.
    Incomplete,
    /// 403: the bucket has no CORS configuration.
    NotEnabled,
    /// 403: no rule allows this origin, method and headers.
    NotAllowed,
}

impl CorsConfiguration {
    /// Evaluates a preflight request's headers.
    pub fn preflight(&self, request: &HeaderMap) -> Preflight {
        let get = |name: &str| request.get(name).and_then(|v| v.to_str().ok());
        let (Some(origin), Some(method)) = (get("origin"), get("access-control-request-method"))
        else {
            return Preflight::Incomplete;
        };
        if self.rules.is_empty() {
            return Preflight::NotEnabled;
        }
        let requested: Vec<&str> = get("access-control-request-headers")
            .map(|h| h.split(',').map(str::trim).filter(|h| !h.is_empty()).collect())
            .unwrap_or_default();
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.allows(origin, method) && requested.iter().all(|h| r.allows_header(h)))
        else {
            return Preflight::NotAllowed;
        };
        let mut headers = HeaderMap::new();
        rule.decorate(origin, &mut headers);
        if !requested.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&requested.join(", ").to_ascii_lowercase()) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
        }
        Preflight::Allowed(headers)
    }

    /// The headers for an actual request from `origin` with `method`, if a rule allows it.
    pub fn actual(&self, origin: &str, method: &Method) -> Option<HeaderMap> {
        let rule = self.rules.iter().find(|r| r.allows(origin, method.as_str()))?;
        let mut headers = HeaderMap::new();
        rule.decorate(origin, &mut headers);
        Some(headers)
    }
}

/// The store's HTTP service with the bucket's CORS configuration in front: preflights are
/// answered here, other requests go to `inner` and get the CORS headers on the way out.
#[derive(Clone)]
pub struct Cors<S> {
    /// The S3 service.
    pub inner: S,
    /// The configuration applied.
    pub config: std::sync::Arc<CorsConfiguration>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> hyper::service::Service<Request<hyper::body::Incoming>> for Cors<S>
where
    S: hyper::service::Service<
            Request<hyper::body::Incoming>,
            Response = Response<s3s::Body>,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
{
    type Response = Response<s3s::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<hyper::body::Incoming>) -> Self::Future {
        if req.method() == Method::OPTIONS {
            let answer = preflight_response(self.config.preflight(req.headers()));
            return Box::pin(async move { Ok(answer) });
        }
        let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let extra = origin.and_then(|o| self.config.actual(o, req.method()));
        let future = self.inner.call(req);
        Box::pin(async move {
            let mut resp = future.await?;
            if let Some(extra) = extra {
                resp.headers_mut().extend(extra);
            }
            Ok(resp)
        })
    }
}

fn preflight_response(answer: Preflight) -> Response<s3s::Body> {
    let (status, code, message) = match answer {
        Preflight::Allowed(headers) => {
            let mut resp = Response::new(s3s::Body::empty());
            *resp.headers_mut() = headers;
            return resp;
        }
        Preflight::Incomplete => (
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        ),
        Preflight::NotEnabled => (
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: CORS is not enabled for this bucket.",
        ),
        Preflight::NotAllowed => (
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: This CORS request is not allowed. This is usually because the \
             evaluation of Origin, request method / Access-Control-Request-Method or \
             Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        ),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = Response::new(s3s::Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap())
            })
            .collect()
    }

    fn config() -> CorsConfiguration {
        CorsConfiguration {
            rules: vec![
                CorsRule {
                    allowed_origins: vec!["http://*.example.com".into()],
                    allowed_methods: vec!["GET".into()],
                    allowed_headers: vec![],
                    expose_headers: vec![],
                    max_age_seconds: None,
                },
                CorsRule {
                    allowed_headers: vec!["content-*".into(), "If-None-Match".into()],
                    ..CorsRule::for_pages("http://127.0.0.1:8080")
                },
            ],
        }
    }

    #[track_caller]
    fn case(request: &[(&str, &str)], expected: Preflight) {
        assert_eq!(config().preflight(&headers(request)), expected, "{request:?}");
    }

    #[test]
    fn preflights_follow_s3s_rule_matching() {
        let page = "http://127.0.0.1:8080";
        let Preflight::Allowed(allowed) = config().preflight(&headers(&[
            ("origin", page),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "Content-Type, if-none-match"),
        ])) else {
            panic!("the pages' upload must be allowed");
        };
        assert_eq!(allowed["access-control-allow-origin"], page);
        assert_eq!(allowed["access-control-allow-methods"], "GET, HEAD, PUT, POST");
        assert_eq!(allowed["access-control-allow-headers"], "content-type, if-none-match");
        assert_eq!(allowed["access-control-expose-headers"], "ETag");
        assert_eq!(allowed["access-control-max-age"], "3000");
        assert_eq!(allowed["access-control-allow-credentials"], "true");
        // The first rule's wildcard origin, GET only, no headers.
        let Preflight::Allowed(sub) = config().preflight(&headers(&[
            ("origin", "http://photos.example.com"),
            ("access-control-request-method", "GET"),
        ])) else {
            panic!("wildcard origin");
        };
        assert_eq!(sub["access-control-allow-origin"], "http://photos.example.com");

        case(
            &[("origin", "http://photos.example.com"), ("access-control-request-method", "PUT")],
            Preflight::NotAllowed,
        );
        case(
            &[("origin", "http://127.0.0.1:8081"), ("access-control-request-method", "POST")],
            Preflight::NotAllowed,
        );
        case(
            &[("origin", "http://example.com"), ("access-control-request-method", "GET")],
            Preflight::NotAllowed,
        );
        case(
            &[("origin", page), ("access-control-request-method", "DELETE")],
            Preflight::NotAllowed,
        );
        case(
            &[
                ("origin", page),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-amz-acl"),
            ],
            Preflight::NotAllowed,
        );
        case(&[("origin", page)], Preflight::Incomplete);
        case(&[("access-control-request-method", "PUT")], Preflight::Incomplete);
        assert_eq!(
            CorsConfiguration::default()
                .preflight(&headers(&[("origin", page), ("access-control-request-method", "PUT")])),
            Preflight::NotEnabled
        );
    }

    #[test]
    fn actual_requests_get_headers_only_from_an_allowing_rule() {
        let page = "http://127.0.0.1:8080";
        let h = config().actual(page, &Method::PUT).expect("allowed");
        assert_eq!(h["access-control-allow-origin"], page);
        assert!(!h.contains_key("access-control-allow-headers"));
        assert!(config().actual("http://photos.example.com", &Method::PUT).is_none());
        assert!(config().actual("http://evil.test", &Method::GET).is_none());
        let any = CorsConfiguration {
            rules: vec![CorsRule { allowed_origins: vec!["*".into()], ..CorsRule::for_pages("") }],
        };
        let h = any.actual("http://evil.test", &Method::GET).unwrap();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert!(!h.contains_key("access-control-allow-credentials"));
    }
}
