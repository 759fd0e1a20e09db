//! What API Gateway and a function URL do between an HTTP request and a Lambda function:
//! the payload format 2.0 event JSON, parsed by lambda_http exactly as the Lambda runtime
//! parses it (so a handler sees the same `rawPath`, normalised URI, query and cookies it
//! sees in AWS), and the function's answer back to HTTP, with Lambda's response size limit.

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Map, Value};

/// Lambda's limit on a synchronous response (the serialised JSON, a binary body counted
/// base64-encoded).
pub const RESPONSE_LIMIT: usize = 6 * 1024 * 1024;

/// The account id the devserver's events carry.
pub const ACCOUNT_ID: &str = "000000000000";

/// Which front invokes the function, and what it adds to the event.
#[derive(Debug, Clone)]
pub enum Front {
    /// An HTTP API route: its route key and, behind a JWT authorizer, the claims.
    HttpApi {
        /// `GET /resize/{proxy+}`, `ANY /api/{proxy+}`.
        route_key: String,
        /// The `{proxy+}` value, when the route has one.
        proxy: Option<String>,
        /// `requestContext.authorizer.jwt.claims`.
        claims: Option<HashMap<String, String>>,
    },
    /// A function URL with AWS_IAM auth (the caller is CloudFront's origin access control).
    FunctionUrl,
}

/// One HTTP request as the front received it.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path as received, still percent-encoded.
    pub raw_path: &'a str,
    /// The query as received, without `?` (empty when none).
    pub raw_query: &'a str,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
    /// The TCP peer: API Gateway's and Lambda's `sourceIp` (behind CloudFront, the edge).
    pub source_ip: IpAddr,
    /// The front's own host name.
    pub domain_name: &'a str,
}

fn form_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// The payload format 2.0 event for `inv` arriving through `front`.
pub fn event(front: &Front, inv: &Invocation<'_>) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in inv.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == header::COOKIE {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()));
            continue;
        }
        // Repeated headers arrive joined with commas.
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let mut query = Map::new();
    for pair in inv.raw_query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (form_decode(name), form_decode(value));
        match query.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                query.insert(name, Value::String(value));
            }
        }
    }
    let (route_key, authorizer, path_parameters) = match front {
        Front::HttpApi { route_key, proxy, claims } => (
            route_key.clone(),
            claims.as_ref().map(|c| json!({ "jwt": { "claims": c, "scopes": null } })),
            proxy.as_ref().map(|p| json!({ "proxy": form_decode(&p.replace('+', "%2B")) })),
        ),
        Front::FunctionUrl => (
            "$default".to_owned(),
            Some(json!({ "iam": {
                "accessKey": "ASIADEVSERVEREDGE", "accountId": ACCOUNT_ID,
                "callerId": "CLOUDFRONT", "principalOrgId": null,
                "userArn": "arn:aws:sts::000000000000:assumed-role/cloudfront/edge",
                "userId": "CLOUDFRONT"
            }})),
            None,
        ),
    };
    let (body, base64) = match std::str::from_utf8(inv.body) {
        _ if inv.body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (Value::String(base64::engine::general_purpose::STANDARD.encode(inv.body)), true),
    };
    let mut context = json!({
        "accountId": ACCOUNT_ID,
        "apiId": inv.domain_name.split('.').next().unwrap_or("devserver"),
        "domainName": inv.domain_name,
        "domainPrefix": inv.domain_name.split('.').next().unwrap_or("devserver"),
        "http": {
            "method": inv.method.as_str(),
            "path": percent_encoding::percent_decode_str(inv.raw_path).decode_utf8_lossy(),
            "protocol": "HTTP/1.1",
            "sourceIp": inv.source_ip.to_string(),
            "userAgent": inv.headers.get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()).unwrap_or(""),
        },
        "requestId": "devserver",
        "routeKey": route_key,
        "stage": "$default",
        "time": "",
        "timeEpoch": 0,
    });
    if let Some(authorizer) = authorizer {
        context["authorizer"] = authorizer;
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": inv.raw_path,
        "rawQueryString": inv.raw_query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": base64,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if let Some(p) = path_parameters {
        event["pathParameters"] = p;
    }
    if !body.is_null() {
        event["body"] = body;
    }
    event
}

