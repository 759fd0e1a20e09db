//! The resizer's function URL (failover mode) on loopback, with `AuthType: AWS_IAM` as
//! template.yaml gives it: only SigV4-signed requests from CloudFront's origin access
//! control reach the function; anything else gets Lambda's 403. Requests become payload
//! format 2.0 events, as for API Gateway.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;

use super::lambda::{self, Front, Invocation, Oversize};
use super::oac::{self, Signer};

type Reply = Response<Full<Bytes>>;

/// A function URL in front of the resizer.
pub struct FunctionUrl {
    /// The function.
    pub resizer: resizer::App,
    /// Whose signatures are accepted (CloudFront's).
    pub signer: Signer,
    /// `host:port`, the URL's own domain name.
    pub domain: String,
}

fn forbidden() -> Reply {
    // Lambda's answer to a request its resource policy does not allow.
    let body = r#"{"Message":"Forbidden. For troubleshooting Function URL authorization issues, see: https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"}"#;
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    resp
}

/// Answers one request to the function URL.
pub async fn serve(
    url: Arc<FunctionUrl>,
    req: Request<hyper::body::Incoming>,
) -> Result<Reply, Infallible> {
    let (parts, body, peer) = crate::read_request(req, lambda::RESPONSE_LIMIT).await;
    let Some(body) = body else {
        return Ok(lambda::front_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"));
    };
    let source_ip = peer.ip();
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if let Err(e) = oac::verify(
        &url.signer,
        "lambda",
        parts.method.as_str(),
        &url.domain,
        path_and_query,
        &parts.headers,
        &body,
    ) {
        tracing::info!(%e, path = parts.uri.path(), "function URL refused an unsigned request");
        return Ok(forbidden());
    }
    let inv = Invocation {
        method: &parts.method,
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        source_ip,
        domain_name: &url.domain,
    };
    let event = lambda::event(&Front::FunctionUrl, &inv);
    let request = match lambda::request(&event) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}: {event}");
            return Ok(lambda::front_error(StatusCode::BAD_GATEWAY, "Internal Server Error"));
        }
    };
    Ok(lambda::response(resizer::handle(&url.resizer, request).await, Oversize::FunctionUrl))
}
