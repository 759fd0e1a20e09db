//! A development identity provider: what Cognito or Auth0 are to the deployed stack, reduced
//! to what the devserver needs. It signs RS256 JWTs with an RSA-2048 key generated at start
//! and publishes what API Gateway's JWT authorizer reads to check them: the OIDC discovery
//! document (`{issuer}/.well-known/openid-configuration`) and the key set it names
//! (`{issuer}/.well-known/jwks.json`). The devserver's authorizer
//! ([`crate::authorizer`]) discovers its keys over HTTP exactly as it would a real
//! provider's, so swapping this for a real issuer is a matter of configuration.
//!
//! `POST {issuer}/sign-in` with `{"user":"alice","galleries":["demo"]}` answers
//! `{"token":...,"claims":...}`: anyone can sign in as anyone. Development only; never
//! deploy it. The demo pages call it from the site's origin, so it answers CORS for a
//! configured list of origins.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use serde_json::{json, Value};

/// The audience of issued tokens unless [`DevIdp::with_audience`] says otherwise.
pub const DEFAULT_AUDIENCE: &str = "devserver";
/// Lifetime of an issued token: `exp` is `iat` plus this (1 hour).
pub const TOKEN_TTL_SECS: u64 = 3600;
/// Sign-in bodies are a few dozen bytes; larger ones are refused with 413.
const MAX_BODY: usize = 64 * 1024;
/// How long browsers may reuse a preflight answer.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The development identity provider: one signing key, one issuer, one audience.
pub struct DevIdp {
    issuer: String,
    /// The issuer URL's path without a trailing `/`: the routes are served under it.
    base_path: String,
    audience: String,
    allowed_origins: Vec<String>,
    key: PKey<Private>,
    kid: String,
    /// The public key as a JWK (`kty`, `kid`, `use`, `alg`, `n`, `e`).
    jwk: Value,
}

/// Why a [`DevIdp`] could not be created or could not sign.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// The issuer is not an absolute `http://` or `https://` URL without a query.
    #[error("issuer {0:?} is not an http:// or https:// URL")]
    InvalidIssuer(String),
    /// OpenSSL failed to generate the key or to sign.
    #[error("OpenSSL: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

/// The routes, relative to the issuer's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Discovery,
    Jwks,
    SignIn,
}

impl Route {
    /// The one method each route answers (besides CORS preflights).
    fn method(self) -> Method {
        match self {
            Route::Discovery | Route::Jwks => Method::GET,
            Route::SignIn => Method::POST,
        }
    }

    /// [`method`](Self::method) as a header value, for `Allow` and CORS grants.
    fn method_value(self) -> HeaderValue {
        match self {
            Route::Discovery | Route::Jwks => HeaderValue::from_static("GET"),
            Route::SignIn => HeaderValue::from_static("POST"),
        }
    }
}

/// The body of `POST /sign-in`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    user: String,
    #[serde(default)]
    galleries: Vec<String>,
}

impl DevIdp {
    /// A provider for `issuer` (the URL it is served at, e.g. `http://127.0.0.1:9100`;
    /// it may have a path, under which the routes are then served), with a new RSA-2048
    /// key, audience [`DEFAULT_AUDIENCE`] and no origin allowed for CORS.
    pub fn new(issuer: impl Into<String>) -> Result<Self, IdpError> {
        let issuer = issuer.into();
        let uri =
            issuer.parse::<http::Uri>().map_err(|_| IdpError::InvalidIssuer(issuer.clone()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https"))
            || uri.authority().is_none()
            || uri.query().is_some()
        {
            return Err(IdpError::InvalidIssuer(issuer));
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let rsa = key.rsa()?;
        let n = URL_SAFE_NO_PAD.encode(rsa.n().to_vec());
        let e = URL_SAFE_NO_PAD.encode(rsa.e().to_vec());
        let kid = jwk_thumbprint(&n, &e)?;
        let jwk = json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n, "e": e });
        Ok(Self {
            issuer,
            base_path,
            audience: DEFAULT_AUDIENCE.to_owned(),
            allowed_origins: Vec::new(),
            key,
            kid,
            jwk,
        })
    }

    /// The same provider issuing tokens for `audience` (the authorizer's audience).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// The same provider answering CORS for these origins (`scheme://host:port`, compared
    /// exactly with the `Origin` header), e.g. the site's `http://127.0.0.1:8080`.
    pub fn with_allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// The issuer: the `iss` of issued tokens, and where the provider is served.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of issued tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The signing key's id: its RFC 7638 JWK thumbprint, so a new key has a new `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Where the key set is published: `{issuer}/.well-known/jwks.json`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/.well-known/jwks.json", self.issuer.trim_end_matches('/'))
    }

