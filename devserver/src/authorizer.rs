//! An emulation of API Gateway's HTTP API JWT authorizer, so that the devserver guards the
//! signer's routes as AWS does, and a token from a real identity provider (Cognito,
//! Auth0...) can be tried locally by configuring its issuer and audience.
//!
//! What API Gateway documents (Developer Guide, "Control access to HTTP APIs with JWT
//! authorizers" and "Troubleshooting issues with HTTP API JWT authorizers"), and so what
//! [`JwtAuthorizer::authorize`] does, in this order:
//! - the identity source (`Authorization`) holds the token alone or after `Bearer `;
//! - the token is decoded (three base64url parts, JSON header and payload);
//! - only RSA algorithms are supported: `none`, HMAC (`HS*`) and EC (`ES*`) are refused;
//! - the header's `kid` must name a key of the issuer's JWKS, found through the OIDC
//!   discovery document `{issuer}/.well-known/openid-configuration` and its `jwks_uri`,
//!   and the signature must verify with that key; keys are cached ("up to two hours");
//! - `iss` must equal the configured issuer, as a plain string comparison (a trailing `/`
//!   matters: Auth0's issuers end with one);
//! - `aud` (a string or an array) must hold one of the configured audiences; `client_id`
//!   is read instead only when `aud` is absent;
//! - `exp` must be after the current time; `nbf` and `iat`, when present, before it;
//! - any failure is a 401 `{"message":"Unauthorized"}` with a `www-authenticate` header
//!   ([`unauthorized_response`]);
//! - on success the claims reach the Lambda in `requestContext.authorizer.jwt.claims`,
//!   every value a string, arrays as `[a b c]` ([`flatten`]).
//!
//! Scopes (`scope`/`scp` against a route's `authorizationScopes`) are not checked: none of
//! this project's routes declares any.
//!
//! Where AWS documents nothing, this module decides, and says so:
//! - a token without `exp` is refused: "must be after the current time" has nothing to
//!   compare otherwise;
//! - no clock leeway on any of `exp`, `nbf`, `iat` (AWS mentions none);
//! - "before the current time" for `nbf` and `iat` is read as "not after" (RFC 7519's
//!   meaning of `nbf`): with whole-second clocks, a strict reading would refuse a token
//!   presented in the second it was issued;
//! - `RS256`, `RS384`, `RS512` and the RSA-PSS `PS256`, `PS384`, `PS512` are accepted
//!   ("only RSA-based algorithms"); identity providers in practice sign with `RS256`;
//! - the `Bearer` prefix is matched without regard to case (an HTTP auth scheme);
//! - keys are kept [`KEY_CACHE_SECS`] (the documented maximum); a `kid` missing from the
//!   cached set triggers one refetch at most every [`UNKNOWN_KID_REFETCH_SECS`], so a
//!   rotated key is picked up without letting unknown `kid`s hammer the issuer;
//! - keys that cannot be fetched refuse the token with 401 like every other failure;
//! - the discovery document's own `issuer` is not compared with the configured one (OIDC
//!   asks relying parties to; AWS does not say it does), and redirects are not followed;
//! - only the audience failure's `error_description` is documented (see
//!   [`AuthError::description`]); the others follow its wording;
//! - `http://` issuers are accepted, for the development identity provider on loopback.
//!
//! The clock (`now`, Unix seconds) is an input, for the claims and for the key cache.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use openssl::bn::BigNum;
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Verifier};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

/// How long fetched keys are used before the discovery document and JWKS are fetched
/// again: API Gateway "can cache the public key for two hours".
pub const KEY_CACHE_SECS: u64 = 2 * 60 * 60;
/// A token naming a `kid` the cached keys lack makes the authorizer fetch the keys again,
/// at most once in this many seconds.
pub const UNKNOWN_KID_REFETCH_SECS: u64 = 60;
/// Time allowed for one document (discovery or JWKS) to arrive.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Larger discovery documents or key sets are refused; real ones are a few kilobytes.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Validates bearer tokens as an API Gateway HTTP API JWT authorizer configured with one
/// issuer and a list of audiences, fetching and caching the issuer's keys.
pub struct JwtAuthorizer {
    issuer: String,
    audiences: Vec<String>,
    discovery_url: String,
    http: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    keys: Mutex<KeyCache>,
}

/// The issuer's RSA keys by `kid`, and when they were fetched (by the caller's clock).
#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, PKey<Public>>,
    /// Last successful fetch: the keys are used until `fetched_at + KEY_CACHE_SECS`.
    fetched_at: Option<u64>,
    /// Last attempt, successful or not: limits refetches for unknown `kid`s.
    attempted_at: Option<u64>,
}

