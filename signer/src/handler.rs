//! The signer Lambda's HTTP API (API Gateway HTTP API, payload v2). JSON in, JSON out;
//! every route needs the caller's identity from the JWT authorizer's claims.
//!
//! The same `handle` runs under lambda_http in AWS and mounted in-process by the
//! devserver. It never fails: every error becomes a JSON response through
//! [`ApiError::status`], one exhaustive match.
//!
//! This module is the door: [`App`] and its start-up, the request plumbing (origin check,
//! viewer address, caller identity, JSON body) and the one match that lists every route.
//! What a route does lives by domain: `uploads` (presigned PUT, POST and multipart),
//! `downloads` (CloudFront signed URLs and cookies, presigned GET), and
//! [`error`](crate::error) (every refusal's status and code, re-exported here).
//!
//! What it takes from the edge (CloudFront, in front of API Gateway), and nothing else:
//! - [`ORIGIN_VERIFY_HEADER`], the origin custom header CloudFront adds, which proves the
//!   request came through the distribution when ORIGIN_VERIFY_SECRET is set;
//! - [`VIEWER_ADDRESS_HEADER`], the viewer's address as the distribution's viewer-address
//!   function wrote it. `requestContext.http.sourceIp` is CloudFront's edge, never the
//!   viewer, so it is not read.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{header, HeaderValue, Method};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use openssl::sha::sha256;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::cloudfront::CloudFrontSigner;
use crate::config::Config;
use crate::downloads;
pub use crate::error::{error_response, ApiError};
use crate::identity::Identity;
use crate::presign::Presigner;
use crate::uploads;
pub use crate::uploads::UPLOAD_TYPES;

/// The header CloudFront adds to every request it sends to the API (an origin custom
/// header, overwriting any the viewer sent), holding ORIGIN_VERIFY_SECRET.
pub const ORIGIN_VERIFY_HEADER: &str = "x-origin-verify";
/// The header the distribution's viewer-address function (a CloudFront Function on
/// `/api/*`) sets from `event.viewer.ip`, overwriting any the viewer sent: the bare IPv4 or
/// IPv6 address, no port.
pub const VIEWER_ADDRESS_HEADER: &str = "x-viewer-address";

/// The signer's state, built once at start-up.
#[derive(Debug, Clone)]
pub struct App {
    /// Parsed configuration.
    pub config: Config,
    /// The CloudFront signer (key parsed once).
    pub signer: CloudFrontSigner,
    /// The S3 presigner.
    pub presigner: Presigner,
}

/// Answers one request at the current time.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    handle_at(app, req, SystemTime::now()).await
}

/// Answers one request as if at `now` (tests pin the clock).
pub async fn handle_at(app: &App, req: Request, now: SystemTime) -> Response<Body> {
    match route(app, &req, now).await {
        Ok(response) => response,
        Err(err) => error_response(&err),
    }
}

/// Refuses a request without ORIGIN_VERIFY_SECRET in [`ORIGIN_VERIFY_HEADER`], when the
/// secret is set.
fn verify_origin(config: &Config, req: &Request) -> Result<(), ApiError> {
    let Some(secret) = &config.origin_secret else { return Ok(()) };
    let sent = req.headers().get(ORIGIN_VERIFY_HEADER).map_or(&[][..], HeaderValue::as_bytes);
    // Compared as digests: constant time needs equal lengths, and the time taken then says
    // nothing about the secret, not even its length.
    if openssl::memcmp::eq(&sha256(sent), &sha256(secret.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::OriginNotVerified)
    }
}

/// The viewer's address, from [`VIEWER_ADDRESS_HEADER`] only: exactly one header holding
/// exactly one address. A list (`a, b`) is refused rather than guessed from.
fn viewer_address(req: &Request) -> Result<IpAddr, ApiError> {
    let mut values = req.headers().get_all(VIEWER_ADDRESS_HEADER).iter();
    match (values.next(), values.next()) {
        (None, _) => Err(ApiError::ViewerAddressUnavailable("it has no x-viewer-address header")),
        (Some(_), Some(_)) => {
            Err(ApiError::ViewerAddressUnavailable("it has more than one x-viewer-address header"))
        }
        (Some(value), None) => value.to_str().ok().and_then(|v| v.parse().ok()).ok_or(
            ApiError::ViewerAddressUnavailable("its x-viewer-address is not one IP address"),
        ),
    }
}

/// The caller's identity, from the JWT claims API Gateway's authorizer put in the request
/// context.
fn caller(app: &App, req: &Request) -> Result<Identity, ApiError> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Err(ApiError::Unauthenticated);
    };
    let claims = ctx
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .map(|jwt| &jwt.claims)
        .ok_or(ApiError::Unauthenticated)?;
    Identity::from_claims(claims, &app.config.gallery_claim).map_err(|_| ApiError::Unauthenticated)
}

fn body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = req.body().as_ref();
    let bytes = if bytes.iter().all(|b| b.is_ascii_whitespace()) { b"{}" as &[u8] } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadBody(e.to_string()))
}