    /// The OIDC discovery document: the issuer, the key set's URL, RS256, and the other
    /// fields OpenID Connect Discovery requires that make sense without an authorization
    /// endpoint (there is none: sign-in is a plain POST).
    pub fn discovery_document(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri(),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["iss", "aud", "sub", "galleries", "iat", "nbf", "exp"],
        })
    }

    /// The key set: the one signing key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// A token for `user` granting `galleries`, issued at `now` (Unix seconds) and valid
    /// for [`TOKEN_TTL_SECS`], with its claims: `iss`, `aud`, `sub` (the user),
    /// `galleries` (an array), `iat`, `nbf` (both `now`) and `exp`.
    pub fn issue(
        &self,
        user: &str,
        galleries: &[String],
        now: u64,
    ) -> Result<(String, Value), IdpError> {
        let claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user,
            "galleries": galleries,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_TTL_SECS,
        });
        Ok((self.sign(&claims)?, claims))
    }

    /// Any claims signed as an RS256 JWT with this provider's key and `kid`, for tests
    /// that need tokens [`issue`](Self::issue) would not make (expired, other audience).
    pub fn sign(&self, claims: &Value) -> Result<String, IdpError> {
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key)?;
        let signature = signer.sign_oneshot_to_vec(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// Answers a request for the provider: `GET .well-known/openid-configuration`,
    /// `GET .well-known/jwks.json`, `POST sign-in` (under the issuer's path), CORS
    /// preflights for them; 404 elsewhere, 405 for other methods. Sign-in reads the system
    /// clock.
    pub async fn serve<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let origin = self.allowed_origin(&parts.headers);
        let mut response = match self.route(parts.uri.path()) {
            None => error_reply(StatusCode::NOT_FOUND, "not-found", "no such path"),
            Some(route) if is_preflight(&parts.method, &parts.headers) => {
                return self.preflight(route, &parts.headers, origin);
            }
            Some(route) if parts.method != route.method() => {
                let mut reply = error_reply(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method-not-allowed",
                    &format!("use {}", route.method()),
                );
                reply.headers_mut().insert(header::ALLOW, route.method_value());
                reply
            }
            Some(Route::Discovery) => json_reply(StatusCode::OK, &self.discovery_document()),
            Some(Route::Jwks) => json_reply(StatusCode::OK, &self.jwks()),
            Some(Route::SignIn) => self.sign_in(body, unix_now()).await,
        };
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
        response
    }

    fn route(&self, path: &str) -> Option<Route> {
        match path.strip_prefix(self.base_path.as_str())? {
            "/.well-known/openid-configuration" => Some(Route::Discovery),
            "/.well-known/jwks.json" => Some(Route::Jwks),
            "/sign-in" => Some(Route::SignIn),
            _ => None,
        }
    }

    /// The request's `Origin` when it is one of the allowed origins.
    fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.allowed_origins.iter().any(|allowed| allowed == text).then(|| origin.clone())
    }

    /// 204 with the CORS grant when the origin is allowed, the method is the route's and
    /// no header other than `Content-Type` is asked for; 403 otherwise, as S3 answers a
    /// preflight its CORS rules do not allow.
    fn preflight(
        &self,
        route: Route,
        headers: &HeaderMap,
        origin: Option<HeaderValue>,
    ) -> Response<Full<Bytes>> {
        let method_ok = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .is_some_and(|m| m.as_bytes() == route.method().as_str().as_bytes());
        let headers_ok = headers
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .all(|h| h.is_empty() || h.eq_ignore_ascii_case("content-type"));
        let vary = HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        );
        let (Some(origin), true, true) = (origin, method_ok, headers_ok) else {
            let mut reply = error_reply(
                StatusCode::FORBIDDEN,
                "cors-not-allowed",
                "this origin, method or header is not allowed",
            );
            reply.headers_mut().insert(header::VARY, vary);
            return reply;
        };
        let mut reply = Response::new(Full::new(Bytes::new()));
        *reply.status_mut() = StatusCode::NO_CONTENT;
        let h = reply.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, route.method_value());
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(PREFLIGHT_MAX_AGE));
        h.insert(header::VARY, vary);
        reply
    }

    /// The development sign-in, with the contract `POST /api/dev/sign-in` had: a JSON
    /// body with `user` (1 to 128 characters once trimmed) and optional `galleries`,
    /// unknown fields refused.
    async fn sign_in<B>(&self, body: B, now: u64) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => {
                return error_reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    &format!("the body is over {MAX_BODY} bytes"),
                )
            }
            Err(e) => return error_reply(StatusCode::BAD_REQUEST, "invalid-body", &e.to_string()),
        };
        let input: SignIn = match serde_json::from_slice(&body) {
            Ok(input) => input,
            Err(e) => return error_reply(StatusCode::BAD_REQUEST, "invalid-body", &e.to_string()),
        };
        let user = input.user.trim();
        if user.is_empty() || user.chars().count() > 128 {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "invalid-field",
                "user must be 1 to 128 characters",
            );
        }
        match self.issue(user, &input.galleries, now) {
            Ok((token, claims)) => {
                json_reply(StatusCode::OK, &json!({ "token": token, "claims": claims }))
            }
            Err(e) => {
                tracing::error!("signing a development token: {e}");
                error_reply(StatusCode::INTERNAL_SERVER_ERROR, "internal", "could not sign")
            }
        }
    }
}