/// Why a [`JwtAuthorizer`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The issuer is not an absolute `http://` or `https://` URL.
    #[error("issuer {0:?} is not an http:// or https:// URL")]
    InvalidIssuer(String),
    /// The audience list is empty; API Gateway requires at least one audience.
    #[error("the JWT authorizer needs at least one audience")]
    NoAudience,
    /// rustls refused its own default protocol versions (not expected to happen).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why the issuer's keys could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFetchError {
    /// The request failed: invalid URL, connection refused, TLS failure, no answer within
    /// ten seconds, or the body broke off.
    #[error("GET {url}: {reason}")]
    Unreachable {
        /// The discovery document's or the JWKS's URL.
        url: String,
        /// What went wrong, with its causes.
        reason: String,
    },
    /// The server answered with a status other than 200.
    #[error("GET {url}: HTTP {status}")]
    Status {
        /// The discovery document's or the JWKS's URL.
        url: String,
        /// The status received.
        status: u16,
    },
    /// The document is not JSON, is over 1 MiB, or lacks `jwks_uri` (discovery) or a
    /// `keys` array (JWKS).
    #[error("{url}: {reason}")]
    InvalidDocument {
        /// The discovery document's or the JWKS's URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a request was refused. API Gateway answers all of them with the same 401
/// ([`unauthorized_response`]); only the `www-authenticate` description differs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, or one that is empty or only `Bearer`.
    #[error("no token")]
    MissingToken,
    /// Not three base64url parts (without padding), or a header or payload that is not a
    /// JSON object, or a header without a string `alg`.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not an RSA algorithm (`none`, `HS256`, `ES256`, ...).
    #[error("unsupported signing algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The header has no string `kid`.
    #[error("the token header has no kid")]
    MissingKid,
    /// No key of the issuer's JWKS has this `kid`, even after the refetch it may trigger.
    #[error("no key of the issuer has kid {0:?}")]
    UnknownKid(String),
    /// The signature does not verify with the key named by `kid`: a tampered token, or one
    /// signed by another key.
    #[error("bad signature")]
    InvalidSignature,
    /// `iss` is missing, not a string, or not exactly the configured issuer.
    #[error("wrong issuer")]
    InvalidIssuer,
    /// `aud` holds none of the configured audiences, or `aud` is absent and `client_id`
    /// is not one of them.
    #[error("wrong audience")]
    InvalidAudience,
    /// The token has no `exp` (a decision of this emulation, see the module docs).
    #[error("the token has no exp")]
    MissingExpiry,
    /// `exp` is not after `now`.
    #[error("token expired")]
    Expired,
    /// `nbf` is after `now`.
    #[error("token not valid yet")]
    NotYetValid,
    /// `iat` is after `now`.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `exp`, `nbf` or `iat` (named) is present but not a number.
    #[error("{0} is not a number")]
    InvalidTimeClaim(&'static str),
    /// The issuer's discovery document or JWKS could not be fetched when needed.
    #[error("the issuer's keys are unavailable: {0}")]
    KeysUnavailable(#[from] KeyFetchError),
}

impl AuthError {
    /// The `error_description` of the `www-authenticate` header. AWS documents one of them,
    /// for the audience ("the token does not have a valid audience"); the others are
    /// worded the same way.
    pub fn description(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "the request has no token",
            AuthError::Malformed => "the token is not a valid JWT",
            AuthError::UnsupportedAlgorithm(_) => "the token's signing algorithm is not supported",
            AuthError::MissingKid | AuthError::UnknownKid(_) => {
                "the token's kid does not match a key of the issuer"
            }
            AuthError::InvalidSignature => "the token does not have a valid signature",
            AuthError::InvalidIssuer => "the token does not have a valid issuer",
            AuthError::InvalidAudience => "the token does not have a valid audience",
            AuthError::MissingExpiry => "the token does not have an expiry",
            AuthError::Expired => "the token has expired",
            AuthError::NotYetValid => "the token is not valid yet",
            AuthError::IssuedInFuture => "the token was issued in the future",
            AuthError::InvalidTimeClaim(_) => "the token has an invalid time claim",
            AuthError::KeysUnavailable(_) => "the issuer's keys could not be fetched",
        }
    }
}

/// API Gateway's answer to a refused token: 401, `{"message":"Unauthorized"}` and a
/// `www-authenticate` header such as
/// `Bearer scope="" error="invalid_token" error_description="the token has expired"`.
pub fn unauthorized_response(error: &AuthError) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(br#"{"message":"Unauthorized"}"#));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let challenge = format!(
        r#"Bearer scope="" error="invalid_token" error_description="{}""#,
        error.description()
    );
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // The descriptions are printable ASCII constants, so the conversion cannot fail.
    if let Ok(value) = HeaderValue::try_from(challenge) {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// A claim value as API Gateway's JWT authorizer passes it: strings as they are, arrays as
/// `[a b c]`, anything else as its JSON text.
pub fn flatten(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(flatten).collect();
            format!("[{}]", inner.join(" "))
        }
        other => other.to_string(),
    }
}