/// The event as lambda_http hands it to a handler.
pub fn request(event: &Value) -> Result<lambda_http::Request, String> {
    lambda_http::request::from_str(&event.to_string()).map_err(|e| format!("event JSON: {e}"))
}

/// What a front answers when the function's response is over Lambda's limit.
#[derive(Debug, Clone, Copy)]
pub enum Oversize {
    /// API Gateway: 500 `{"message":"Internal Server Error"}`.
    HttpApi,
    /// A function URL: 502.
    FunctionUrl,
}

/// The function's response as the front sends it on: Set-Cookie headers kept one per
/// cookie, the body as bytes; over [`RESPONSE_LIMIT`], the front's error instead.
pub fn response(resp: http::Response<lambda_http::Body>, front: Oversize) -> Response<Full<Bytes>> {
    let (parts, body) = resp.into_parts();
    let (bytes, serialised) = match body {
        lambda_http::Body::Text(text) => {
            let n = text.len();
            (Bytes::from(text), n)
        }
        lambda_http::Body::Binary(data) => {
            let n = data.len().div_ceil(3) * 4;
            (Bytes::from(data), n)
        }
        _ => (Bytes::new(), 0),
    };
    if serialised > RESPONSE_LIMIT {
        tracing::error!(bytes = serialised, "function response over Lambda's 6 MB limit");
        let (status, body) = match front {
            Oversize::HttpApi => {
                (StatusCode::INTERNAL_SERVER_ERROR, r#"{"message":"Internal Server Error"}"#)
            }
            Oversize::FunctionUrl => {
                (StatusCode::BAD_GATEWAY, r#"{"Message":"Internal Server Error"}"#)
            }
        };
        let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return resp;
    }
    let mut resp = Response::from_parts(parts, Full::new(bytes));
    resp.headers_mut().remove(header::TRANSFER_ENCODING);
    resp
}

/// A front's own JSON error (`{"message": ...}`), e.g. API Gateway's 404 for no route.
pub fn front_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "message": message }).to_string();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_parses_as_lambda_http_parses_api_gateway_events() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        headers.append("x-thing", HeaderValue::from_static("one"));
        headers.append("x-thing", HeaderValue::from_static("two"));
        let inv = Invocation {
            method: &Method::GET,
            raw_path: "/resize/300x300/a%20b%2Bc.jpg",
            raw_query: "x=1",
            headers: &headers,
            body: b"",
            source_ip: "127.0.0.2".parse().unwrap(),
            domain_name: "api.devserver",
        };
        let front = Front::HttpApi {
            route_key: "GET /resize/{proxy+}".into(),
            proxy: Some("300x300/a%20b%2Bc.jpg".into()),
            claims: None,
        };
        let event = event(&front, &inv);
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(event["headers"]["x-thing"], "one,two");
        assert_eq!(event["pathParameters"]["proxy"], "300x300/a b+c.jpg");
        let req = request(&event).unwrap();
        use lambda_http::RequestExt;
        assert_eq!(req.raw_http_path(), "/resize/300x300/a%20b%2Bc.jpg");
        assert_eq!(req.uri().query(), Some("x=1"));
        assert_eq!(req.headers()["cookie"], "a=1; b=2");
    }

    #[test]
    fn an_oversized_response_is_the_fronts_error() {
        let big = http::Response::new(lambda_http::Body::Binary(vec![0; RESPONSE_LIMIT]));
        assert_eq!(response(big, Oversize::FunctionUrl).status(), 502);
        let fits = http::Response::new(lambda_http::Body::Binary(vec![0; 4_500_000]));
        assert_eq!(response(fits, Oversize::FunctionUrl).status(), 200);
    }
}
