//! The signer's HTTP API mounted at `/api/`, as API Gateway would call it: the JWT from
//! `Authorization: Bearer` is validated first (401 `{"message":"Unauthorized"}` otherwise,
//! API Gateway's answer), and its claims go into `requestContext.authorizer.jwt.claims`.
//! `POST /api/dev/sign-in` issues development tokens; it exists only here.

use std::net::IpAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use serde_json::json;

use crate::auth::DevAuth;

type Reply = Response<Full<Bytes>>;

/// API Gateway's payload limit for HTTP APIs is 10 MB; signer requests are tiny.
const MAX_BODY: usize = 1024 * 1024;

fn json_reply(status: StatusCode, value: serde_json::Value) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Answers a request under `/api/`.
pub async fn serve(
    signer: &signer::handler::App,
    auth: &DevAuth,
    req: Request<hyper::body::Incoming>,
    client_ip: IpAddr,
) -> Reply {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return json_reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "message": "Request Entity Too Large" }),
            )
        }
    };
    if parts.uri.path() == "/api/dev/sign-in" {
        return sign_in(auth, &parts.method, &body);
    }
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let Some(claims) = token.and_then(|t| auth.verify(t.trim()).ok()) else {
        return json_reply(StatusCode::UNAUTHORIZED, json!({ "message": "Unauthorized" }));
    };
    let context = json!({
        "routeKey": "$default",
        "accountId": "000000000000",
        "stage": "$default",
        "requestId": "devserver",
        "apiId": "devserver",
        "domainName": parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or(""),
        "http": {
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "protocol": "HTTP/1.1",
            "sourceIp": client_ip.to_string(),
            "userAgent": parts.headers.get(header::USER_AGENT).and_then(|h| h.to_str().ok()).unwrap_or(""),
        },
        "authorizer": { "jwt": { "claims": claims, "scopes": null } },
        "time": "",
        "timeEpoch": 0,
    });
    let context: ApiGatewayV2httpRequestContext = match serde_json::from_value(context) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("building the request context: {e}");
            return json_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "message": "Internal Server Error" }),
            );
        }
    };
    let lambda_body = if body.is_empty() {
        lambda_http::Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => lambda_http::Body::Text(text),
            Err(e) => lambda_http::Body::Binary(e.into_bytes()),
        }
    };
    let lambda_req = Request::from_parts(parts, lambda_body)
        .with_request_context(RequestContext::ApiGatewayV2(context));
    crate::site::from_lambda(signer::handler::handle(signer, lambda_req).await)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    user: String,
    #[serde(default)]
    galleries: Vec<String>,
}

fn sign_in(auth: &DevAuth, method: &Method, body: &[u8]) -> Reply {
    if method != Method::POST {
        return json_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({ "code": "method-not-allowed", "message": "use POST" }),
        );
    }
    let input: SignIn = match serde_json::from_slice(body) {
        Ok(i) => i,
        Err(e) => {
            return json_reply(
                StatusCode::BAD_REQUEST,
                json!({ "code": "invalid-body", "message": e.to_string() }),
            )
        }
    };
    if input.user.trim().is_empty() || input.user.len() > 128 {
        return json_reply(
            StatusCode::BAD_REQUEST,
            json!({ "code": "invalid-field", "message": "user must be 1 to 128 characters" }),
        );
    }
    let (token, claims) = auth.issue(input.user.trim(), &input.galleries);
    json_reply(StatusCode::OK, json!({ "token": token, "claims": claims }))
}