impl JwtAuthorizer {
    /// An authorizer for tokens from `issuer` (an `http://` or `https://` URL, compared
    /// with `iss` exactly) meant for one of `audiences`. Nothing is fetched until the first
    /// token arrives or [`refresh_keys`](Self::refresh_keys) is called. `https://` issuers
    /// are checked against the system's root certificates.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Result<Self, ConfigError> {
        let issuer = issuer.into();
        let is_http_url = issuer.parse::<http::Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some()
        });
        if !is_http_url {
            return Err(ConfigError::InvalidIssuer(issuer));
        }
        if audiences.is_empty() {
            return Err(ConfigError::NoAudience);
        }
        // OpenID Connect Discovery 1.0, section 4: a terminating "/" of the issuer is
        // removed before the well-known path is appended (Auth0's issuers end with one).
        let discovery_url =
            format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        Ok(Self {
            issuer,
            audiences,
            discovery_url,
            http: http_client()?,
            keys: Mutex::new(KeyCache::default()),
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The configured audiences.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Validates the token in an `Authorization` header value (`Bearer <jwt>` or `<jwt>`)
    /// at time `now` (Unix seconds) and returns its claims flattened as API Gateway puts
    /// them in `requestContext.authorizer.jwt.claims`.
    pub async fn authorize(
        &self,
        authorization_header: Option<&str>,
        now: u64,
    ) -> Result<HashMap<String, String>, AuthError> {
        let token = bearer_token(authorization_header).ok_or(AuthError::MissingToken)?;
        let jwt = DecodedJwt::decode(token)?;
        let alg = jwt.header.get("alg").and_then(Value::as_str).ok_or(AuthError::Malformed)?;
        let algorithm = RsaAlgorithm::from_name(alg)
            .ok_or_else(|| AuthError::UnsupportedAlgorithm(alg.to_owned()))?;
        let kid = jwt.header.get("kid").and_then(Value::as_str).ok_or(AuthError::MissingKid)?;
        let key = self.key(kid, now).await?;
        if !algorithm.verify(&key, jwt.signing_input.as_bytes(), &jwt.signature) {
            return Err(AuthError::InvalidSignature);
        }
        self.check_claims(&jwt.claims, now)?;
        Ok(jwt.claims.iter().map(|(name, value)| (name.clone(), flatten(value))).collect())
    }

    /// Fetches the discovery document and the JWKS now and replaces the cached keys,
    /// returning how many RSA keys were found. Tokens trigger fetches by themselves; this
    /// lets a caller check at start-up that the issuer is reachable.
    pub async fn refresh_keys(&self, now: u64) -> Result<usize, KeyFetchError> {
        let mut cache = self.keys.lock().await;
        self.refresh(&mut cache, now).await?;
        Ok(cache.keys.len())
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: u64) -> Result<(), AuthError> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(AuthError::InvalidIssuer);
        }
        let accepted = |value: &Value| {
            value.as_str().is_some_and(|aud| self.audiences.iter().any(|a| a == aud))
        };
        let audience_ok = match claims.get("aud") {
            Some(Value::Array(auds)) => auds.iter().any(accepted),
            Some(aud) => accepted(aud),
            None => claims.get("client_id").is_some_and(accepted),
        };
        if !audience_ok {
            return Err(AuthError::InvalidAudience);
        }
        let now = now as f64;
        match time_claim(claims, "exp")? {
            None => return Err(AuthError::MissingExpiry),
            Some(exp) if exp <= now => return Err(AuthError::Expired),
            Some(_) => {}
        }
        if time_claim(claims, "nbf")?.is_some_and(|nbf| nbf > now) {
            return Err(AuthError::NotYetValid);
        }
        if time_claim(claims, "iat")?.is_some_and(|iat| iat > now) {
            return Err(AuthError::IssuedInFuture);
        }
        Ok(())
    }

    /// The key named `kid`, from the cache or, when the cache is too old or lacks it (and
    /// has not been refreshed in the last minute), from the issuer.
    async fn key(&self, kid: &str, now: u64) -> Result<PKey<Public>, AuthError> {
        let mut cache = self.keys.lock().await;
        let expired = cache.fetched_at.is_none_or(|at| now.saturating_sub(at) >= KEY_CACHE_SECS);
        let may_refetch =
            cache.attempted_at.is_none_or(|at| now.saturating_sub(at) >= UNKNOWN_KID_REFETCH_SECS);
        if expired {
            // Keys past their time are not used, even if the issuer cannot be reached.
            cache.keys.clear();
            self.refresh(&mut cache, now).await?;
        } else if !cache.keys.contains_key(kid) && may_refetch {
            self.refresh(&mut cache, now).await?;
        }
        cache.keys.get(kid).cloned().ok_or_else(|| AuthError::UnknownKid(kid.to_owned()))
    }

    async fn refresh(&self, cache: &mut KeyCache, now: u64) -> Result<(), KeyFetchError> {
        cache.attempted_at = Some(now);
        match self.fetch_keys().await {
            Ok(keys) => {
                tracing::debug!(issuer = %self.issuer, keys = keys.len(), "fetched the issuer's keys");
                cache.keys = keys;
                cache.fetched_at = Some(now);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, "fetching the issuer's keys: {e}");
                Err(e)
            }
        }
    }

    /// Discovery document, then its `jwks_uri`, then the RSA keys of that JWKS.
    async fn fetch_keys(&self) -> Result<HashMap<String, PKey<Public>>, KeyFetchError> {
        let discovery = self.get_json(&self.discovery_url).await?;
        let jwks_uri = discovery.get("jwks_uri").and_then(Value::as_str).ok_or_else(|| {
            KeyFetchError::InvalidDocument {
                url: self.discovery_url.clone(),
                reason: "no jwks_uri".into(),
            }
        })?;
        let jwks = self.get_json(jwks_uri).await?;
        parse_jwks(&jwks).map_err(|reason| KeyFetchError::InvalidDocument {
            url: jwks_uri.to_owned(),
            reason: reason.into(),
        })
    }

    async fn get_json(&self, url: &str) -> Result<Value, KeyFetchError> {
        let unreachable =
            |reason: String| KeyFetchError::Unreachable { url: url.to_owned(), reason };
        let request = Request::get(url)
            .header(header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| unreachable(e.to_string()))?;
        let fetch = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| unreachable(format!("{:#}", anyhow::Error::new(e))))?;
            if response.status() != StatusCode::OK {
                return Err(KeyFetchError::Status {
                    url: url.to_owned(),
                    status: response.status().as_u16(),
                });
            }
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        KeyFetchError::InvalidDocument {
                            url: url.to_owned(),
                            reason: format!("larger than {MAX_DOCUMENT_BYTES} bytes"),
                        }
                    } else {
                        unreachable(format!("{:#}", anyhow::Error::from_boxed(e)))
                    }
                })?
                .to_bytes();
            serde_json::from_slice(&body).map_err(|e| KeyFetchError::InvalidDocument {
                url: url.to_owned(),
                reason: format!("not JSON: {e}"),
            })
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| unreachable(format!("no answer within {FETCH_TIMEOUT:?}")))?
    }
}

