//! The HTTP API (API Gateway v2) on loopback, as template.yaml defines it: its routes
//! (`AWS::ApiGatewayV2::Route`, with their integrations' functions and authorization type),
//! the JWT authorizer in front of the routes that use it, and payload format 2.0 events to
//! the functions. Its own URL is the execute-api URL: reachable, as in AWS, and refused by
//! the functions when the request lacks CloudFront's `x-origin-verify` header.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::lambda::{self, Front, Invocation, Oversize};
use crate::cloudformation::{referenced_resource, Template, TemplateError};

type Reply = Response<Full<Bytes>>;

/// API Gateway's payload limit for HTTP APIs.
const MAX_BODY: usize = 10 * 1024 * 1024;

/// The functions the devserver can invoke, by their template names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `ResizerFunction`.
    Resizer,
    /// `SignerFunction`.
    Signer,
}

impl Function {
    fn from_resource(name: &str) -> Option<Self> {
        match name {
            "ResizerFunction" => Some(Self::Resizer),
            "SignerFunction" => Some(Self::Signer),
            _ => None,
        }
    }
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `GET /resize/{proxy+}` as written.
    pub key: String,
    /// The method, `None` for ANY.
    pub method: Option<Method>,
    /// The path before `{proxy+}` (or the whole path when there is none).
    pub prefix: String,
    /// Whether the path ends in `{proxy+}` (one or more characters after the prefix).
    pub greedy: bool,
    /// `AuthorizationType: JWT`.
    pub jwt: bool,
    /// The integration's function.
    pub function: Function,
}

impl Route {
    fn matches(&self, method: &Method, path: &str) -> Option<Option<String>> {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return None;
        }
        if self.greedy {
            let rest = path.strip_prefix(&self.prefix)?;
            (!rest.is_empty()).then(|| Some(rest.to_owned()))
        } else {
            (path == self.prefix).then_some(None)
        }
    }
}

fn unsupported(what: impl Into<String>) -> TemplateError {
    TemplateError::Unsupported(what.into())
}

/// The HTTP API's routes, as template.yaml defines them for its delivery mode.
pub fn routes(template: &Template) -> Result<Vec<Route>, TemplateError> {
    let mut routes = Vec::new();
    for (name, r) in template.resources_of("AWS::ApiGatewayV2::Route")? {
        let p = &r["Properties"];
        let key = p["RouteKey"].as_str().ok_or_else(|| unsupported(format!("{name}: RouteKey")))?;
        let (method, path) =
            key.split_once(' ').ok_or_else(|| unsupported(format!("{name}: route key {key}")))?;
        let method = match method {
            "ANY" => None,
            m => Some(m.parse::<Method>().map_err(|_| unsupported(format!("{name}: {m}")))?),
        };
        let (prefix, greedy) = match path.strip_suffix("{proxy+}") {
            Some(prefix) => (prefix.to_owned(), true),
            None if !path.contains('{') => (path.to_owned(), false),
            None => return Err(unsupported(format!("{name}: path parameters in {path}"))),
        };
        let jwt = match p["AuthorizationType"].as_str() {
            Some("JWT") => true,
            Some("NONE") | None => false,
            Some(other) => return Err(unsupported(format!("{name}: authorization {other}"))),
        };
        // Target: !Sub "integrations/${Integration}".
        let target = p["Target"]["!Sub"].as_str().unwrap_or_default();
        let integration = target
            .strip_prefix("integrations/${")
            .and_then(|t| t.strip_suffix('}'))
            .ok_or_else(|| unsupported(format!("{name}: target {}", p["Target"])))?;
        let integration = template
            .resource(integration)?
            .ok_or_else(|| unsupported(format!("{name}: no integration {integration}")))?;
        let function = referenced_resource(&integration["Properties"]["IntegrationUri"])
            .and_then(|f| Function::from_resource(&f))
            .ok_or_else(|| unsupported(format!("{name}: integration's function")))?;
        routes.push(Route { key: key.to_owned(), method, prefix, greedy, jwt, function });
    }
    // API Gateway picks the most specific route: a method before ANY.
    routes.sort_by_key(|r| r.method.is_none());
    Ok(routes)
}

/// Validates a bearer token as the route's JWT authorizer does.
#[async_trait::async_trait]
pub trait Authorizer: Send + Sync {
    /// The claims as API Gateway flattens them, or API Gateway's 401 answer.
    async fn authorize(
        &self,
        authorization: Option<&str>,
    ) -> Result<HashMap<String, String>, Reply>;
}

/// The HTTP API with its functions.
pub struct HttpApi {
    /// The routes, most specific first.
    pub routes: Vec<Route>,
    /// The resizer (redirect mode).
    pub resizer: Option<resizer::App>,
    /// The signer.
    pub signer: signer::handler::App,
    /// The JWT authorizer.
    pub authorizer: Arc<dyn Authorizer>,
    /// `host:port`, the API's own domain name in events.
    pub domain: String,
}

/// Answers one request to the API's own URL.
pub async fn serve(
    api: Arc<HttpApi>,
    req: Request<hyper::body::Incoming>,
) -> Result<Reply, Infallible> {
    let (parts, body, peer) = crate::read_request(req, MAX_BODY).await;
    let Some(body) = body else {
        return Ok(lambda::front_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"));
    };
    let source_ip = peer.ip();
    let path = parts.uri.path();
    let Some((route, proxy)) =
        api.routes.iter().find_map(|r| r.matches(&parts.method, path).map(|p| (r, p)))
    else {
        return Ok(lambda::front_error(StatusCode::NOT_FOUND, "Not Found"));
    };
    let claims = if route.jwt {
        let header = parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match api.authorizer.authorize(header).await {
            Ok(claims) => Some(claims),
            Err(reply) => return Ok(reply),
        }
    } else {
        None
    };
    let front = Front::HttpApi { route_key: route.key.clone(), proxy, claims };
    let inv = Invocation {
        method: &parts.method,
        raw_path: path,
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        source_ip,
        domain_name: &api.domain,
    };
    let event = lambda::event(&front, &inv);
    let request = match lambda::request(&event) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}: {event}");
            return Ok(lambda::front_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
            ));
        }
    };
    let response = match route.function {
        Function::Resizer => match &api.resizer {
            Some(app) => resizer::handle(app, request).await,
            None => return Ok(lambda::front_error(StatusCode::NOT_FOUND, "Not Found")),
        },
        Function::Signer => signer::handler::handle(&api.signer, request).await,
    };
    Ok(lambda::response(response, Oversize::HttpApi))
}

#[async_trait::async_trait]
impl Authorizer for crate::authorizer::JwtAuthorizer {
    async fn authorize(
        &self,
        authorization: Option<&str>,
    ) -> Result<HashMap<String, String>, Reply> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        crate::authorizer::JwtAuthorizer::authorize(self, authorization, now)
            .await
            .map_err(|e| crate::authorizer::unauthorized_response(&e).map(Full::new))
    }
}