async fn route(app: &App, req: &Request, now: SystemTime) -> Result<Response<Body>, ApiError> {
    verify_origin(&app.config, req)?;
    // API Gateway may prefix a stage name (`/prod/api/...`); routes start at `/api/`.
    let full = req.uri().path();
    let path = full.find("/api/").map(|i| &full[i..]).unwrap_or(full);
    let method = req.method();
    let expect = |wanted: &'static str| -> Result<(), ApiError> {
        if method.as_str() == wanted || (wanted == "GET" && method == Method::HEAD) {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed(wanted))
        }
    };
    match path {
        "/api/whoami" => {
            expect("GET")?;
            let id = caller(app, req)?;
            Ok(json_response(json!({
                "user": id.subject,
                "upload_prefix": id.upload_prefix(),
                "galleries": id.galleries,
            })))
        }
        "/api/sign-url" => {
            expect("POST")?;
            let id = caller(app, req)?;
            downloads::sign_url(app, &id, viewer_address(req), body(req)?, now)
        }
        "/api/sign-cookies" => {
            expect("POST")?;
            let id = caller(app, req)?;
            downloads::sign_cookies(app, &id, viewer_address(req), body(req)?, now)
        }
        "/api/clear-cookies" => {
            expect("POST")?;
            caller(app, req)?;
            downloads::clear_cookies(app)
        }
        "/api/upload-url" => {
            expect("POST")?;
            let id = caller(app, req)?;
            uploads::upload_url(app, &id, body(req)?, now).await
        }
        "/api/upload-form" => {
            expect("POST")?;
            let id = caller(app, req)?;
            uploads::upload_form(app, &id, body(req)?, now).await
        }
        "/api/multipart/begin" => {
            expect("POST")?;
            let id = caller(app, req)?;
            uploads::multipart_begin(app, &id, body(req)?, now).await
        }
        "/api/multipart/complete" => {
            expect("POST")?;
            let id = caller(app, req)?;
            uploads::multipart_complete(app, &id, body(req)?).await
        }
        "/api/multipart/abort" => {
            expect("POST")?;
            let id = caller(app, req)?;
            uploads::multipart_abort(app, &id, body(req)?).await
        }
        "/api/download-url" => {
            expect("POST")?;
            let id = caller(app, req)?;
            downloads::download_url(app, &id, body(req)?, now).await
        }
        other => Err(ApiError::NoRoute(other.to_owned())),
    }
}

/// Seconds since the epoch (0 for a clock set before it): the unit of `expires` in answers.
pub(crate) fn epoch(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A JSON answer; every response the signer gives, errors included, is built here.
pub(crate) fn json_response(value: Value) -> Response<Body> {
    let mut resp = Response::new(Body::Text(value.to_string()));
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Signed URLs and cookies are per-user secrets: never cached.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Why the signer could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The private key secret could not be read from Secrets Manager.
    #[error("CLOUDFRONT_PRIVATE_KEY_SECRET_ARN: {0}")]
    Secret(String),
    /// The private key does not parse or is not a key CloudFront accepts.
    #[error("{variable}: {source}")]
    Key {
        /// The variable the key came from.
        variable: &'static str,
        /// Why it was refused.
        source: crate::keys::KeyError,
    },
    /// No credentials for presigning.
    #[error("AWS credentials: no credentials provider is configured")]
    NoCredentials,
}

impl App {
    /// Builds the app once at start-up: reads the private key (from the PEM variable, or
    /// from Secrets Manager by ARN), parses it, and builds the S3 client.
    pub async fn build(config: Config, sdk: &aws_config::SdkConfig) -> Result<Self, StartupError> {
        use crate::config::KeySource;
        let (pem, variable) = match &config.key_source {
            KeySource::Pem(pem) => (pem.clone(), "CLOUDFRONT_PRIVATE_KEY"),
            KeySource::SecretArn(arn) => {
                let client = aws_sdk_secretsmanager::Client::new(sdk);
                let out = client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
                    StartupError::Secret(
                        aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
                    )
                })?;
                let pem = out.secret_string.ok_or_else(|| {
                    StartupError::Secret(
                        "the secret has no SecretString (store the PEM as text)".into(),
                    )
                })?;
                (pem, "CLOUDFRONT_PRIVATE_KEY_SECRET_ARN")
            }
        };
        let key = crate::keys::SigningKey::from_pem(pem.as_bytes())
            .map_err(|source| StartupError::Key { variable, source })?;
        let signer = CloudFrontSigner::new(config.key_pair_id.clone(), key, config.hash);
        let credentials = sdk.credentials_provider().ok_or(StartupError::NoCredentials)?;
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(config.force_path_style)
            .build();
        let presigner =
            Presigner::new(aws_sdk_s3::Client::from_conf(s3), config.bucket.clone(), credentials);
        Ok(Self { config, signer, presigner })
    }
}