/// An HTTP/1.1 client for `http://` and `https://`, with the TLS stack the AWS SDK already
/// links (rustls, aws-lc-rs) and the system's root certificates.
fn http_client() -> Result<Client<HttpsConnector<HttpConnector>, Empty<Bytes>>, ConfigError> {
    let native = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        // Only an https:// issuer needs them; the development IdP is plain HTTP.
        tracing::debug!(errors = ?native.errors, "no system root certificates found");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// The token of an identity source value: all of it, or what follows `Bearer `.
fn bearer_token(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let token = match (value.get(..7), value.get(7..)) {
        (Some(scheme), Some(rest)) if scheme.eq_ignore_ascii_case("bearer ") => rest.trim(),
        _ if value.eq_ignore_ascii_case("bearer") => "",
        _ => value,
    };
    (!token.is_empty()).then_some(token)
}

/// A JWS in compact serialisation, decoded but not verified.
struct DecodedJwt<'a> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    /// `header.payload` as received: what the signature covers.
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl<'a> DecodedJwt<'a> {
    fn decode(token: &'a str) -> Result<Self, AuthError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(AuthError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(AuthError::Malformed)?;
        let json_object = |part: &str| -> Result<Map<String, Value>, AuthError> {
            let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| AuthError::Malformed)?;
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(AuthError::Malformed),
            }
        };
        Ok(Self {
            header: json_object(header)?,
            claims: json_object(payload)?,
            signing_input,
            signature: URL_SAFE_NO_PAD.decode(signature).map_err(|_| AuthError::Malformed)?,
        })
    }
}

/// The RSA signature algorithms of RFC 7518: PKCS#1 v1.5 (`RS*`) and PSS (`PS*`).
#[derive(Debug, Clone, Copy)]
struct RsaAlgorithm {
    digest: fn() -> MessageDigest,
    pss: bool,
}

impl RsaAlgorithm {
    fn from_name(alg: &str) -> Option<Self> {
        let (digest, pss): (fn() -> MessageDigest, bool) = match alg {
            "RS256" => (MessageDigest::sha256, false),
            "RS384" => (MessageDigest::sha384, false),
            "RS512" => (MessageDigest::sha512, false),
            "PS256" => (MessageDigest::sha256, true),
            "PS384" => (MessageDigest::sha384, true),
            "PS512" => (MessageDigest::sha512, true),
            _ => return None,
        };
        Some(Self { digest, pss })
    }

    /// Whether `signature` is valid over `data`; an OpenSSL error counts as invalid.
    fn verify(self, key: &PKey<Public>, data: &[u8], signature: &[u8]) -> bool {
        let verify = || -> Result<bool, ErrorStack> {
            let digest = (self.digest)();
            let mut verifier = Verifier::new(digest, key)?;
            if self.pss {
                // RFC 7518 section 3.5: MGF1 with the same hash, salt as long as the hash.
                verifier.set_rsa_padding(Padding::PKCS1_PSS)?;
                verifier.set_rsa_mgf1_md(digest)?;
                verifier.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
            }
            verifier.verify_oneshot(signature, data)
        };
        verify().unwrap_or(false)
    }
}

/// A NumericDate claim: absent, or a number (fractions allowed, RFC 7519 section 2).
fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_f64().map(Some).ok_or(AuthError::InvalidTimeClaim(name)),
    }
}

/// The signing keys of a JWKS by `kid`: RSA keys (`kty` `RSA`) with a `kid`, not marked
/// for encryption (`use` other than `sig`). Other keys are skipped; a malformed RSA key is
/// skipped with a warning. Errs only when there is no `keys` array.
fn parse_jwks(jwks: &Value) -> Result<HashMap<String, PKey<Public>>, &'static str> {
    let keys = jwks.get("keys").and_then(Value::as_array).ok_or("no keys array")?;
    let mut found = HashMap::new();
    for jwk in keys {
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        if text("kty") != Some("RSA") || text("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let Some(kid) = text("kid") else { continue };
        match rsa_public_key(text("n"), text("e")) {
            Some(key) => {
                found.insert(kid.to_owned(), key);
            }
            None => tracing::warn!(kid, "skipping an RSA key of the JWKS without a valid n and e"),
        }
    }
    Ok(found)
}