/// RFC 7638: base64url of the SHA-256 of `{"e":...,"kty":"RSA","n":...}` (members sorted,
/// no whitespace).
fn jwk_thumbprint(n: &str, e: &str) -> Result<String, IdpError> {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    Ok(URL_SAFE_NO_PAD.encode(hash(MessageDigest::sha256(), canonical.as_bytes())?))
}

fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn json_reply(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error_reply(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_reply(status, &json!({ "code": code, "message": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::OnceLock;

    use openssl::sign::Verifier;

    const ISSUER: &str = "http://127.0.0.1:9100";
    const SITE: &str = "http://127.0.0.1:8080";
    const NOW: u64 = 1_800_000_000;

    /// One provider for the module's tests: key generation takes a while.
    fn idp() -> &'static DevIdp {
        static IDP: OnceLock<DevIdp> = OnceLock::new();
        IDP.get_or_init(|| DevIdp::new(ISSUER).unwrap().with_allowed_origins([SITE]))
    }

    fn request(method: Method, path: &str, body: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    }

    async fn call(idp: &DevIdp, req: Request<Full<Bytes>>) -> (StatusCode, HeaderMap, Value) {
        let response = idp.serve(req).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json =
            if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() };
        (status, headers, json)
    }

    fn decode_part(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn issued_tokens_carry_the_claims_and_verify_with_the_published_key() {
        let (token, claims) = idp().issue("alice", &["demo".into(), "trips".into()], NOW).unwrap();
        assert_eq!(
            claims,
            json!({
                "iss": ISSUER,
                "aud": "devserver",
                "sub": "alice",
                "galleries": ["demo", "trips"],
                "iat": NOW,
                "nbf": NOW,
                "exp": NOW + 3600,
            })
        );
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            decode_part(parts[0]),
            json!({ "alg": "RS256", "typ": "JWT", "kid": idp().kid() })
        );
        assert_eq!(decode_part(parts[1]), claims);

        // Verify with the key rebuilt from the JWKS, as an authorizer would.
        let jwk = &idp().jwks()["keys"][0];
        assert_eq!(jwk["kid"], idp().kid());
        let component = |name: &str| {
            let bytes = URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
            openssl::bn::BigNum::from_slice(&bytes).unwrap()
        };
        let rsa = Rsa::from_public_components(component("n"), component("e")).unwrap();
        assert_eq!(rsa.size(), 256, "RSA-2048");
        let public = PKey::from_rsa(rsa).unwrap();
        let mut verifier = Verifier::new(MessageDigest::sha256(), &public).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(verifier.verify_oneshot(&signature, input.as_bytes()).unwrap());
        let tampered = format!("{}.{}x", parts[0], parts[1]);
        assert!(!Verifier::new(MessageDigest::sha256(), &public)
            .unwrap()
            .verify_oneshot(&signature, tampered.as_bytes())
            .unwrap());
    }

    #[test]
    fn the_audience_is_configurable() {
        let idp = DevIdp::new(ISSUER).unwrap().with_audience("my-client-id");
        let (_, claims) = idp.issue("alice", &[], NOW).unwrap();
        assert_eq!(claims["aud"], "my-client-id");
        assert_eq!(idp.audience(), "my-client-id");
    }

    #[test]
    fn the_kid_is_the_rfc7638_thumbprint() {
        // RFC 7638, section 3.1: the example key and its thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            jwk_thumbprint(n, "AQAB").unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(idp().kid(), jwk_thumbprint(idp().jwk["n"].as_str().unwrap(), "AQAB").unwrap());
        let other = DevIdp::new(ISSUER).unwrap();
        assert_ne!(other.kid(), idp().kid(), "a new key has a new kid");
    }

    #[test]
    fn issuers_that_are_not_http_urls_are_refused() {
        for issuer in ["127.0.0.1:9100", "ftp://127.0.0.1", "http://127.0.0.1/?a=b", ""] {
            assert!(
                matches!(DevIdp::new(issuer), Err(IdpError::InvalidIssuer(i)) if i == issuer),
                "{issuer}"
            );
        }
    }

    #[tokio::test]
    async fn discovery_names_the_issuer_and_the_jwks() {
        let (status, headers, body) =
            call(idp(), request(Method::GET, "/.well-known/openid-configuration", "")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["issuer"], ISSUER);
        assert_eq!(body["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
        assert_eq!(body["id_token_signing_alg_values_supported"], json!(["RS256"]));

        let (status, _, body) =
            call(idp(), request(Method::GET, "/.well-known/jwks.json", "")).await;
        assert_eq!(status, StatusCode::OK);
        let keys = body["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["kty"], "RSA");
        assert_eq!(keys[0]["kid"], idp().kid());
        assert_eq!(keys[0]["e"], "AQAB");
        assert_eq!(URL_SAFE_NO_PAD.decode(keys[0]["n"].as_str().unwrap()).unwrap().len(), 256);
    }

    #[tokio::test]
    async fn routes_live_under_the_issuers_path() {
        let idp = DevIdp::new("http://127.0.0.1:8080/idp/").unwrap();
        let (status, _, body) =
            call(&idp, request(Method::GET, "/idp/.well-known/openid-configuration", "")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["jwks_uri"], "http://127.0.0.1:8080/idp/.well-known/jwks.json");
        let (status, _, _) =
            call(&idp, request(Method::GET, "/idp/.well-known/jwks.json", "")).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, body) =
            call(&idp, request(Method::GET, "/.well-known/jwks.json", "")).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("not-found")));
    }

    #[tokio::test]
    async fn sign_in_issues_a_token_for_the_trimmed_user() {
        let (status, headers, body) = call(
            idp(),
            request(Method::POST, "/sign-in", r#"{"user":"  alice ","galleries":["demo"]}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(body["claims"]["sub"], "alice");
        assert_eq!(body["claims"]["galleries"], json!(["demo"]));
        let iat = body["claims"]["iat"].as_u64().unwrap();
        assert_eq!(body["claims"]["exp"].as_u64(), Some(iat + TOKEN_TTL_SECS));
        let token = body["token"].as_str().unwrap();
        assert_eq!(decode_part(token.split('.').nth(1).unwrap()), body["claims"]);

        let (status, _, body) =
            call(idp(), request(Method::POST, "/sign-in", r#"{"user":"bob"}"#)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["claims"]["galleries"], json!([]));
    }

    #[tokio::test]
    async fn sign_in_refuses_bad_bodies() {
        let long = "é".repeat(129);
        let longest = format!(r#"{{"user":"{}"}}"#, "é".repeat(128));
        let cases = [
            (
                r#"{"user":"alice","admin":true}"#.to_owned(),
                StatusCode::BAD_REQUEST,
                "invalid-body",
            ),
            ("not json".to_owned(), StatusCode::BAD_REQUEST, "invalid-body"),
            (String::new(), StatusCode::BAD_REQUEST, "invalid-body"),
            (r#"{"galleries":[]}"#.to_owned(), StatusCode::BAD_REQUEST, "invalid-body"),
            (
                r#"{"user":"alice","galleries":"demo"}"#.to_owned(),
                StatusCode::BAD_REQUEST,
                "invalid-body",
            ),
            (r#"{"user":"   "}"#.to_owned(), StatusCode::BAD_REQUEST, "invalid-field"),
            (format!(r#"{{"user":"{long}"}}"#), StatusCode::BAD_REQUEST, "invalid-field"),
            (" ".repeat(MAX_BODY + 1), StatusCode::PAYLOAD_TOO_LARGE, "body-too-large"),
        ];
        for (body, status, code) in cases {
            let (got, _, json) = call(idp(), request(Method::POST, "/sign-in", &body)).await;
            assert_eq!((got, json["code"].as_str()), (status, Some(code)), "{body:.60}");
        }
        let (status, _, _) = call(idp(), request(Method::POST, "/sign-in", &longest)).await;
        assert_eq!(status, StatusCode::OK, "128 characters (256 bytes) are allowed");
    }

    #[tokio::test]
    async fn each_route_answers_one_method() {
        for (method, path, allow) in [
            (Method::GET, "/sign-in", "POST"),
            (Method::PUT, "/sign-in", "POST"),
            (Method::POST, "/.well-known/jwks.json", "GET"),
            (Method::DELETE, "/.well-known/openid-configuration", "GET"),
            (Method::OPTIONS, "/sign-in", "POST"),
        ] {
            let (status, headers, body) = call(idp(), request(method.clone(), path, "")).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(body["code"], "method-not-allowed");
            assert_eq!(headers[header::ALLOW], allow);
        }
        let (status, _, _) = call(idp(), request(Method::GET, "/token", "")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    fn preflight(origin: &str, method: &str, headers: Option<&str>) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(Method::OPTIONS)
            .uri("/sign-in")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, method);
        if let Some(headers) = headers {
            builder = builder.header(header::ACCESS_CONTROL_REQUEST_HEADERS, headers);
        }
        builder.body(Full::new(Bytes::new())).unwrap()
    }

    #[tokio::test]
    async fn preflights_from_allowed_origins_are_granted() {
        let (status, headers, _) = call(idp(), preflight(SITE, "POST", Some("content-type"))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], SITE);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_HEADERS], "content-type");
        assert_eq!(headers[header::ACCESS_CONTROL_MAX_AGE], PREFLIGHT_MAX_AGE);
        let (status, _, _) = call(idp(), preflight(SITE, "POST", None)).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn preflights_for_other_origins_methods_or_headers_are_refused() {
        for (origin, method, headers) in [
            ("http://evil.example", "POST", Some("content-type")),
            ("http://127.0.0.1:8081", "POST", None),
            (SITE, "PUT", None),
            (SITE, "POST", Some("content-type, x-debug")),
        ] {
            let (status, got, body) = call(idp(), preflight(origin, method, headers)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{origin} {method} {headers:?}");
            assert_eq!(body["code"], "cors-not-allowed");
            assert!(!got.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        }
        let closed = DevIdp::new(ISSUER).unwrap();
        let (status, _, _) = call(&closed, preflight(SITE, "POST", None)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "no origin is allowed unless configured");
    }

    #[tokio::test]
    async fn responses_to_allowed_origins_carry_the_cors_grant() {
        let from = |origin: &str, body: &str| {
            Request::builder()
                .method(Method::POST)
                .uri("/sign-in")
                .header(header::ORIGIN, origin)
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap()
        };
        let (status, headers, _) = call(idp(), from(SITE, r#"{"user":"alice"}"#)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], SITE);
        assert_eq!(headers[header::VARY], "Origin");
        // Errors too, so the page can read why.
        let (status, headers, _) = call(idp(), from(SITE, "{}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], SITE);
        let (status, headers, _) =
            call(idp(), from("http://evil.example", r#"{"user":"a"}"#)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(headers[header::VARY], "Origin");
    }
}