/// The RSA public key of a JWK's `n` and `e` (base64url big-endian integers).
fn rsa_public_key(n: Option<&str>, e: Option<&str>) -> Option<PKey<Public>> {
    // RFC 7518 asks for base64url without padding; a padded value costs nothing to accept.
    const BASE64URL: GeneralPurpose = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let n = BigNum::from_slice(&BASE64URL.decode(n?).ok()?).ok()?;
    let e = BigNum::from_slice(&BASE64URL.decode(e?).ok()?).ok()?;
    PKey::from_rsa(Rsa::from_public_components(n, e).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{OnceLock, RwLock};

    use http_body_util::Full;
    use openssl::pkey::Private;
    use openssl::sign::Signer;
    use serde_json::json;
    use tokio::net::TcpListener;

    use crate::idp::DevIdp;

    /// The fixed clock of these tests.
    const NOW: u64 = 1_800_000_000;
    const ISSUER: &str = "https://idp.example.com/pool";
    const KID: &str = "test-key";

    /// One RSA key for the whole module: generating one takes a while.
    fn test_key() -> &'static PKey<Private> {
        static KEY: OnceLock<PKey<Private>> = OnceLock::new();
        KEY.get_or_init(|| PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap())
    }

    fn other_key() -> &'static PKey<Private> {
        static KEY: OnceLock<PKey<Private>> = OnceLock::new();
        KEY.get_or_init(|| PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap())
    }

    fn jwk(key: &PKey<Private>, kid: &str) -> Value {
        let rsa = key.rsa().unwrap();
        json!({
            "kty": "RSA",
            "kid": kid,
            "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        })
    }

    /// An authorizer for `ISSUER` and audiences `app` and `other-app` whose cache holds
    /// `test_key()` as `KID`, fetched at `NOW` (the issuer is never contacted: its host
    /// does not resolve, so an unexpected fetch shows up as `KeysUnavailable`).
    fn authorizer() -> JwtAuthorizer {
        let authorizer =
            JwtAuthorizer::new(ISSUER, vec!["app".into(), "other-app".into()]).unwrap();
        let keys = parse_jwks(&json!({ "keys": [jwk(test_key(), KID)] })).unwrap();
        let cache = KeyCache { keys, fetched_at: Some(NOW), attempted_at: Some(NOW) };
        JwtAuthorizer { keys: Mutex::new(cache), ..authorizer }
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": "app",
            "sub": "alice",
            "galleries": ["demo", "trips"],
            "iat": NOW - 10,
            "nbf": NOW - 10,
            "exp": NOW + 3600,
        })
    }

    fn b64_json(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    /// A token with this header and these claims, signed by `key` as `alg` says (RS* or
    /// PS*).
    fn sign_with(key: &PKey<Private>, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64_json(header), b64_json(claims));
        let alg = header["alg"].as_str().unwrap();
        let algorithm = RsaAlgorithm::from_name(alg).unwrap();
        let digest = (algorithm.digest)();
        let mut signer = Signer::new(digest, key).unwrap();
        if algorithm.pss {
            signer.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            signer.set_rsa_mgf1_md(digest).unwrap();
            signer.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
        }
        let signature = signer.sign_oneshot_to_vec(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn sign(claims: &Value) -> String {
        sign_with(test_key(), &json!({ "alg": "RS256", "typ": "JWT", "kid": KID }), claims)
    }

    /// `claims()` with `name` replaced by `value`, or removed when `value` is null.
    fn claims_with(name: &str, value: Value) -> Value {
        let mut claims = claims();
        let map = claims.as_object_mut().unwrap();
        if value.is_null() {
            map.remove(name);
        } else {
            map.insert(name.into(), value);
        }
        claims
    }

    async fn check(token: &str) -> Result<HashMap<String, String>, AuthError> {
        authorizer().authorize(Some(&format!("Bearer {token}")), NOW).await
    }

    #[track_caller]
    fn case(result: Result<HashMap<String, String>, AuthError>, expected: Result<(), AuthError>) {
        assert_eq!(result.map(|claims| assert_eq!(claims["sub"], "alice")), expected);
    }

    #[tokio::test]
    async fn bearer_and_bare_tokens_are_both_accepted() {
        let token = sign(&claims());
        let authorizer = authorizer();
        for header in [
            format!("Bearer {token}"),
            token.clone(),
            format!("bearer {token}"),
            format!("  Bearer   {token}  "),
        ] {
            let claims = authorizer.authorize(Some(&header), NOW).await;
            assert_eq!(claims.map(|c| c["sub"].clone()), Ok("alice".into()), "{header:?}");
        }
    }

    #[tokio::test]
    async fn a_missing_or_empty_header_is_missing_token() {
        let authorizer = authorizer();
        for header in [None, Some(""), Some("   "), Some("Bearer"), Some("Bearer   ")] {
            assert_eq!(
                authorizer.authorize(header, NOW).await,
                Err(AuthError::MissingToken),
                "{header:?}"
            );
        }
    }

    #[tokio::test]
    async fn claims_are_flattened_to_strings_like_api_gateway() {
        let mut claims = claims();
        claims["address"] = json!({ "country": "VN" });
        claims["email_verified"] = json!(true);
        let flat = check(&sign(&claims)).await.unwrap();
        assert_eq!(flat["sub"], "alice");
        assert_eq!(flat["galleries"], "[demo trips]");
        assert_eq!(flat["exp"], (NOW + 3600).to_string());
        assert_eq!(flat["email_verified"], "true");
        assert_eq!(flat["address"], r#"{"country":"VN"}"#);
        assert_eq!(flat.len(), 9);
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused() {
        let valid = sign(&claims());
        let parts: Vec<&str> = valid.split('.').collect();
        let header = parts[0];
        let payload = parts[1];
        let signature = parts[2];
        let not_object = b64_json(&json!(["iss"]));
        for token in [
            "abc".to_owned(),
            format!("{header}.{payload}"),
            format!("{header}.{payload}.{signature}.{signature}"),
            format!("{header}.{payload}=.{signature}"),
            format!("{header}.{payload}.{signature}+"),
            format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode("not json")),
            format!("{header}.{not_object}.{signature}"),
            format!("{}.{payload}.{signature}", b64_json(&json!({ "kid": KID }))),
            format!("{}.{payload}.{signature}", b64_json(&json!({ "alg": 256, "kid": KID }))),
        ] {
            assert_eq!(check(&token).await, Err(AuthError::Malformed), "{token}");
        }
    }

    #[tokio::test]
    async fn non_rsa_algorithms_are_refused() {
        let payload = b64_json(&claims());
        // alg none with an empty signature, the classic bypass.
        let none = format!("{}.{payload}.", b64_json(&json!({ "alg": "none", "kid": KID })));
        assert_eq!(check(&none).await, Err(AuthError::UnsupportedAlgorithm("none".into())));

        // HS256 keyed with the issuer's public key, the classic key-confusion forgery.
        let header = b64_json(&json!({ "alg": "HS256", "typ": "JWT", "kid": KID }));
        let input = format!("{header}.{payload}");
        let secret = test_key().public_key_to_pem().unwrap();
        let hmac = PKey::hmac(&secret).unwrap();
        let mut signer = Signer::new(MessageDigest::sha256(), &hmac).unwrap();
        let mac = signer.sign_oneshot_to_vec(input.as_bytes()).unwrap();
        let hs256 = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac));
        assert_eq!(check(&hs256).await, Err(AuthError::UnsupportedAlgorithm("HS256".into())));

        let es256 = format!("{}.{payload}.AAAA", b64_json(&json!({ "alg": "ES256", "kid": KID })));
        assert_eq!(check(&es256).await, Err(AuthError::UnsupportedAlgorithm("ES256".into())));
    }

    #[tokio::test]
    async fn every_rsa_algorithm_is_accepted_and_bound_to_its_padding() {
        for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
            let header = json!({ "alg": alg, "kid": KID });
            case(check(&sign_with(test_key(), &header, &claims())).await, Ok(()));
        }
        // A PKCS#1 v1.5 signature presented as PSS (and the reverse) does not verify.
        let rs256 = sign_with(test_key(), &json!({ "alg": "RS256", "kid": KID }), &claims());
        let (_, signature) = rs256.rsplit_once('.').unwrap();
        let relabelled = format!(
            "{}.{}.{signature}",
            b64_json(&json!({ "alg": "PS256", "kid": KID })),
            b64_json(&claims())
        );
        case(check(&relabelled).await, Err(AuthError::InvalidSignature));
    }

    #[tokio::test]
    async fn the_kid_must_name_a_key_of_the_issuer() {
        let no_kid = sign_with(test_key(), &json!({ "alg": "RS256" }), &claims());
        case(check(&no_kid).await, Err(AuthError::MissingKid));
        let numeric_kid = sign_with(test_key(), &json!({ "alg": "RS256", "kid": 7 }), &claims());
        case(check(&numeric_kid).await, Err(AuthError::MissingKid));
        let unknown =
            sign_with(test_key(), &json!({ "alg": "RS256", "kid": "rotated" }), &claims());
        case(check(&unknown).await, Err(AuthError::UnknownKid("rotated".into())));
    }

    #[tokio::test]
    async fn a_token_from_another_dev_idp_is_refused() {
        let foreign = DevIdp::new(ISSUER).unwrap().with_audience("app");
        let (token, _) = foreign.issue("alice", &[], NOW).unwrap();
        case(check(&token).await, Err(AuthError::UnknownKid(foreign.kid().to_owned())));
    }

    #[tokio::test]
    async fn a_token_signed_by_another_key_under_a_known_kid_is_refused() {
        let header = json!({ "alg": "RS256", "kid": KID });
        case(
            check(&sign_with(other_key(), &header, &claims())).await,
            Err(AuthError::InvalidSignature),
        );
    }

    #[tokio::test]
    async fn a_tampered_payload_is_refused() {
        let token = sign(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = b64_json(&claims_with("galleries", json!(["demo", "trips", "secret"])));
        let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
        case(check(&tampered).await, Err(AuthError::InvalidSignature));
        // The untouched token passes, so the refusal above is the tampering's.
        case(check(&token).await, Ok(()));
    }

    #[tokio::test]
    async fn the_issuer_must_match_exactly() {
        for (iss, expected) in [
            (json!(ISSUER), Ok(())),
            (json!(format!("{ISSUER}/")), Err(AuthError::InvalidIssuer)),
            (json!("https://IDP.example.com/pool"), Err(AuthError::InvalidIssuer)),
            (json!("http://idp.example.com/pool"), Err(AuthError::InvalidIssuer)),
            (json!([ISSUER]), Err(AuthError::InvalidIssuer)),
            (Value::Null, Err(AuthError::InvalidIssuer)),
        ] {
            case(check(&sign(&claims_with("iss", iss))).await, expected);
        }
    }

    #[tokio::test]
    async fn aud_must_hold_one_of_the_configured_audiences() {
        for (aud, expected) in [
            (json!("app"), Ok(())),
            (json!("other-app"), Ok(())),
            (json!("someone-else"), Err(AuthError::InvalidAudience)),
            (json!("App"), Err(AuthError::InvalidAudience)),
            (json!(["https://idp.example.com/userinfo", "app"]), Ok(())),
            (json!(["someone-else", "another"]), Err(AuthError::InvalidAudience)),
            (json!([]), Err(AuthError::InvalidAudience)),
            (json!(42), Err(AuthError::InvalidAudience)),
        ] {
            case(check(&sign(&claims_with("aud", aud.clone()))).await, expected);
        }
    }

    #[tokio::test]
    async fn client_id_is_read_only_when_aud_is_absent() {
        // A Cognito access token: client_id, no aud.
        let access = claims_with("aud", Value::Null);
        let mut with_client = access.clone();
        with_client["client_id"] = json!("app");
        case(check(&sign(&with_client)).await, Ok(()));
        with_client["client_id"] = json!("someone-else");
        case(check(&sign(&with_client)).await, Err(AuthError::InvalidAudience));
        case(check(&sign(&access)).await, Err(AuthError::InvalidAudience));
        // aud present and wrong: a right client_id does not rescue it.
        let mut both = claims_with("aud", json!("someone-else"));
        both["client_id"] = json!("app");
        case(check(&sign(&both)).await, Err(AuthError::InvalidAudience));
        // aud present and right: a wrong client_id does not matter.
        let mut both = claims();
        both["client_id"] = json!("someone-else");
        case(check(&sign(&both)).await, Ok(()));
    }

    #[tokio::test]
    async fn exp_is_required_and_must_be_after_now() {
        for (exp, expected) in [
            (json!(NOW + 1), Ok(())),
            (json!(NOW as f64 + 0.5), Ok(())),
            (json!(NOW), Err(AuthError::Expired)),
            (json!(NOW - 1), Err(AuthError::Expired)),
            (Value::Null, Err(AuthError::MissingExpiry)),
            (json!((NOW + 3600).to_string()), Err(AuthError::InvalidTimeClaim("exp"))),
        ] {
            case(check(&sign(&claims_with("exp", exp))).await, expected);
        }
    }

    #[tokio::test]
    async fn nbf_and_iat_must_not_be_after_now() {
        for name in ["nbf", "iat"] {
            let after_now =
                if name == "nbf" { AuthError::NotYetValid } else { AuthError::IssuedInFuture };
            for (value, expected) in [
                (json!(NOW - 1), Ok(())),
                (json!(NOW), Ok(())),
                (Value::Null, Ok(())),
                (json!(NOW + 1), Err(after_now.clone())),
                (json!(NOW as f64 + 0.5), Err(after_now)),
                (json!("now"), Err(AuthError::InvalidTimeClaim(name))),
            ] {
                case(check(&sign(&claims_with(name, value))).await, expected);
            }
        }
    }

    #[test]
    fn the_refusal_is_api_gateways_401() {
        let response = unauthorized_response(&AuthError::InvalidAudience);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.body().as_ref(), br#"{"message":"Unauthorized"}"#);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        // The example of AWS's troubleshooting page, byte for byte.
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer scope="" error="invalid_token" error_description="the token does not have a valid audience""#
        );
        let expired = unauthorized_response(&AuthError::Expired);
        assert_eq!(
            expired.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer scope="" error="invalid_token" error_description="the token has expired""#
        );
        assert_eq!(AuthError::Expired.description(), "the token has expired");
    }

    #[test]
    fn the_configuration_is_checked_at_construction() {
        for issuer in ["idp.example.com", "ftp://idp.example.com", "https://", ""] {
            assert!(
                matches!(
                    JwtAuthorizer::new(issuer, vec!["app".into()]),
                    Err(ConfigError::InvalidIssuer(i)) if i == issuer
                ),
                "{issuer}"
            );
        }
        assert!(matches!(JwtAuthorizer::new(ISSUER, vec![]), Err(ConfigError::NoAudience)));
        let authorizer = JwtAuthorizer::new("http://127.0.0.1:9/", vec!["app".into()]).unwrap();
        assert_eq!(authorizer.discovery_url, "http://127.0.0.1:9/.well-known/openid-configuration");
        assert_eq!(authorizer.issuer(), "http://127.0.0.1:9/");
    }

    #[test]
    fn only_rsa_signing_keys_with_a_kid_are_taken_from_the_jwks() {
        let rsa = jwk(test_key(), "sig");
        let mut enc = jwk(other_key(), "enc");
        enc["use"] = json!("enc");
        let mut no_use = jwk(other_key(), "no-use");
        no_use.as_object_mut().unwrap().remove("use");
        let mut no_kid = jwk(other_key(), "");
        no_kid.as_object_mut().unwrap().remove("kid");
        let mut bad_n = jwk(other_key(), "bad-n");
        bad_n["n"] = json!("***");
        let ec = json!({ "kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA" });
        let keys = parse_jwks(&json!({ "keys": [rsa, enc, no_use, no_kid, bad_n, ec] })).unwrap();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["no-use", "sig"]);
        assert!(keys["sig"].public_eq(test_key()));
        assert_eq!(parse_jwks(&json!({ "kids": [] })).err(), Some("no keys array"));
    }

    /// A loopback server answering with whichever DevIdp `current` holds, counting the
    /// JWKS requests.
    async fn serve_idp(
        listener: TcpListener,
        current: Arc<RwLock<Arc<DevIdp>>>,
        jwks_requests: Arc<AtomicUsize>,
    ) {
        loop {
            let Ok((socket, _)) = listener.accept().await else { continue };
            let current = Arc::clone(&current);
            let jwks_requests = Arc::clone(&jwks_requests);
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                if req.uri().path() == "/.well-known/jwks.json" {
                    jwks_requests.fetch_add(1, Ordering::SeqCst);
                }
                let idp = Arc::clone(&current.read().unwrap());
                async move { Ok::<_, Infallible>(idp.serve(req).await) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service),
            );
        }
    }

    async fn start_idp() -> (SocketAddr, Arc<RwLock<Arc<DevIdp>>>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let idp = DevIdp::new(format!("http://{addr}")).unwrap();
        let current = Arc::new(RwLock::new(Arc::new(idp)));
        let jwks_requests = Arc::new(AtomicUsize::new(0));
        tokio::spawn(serve_idp(listener, Arc::clone(&current), Arc::clone(&jwks_requests)));
        (addr, current, jwks_requests)
    }

    #[tokio::test]
    async fn keys_are_discovered_over_http_and_refetched_once_for_a_rotated_kid() {
        let (addr, current, jwks_requests) = start_idp().await;
        let issuer = format!("http://{addr}");
        let authorizer = JwtAuthorizer::new(&issuer, vec!["devserver".into()]).unwrap();
        let bearer = |token: &str| format!("Bearer {token}");
        let fetches = || jwks_requests.load(Ordering::SeqCst);

        let first = Arc::clone(&current.read().unwrap());
        let (token_a, _) = first.issue("alice", &["demo".into()], NOW).unwrap();
        let flat = authorizer.authorize(Some(&bearer(&token_a)), NOW).await.unwrap();
        assert_eq!((flat["sub"].as_str(), flat["galleries"].as_str()), ("alice", "[demo]"));
        assert_eq!(flat["iss"], issuer);
        assert_eq!(fetches(), 1);
        authorizer.authorize(Some(&bearer(&token_a)), NOW + 1).await.unwrap();
        assert_eq!(fetches(), 1, "cached keys are reused");

        // The IdP rotates its key: same issuer, new key and kid, old key withdrawn.
        let rotated = Arc::new(DevIdp::new(&issuer).unwrap());
        assert_ne!(rotated.kid(), first.kid());
        *current.write().unwrap() = Arc::clone(&rotated);
        let (token_b, _) = rotated.issue("bob", &[], NOW + 30).unwrap();
        assert_eq!(
            authorizer.authorize(Some(&bearer(&token_b)), NOW + 30).await,
            Err(AuthError::UnknownKid(rotated.kid().to_owned())),
            "a refetch within a minute of the last one is not made"
        );
        assert_eq!(fetches(), 1);
        let flat = authorizer.authorize(Some(&bearer(&token_b)), NOW + 61).await.unwrap();
        assert_eq!(flat["sub"], "bob");
        assert_eq!(fetches(), 2, "the unknown kid triggered one refetch");
        assert_eq!(
            authorizer.authorize(Some(&bearer(&token_a)), NOW + 62).await,
            Err(AuthError::UnknownKid(first.kid().to_owned())),
            "the withdrawn key is gone"
        );
        let stranger = sign_with(test_key(), &json!({ "alg": "RS256", "kid": "x" }), &claims());
        assert_eq!(
            authorizer.authorize(Some(&bearer(&stranger)), NOW + 63).await,
            Err(AuthError::UnknownKid("x".into()))
        );
        assert_eq!(fetches(), 2, "unknown kids do not refetch more than once a minute");

        // Two hours after the last fetch the keys are fetched again, known kid or not.
        let later = NOW + 61 + KEY_CACHE_SECS;
        let (token_c, _) = rotated.issue("carol", &[], later).unwrap();
        authorizer.authorize(Some(&bearer(&token_c)), later - 1).await.unwrap_err();
        assert_eq!(fetches(), 2);
        authorizer.authorize(Some(&bearer(&token_c)), later).await.unwrap();
        assert_eq!(fetches(), 3);
        assert_eq!(authorizer.refresh_keys(later).await, Ok(1));
        assert_eq!(fetches(), 4);
    }

    #[tokio::test]
    async fn a_dev_idp_sign_in_over_http_gives_a_token_the_authorizer_accepts() {
        let (addr, _, _) = start_idp().await;
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/sign-in"))
            .body(r#"{"user":"alice","galleries":["demo","trips"]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        let token = body["token"].as_str().unwrap().to_owned();
        let iat = body["claims"]["iat"].as_u64().unwrap();
        let authorizer = Arc::new(
            JwtAuthorizer::new(format!("http://{addr}"), vec!["devserver".into()]).unwrap(),
        );
        // On another task, as the devserver's connections will share one authorizer.
        let (shared, bearer) = (Arc::clone(&authorizer), format!("Bearer {token}"));
        let task = tokio::spawn(async move { shared.authorize(Some(&bearer), iat).await });
        let flat = task.await.unwrap().unwrap();
        assert_eq!(flat["galleries"], "[demo trips]");
        assert_eq!(authorizer.authorize(Some(&token), iat + 3600).await, Err(AuthError::Expired));
    }

    #[tokio::test]
    async fn an_unreachable_issuer_refuses_tokens_as_keys_unavailable() {
        // A port that was just free: nothing listens there.
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let authorizer = JwtAuthorizer::new(&issuer, vec!["app".into()]).unwrap();
        let token = sign(&claims_with("iss", json!(issuer)));
        let refused = authorizer.authorize(Some(&token), NOW).await;
        assert!(
            matches!(
                &refused,
                Err(AuthError::KeysUnavailable(KeyFetchError::Unreachable { url, .. }))
                    if *url == format!("{issuer}/.well-known/openid-configuration")
            ),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_discovery_document_without_jwks_uri_is_invalid() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                let service = hyper::service::service_fn(|req: Request<hyper::body::Incoming>| {
                    let (status, body) = match req.uri().path() {
                        "/.well-known/openid-configuration" => (200, r#"{"issuer":"x"}"#),
                        _ => (404, "{}"),
                    };
                    let mut response =
                        Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), service),
                );
            }
        });
        let authorizer = JwtAuthorizer::new(format!("http://{addr}"), vec!["app".into()]).unwrap();
        assert_eq!(
            authorizer.refresh_keys(NOW).await,
            Err(KeyFetchError::InvalidDocument {
                url: format!("http://{addr}/.well-known/openid-configuration"),
                reason: "no jwks_uri".into(),
            })
        );
        let prefixed =
            JwtAuthorizer::new(format!("http://{addr}/missing"), vec!["app".into()]).unwrap();
        assert_eq!(
            prefixed.refresh_keys(NOW).await,
            Err(KeyFetchError::Status {
                url: format!("http://{addr}/missing/.well-known/openid-configuration"),
                status: 404,
            })
        );
    }
}
