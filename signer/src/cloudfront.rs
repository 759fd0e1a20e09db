//! CloudFront signed URLs and signed cookies: signing with one key pair, and verifying a
//! request against a trusted key group the way CloudFront does.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::keys::{HashAlgorithm, KeyError, SigningKey, VerifyingKey};
use crate::policy::{cf_base64, cf_base64_decode, Policy};
use keyspace::wildcard_match;

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The URL to sign is not opened by the policy's Resource.
    #[error("the policy's Resource {resource:?} does not match the URL {url:?}")]
    ResourceMismatch {
        /// The policy's Resource.
        resource: String,
        /// The URL given.
        url: String,
    },
    /// The URL already carries CloudFront signing parameters.
    #[error("the URL already has a {0} parameter")]
    AlreadySigned(&'static str),
    /// The key failed to sign.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The query parameters CloudFront reads from a signed URL.
const URL_PARAMS: [&str; 5] = ["Expires", "Policy", "Signature", "Key-Pair-Id", "Hash-Algorithm"];

/// Signs with one key pair of a trusted key group.
#[derive(Debug, Clone)]
pub struct CloudFrontSigner {
    key_pair_id: String,
    key: SigningKey,
    hash: HashAlgorithm,
}

/// The cookies that carry a signature, in the order CloudFront documents them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCookies {
    /// (name, value) pairs: `CloudFront-Expires` or `CloudFront-Policy`,
    /// `CloudFront-Signature`, `CloudFront-Key-Pair-Id`, and `CloudFront-Hash-Algorithm`
    /// when the hash is not SHA-1.
    pub pairs: Vec<(&'static str, String)>,
}

impl CloudFrontSigner {
    /// A signer for `key_pair_id` (the public key's id in CloudFront).
    pub fn new(key_pair_id: impl Into<String>, key: SigningKey, hash: HashAlgorithm) -> Self {
        Self { key_pair_id: key_pair_id.into(), key, hash }
    }

    /// The key pair id put in URLs and cookies.
    pub fn key_pair_id(&self) -> &str {
        &self.key_pair_id
    }

    /// The hash algorithm signatures use.
    pub fn hash(&self) -> HashAlgorithm {
        self.hash
    }

    /// The key that signs.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs `url` under `policy`: a canned policy (exact URL, expiry only) gives
    /// `Expires=`, anything else `Policy=`. The parameters follow the URL's own query.
    pub fn sign_url(&self, url: &str, policy: &Policy) -> Result<String, SignError> {
        if let Some(name) = query_pairs(url).find(|(n, _)| URL_PARAMS.contains(n)).map(|p| p.0) {
            let name = URL_PARAMS.iter().find(|p| **p == name).copied().unwrap_or("Signature");
            return Err(SignError::AlreadySigned(name));
        }
        if let Some(resource) = &policy.resource {
            if !wildcard_match(resource, url) {
                return Err(SignError::ResourceMismatch {
                    resource: resource.clone(),
                    url: url.into(),
                });
            }
        }
        let mut out = String::with_capacity(url.len() + 420);
        out.push_str(url);
        out.push(if url.contains('?') { '&' } else { '?' });
        // Canned when nothing but the exact URL and an expiry is asked (the URL's own `?`
        // is literal here, not a wildcard).
        let canned = policy.date_greater_than.is_none()
            && policy.ip_address.is_none()
            && policy.resource.as_deref() == Some(url);
        if canned {
            let text = Policy::canned_json(url, policy.date_less_than);
            let signature = self.key.sign(text.as_bytes(), self.hash)?;
            out.push_str(&format!("Expires={}", policy.date_less_than));
            out.push_str(&format!("&Signature={}", cf_base64(&signature)));
        } else {
            let text = policy.custom_json();
            let signature = self.key.sign(text.as_bytes(), self.hash)?;
            out.push_str(&format!("Policy={}", cf_base64(text.as_bytes())));
            out.push_str(&format!("&Signature={}", cf_base64(&signature)));
        }
        out.push_str(&format!("&Key-Pair-Id={}", self.key_pair_id));
        if self.hash != HashAlgorithm::Sha1 {
            out.push_str(&format!("&Hash-Algorithm={}", self.hash.name()));
        }
        Ok(out)
    }

    /// Signs cookies for `policy`. A canned policy gives `CloudFront-Expires` and opens
    /// only its exact URL; use a custom policy with a wildcard Resource for a gallery.
    pub fn sign_cookies(&self, policy: &Policy) -> Result<SignedCookies, SignError> {
        let mut pairs = Vec::with_capacity(4);
        if policy.is_canned() {
            let resource = policy.resource.as_deref().unwrap_or_default();
            let text = Policy::canned_json(resource, policy.date_less_than);
            let signature = self.key.sign(text.as_bytes(), self.hash)?;
            pairs.push(("CloudFront-Expires", policy.date_less_than.to_string()));
            pairs.push(("CloudFront-Signature", cf_base64(&signature)));
        } else {
            let text = policy.custom_json();
            let signature = self.key.sign(text.as_bytes(), self.hash)?;
            pairs.push(("CloudFront-Policy", cf_base64(text.as_bytes())));
            pairs.push(("CloudFront-Signature", cf_base64(&signature)));
        }
        pairs.push(("CloudFront-Key-Pair-Id", self.key_pair_id.clone()));
        if self.hash != HashAlgorithm::Sha1 {
            pairs.push(("CloudFront-Hash-Algorithm", self.hash.name().to_owned()));
        }
        Ok(SignedCookies { pairs })
    }
}

/// Why a request was refused. Each maps to CloudFront's 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Neither the URL nor the cookies carry a signature.
    #[error("no signature in the URL or cookies")]
    MissingSignature,
    /// Signing parameters are incomplete or unreadable.
    #[error("malformed signature parameters: {0}")]
    Malformed(&'static str),
    /// The Key-Pair-Id is not in the trusted key group.
    #[error("the key pair id is not trusted")]
    UnknownKey,
    /// The signature does not verify under the named key.
    #[error("the signature does not match")]
    BadSignature,
    /// The policy's DateLessThan has passed.
    #[error("the signature has expired")]
    Expired,
    /// The policy's DateGreaterThan has not come yet.
    #[error("the signature is not valid yet")]
    NotYetValid,
    /// The client address is outside the policy's IpAddress.
    #[error("the client address is not allowed by the policy")]
    WrongIp,
    /// The policy's Resource does not match the requested URL.
    #[error("the policy does not cover this URL")]
    WrongResource,
}

impl Refusal {
    /// A stable kebab-case code for logs and error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing-signature",
            Self::Malformed(_) => "malformed-signature",
            Self::UnknownKey => "unknown-key-pair",
            Self::BadSignature => "bad-signature",
            Self::Expired => "signature-expired",
            Self::NotYetValid => "signature-not-yet-valid",
            Self::WrongIp => "ip-not-allowed",
            Self::WrongResource => "resource-not-covered",
        }
    }
}

/// A request as CloudFront sees it when checking a signature.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The full URL requested: scheme, host, path and query (signing parameters included,
    /// if any).
    pub url: &'a str,
    /// The request's `Cookie` header, if any.
    pub cookie_header: Option<&'a str>,
    /// The viewer's address.
    pub client_ip: IpAddr,
    /// Seconds since the epoch.
    pub now: u64,
}

/// What a verified signature allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key pair that signed.
    pub key_pair_id: String,
    /// When the signature stops being valid (seconds since the epoch).
    pub expires: u64,
}

/// The public keys of a trusted key group, by key pair id.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: HashMap<String, VerifyingKey>,
}

struct Params<'a> {
    expires: Option<String>,
    policy: Option<String>,
    signature: Option<String>,
    key_pair_id: Option<String>,
    hash: Option<String>,
    /// The URL CloudFront matches and rebuilds canned policies from: the request URL
    /// without the signing parameters.
    resource_url: std::borrow::Cow<'a, str>,
}

impl TrustedKeys {
    /// An empty key group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the key for `key_pair_id`.
    pub fn insert(&mut self, key_pair_id: impl Into<String>, key: VerifyingKey) {
        self.keys.insert(key_pair_id.into(), key);
    }

    /// Checks `request` as a CloudFront behaviour with this trusted key group would:
    /// signed-URL parameters first, else the signed cookies; a canned policy is rebuilt
    /// from the URL, a custom policy's Resource must match it; then time and address.
    pub fn verify(&self, request: &SignedRequest<'_>) -> Result<Verified, Refusal> {
        let params = extract(request)?;
        let key_pair_id = params.key_pair_id.ok_or(Refusal::Malformed("missing Key-Pair-Id"))?;
        let signature_text = params.signature.ok_or(Refusal::Malformed("missing Signature"))?;
        let hash = match params.hash.as_deref() {
            None => HashAlgorithm::Sha1,
            Some(name) => {
                HashAlgorithm::parse(name).ok_or(Refusal::Malformed("unknown Hash-Algorithm"))?
            }
        };
        let key = self.keys.get(&key_pair_id).ok_or(Refusal::UnknownKey)?;
        let signature = cf_base64_decode(&signature_text)
            .ok_or(Refusal::Malformed("Signature is not base64"))?;
        let policy = match (params.expires, params.policy) {
            (Some(expires), None) => {
                let digits = !expires.is_empty() && expires.bytes().all(|b| b.is_ascii_digit());
                let expires: u64 = expires
                    .parse()
                    .ok()
                    .filter(|_| digits)
                    .ok_or(Refusal::Malformed("Expires is not a number"))?;
                let text = Policy::canned_json(&params.resource_url, expires);
                if !key.verify(text.as_bytes(), &signature, hash) {
                    return Err(Refusal::BadSignature);
                }
                Policy::canned(&params.resource_url, expires)
            }
            (None, Some(policy)) => {
                let text =
                    cf_base64_decode(&policy).ok_or(Refusal::Malformed("Policy is not base64"))?;
                if !key.verify(&text, &signature, hash) {
                    return Err(Refusal::BadSignature);
                }
                let policy = Policy::parse_json(&text)
                    .map_err(|_| Refusal::Malformed("unreadable Policy"))?;
                if let Some(resource) = &policy.resource {
                    if !wildcard_match(resource, &params.resource_url) {
                        return Err(Refusal::WrongResource);
                    }
                }
                policy
            }
            (Some(_), Some(_)) => return Err(Refusal::Malformed("both Expires and Policy")),
            (None, None) => return Err(Refusal::Malformed("neither Expires nor Policy")),
        };
        if request.now >= policy.date_less_than {
            return Err(Refusal::Expired);
        }
        if policy.date_greater_than.is_some_and(|start| request.now < start) {
            return Err(Refusal::NotYetValid);
        }
        if policy.ip_address.is_some_and(|net| !net.contains(request.client_ip)) {
            return Err(Refusal::WrongIp);
        }
        Ok(Verified { key_pair_id, expires: policy.date_less_than })
    }
}

fn query_pairs(url: &str) -> impl Iterator<Item = (&str, &str)> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")))
}

fn decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned()
}

fn extract<'a>(request: &SignedRequest<'a>) -> Result<Params<'a>, Refusal> {
    let url = request.url;
    if query_pairs(url).any(|(name, _)| URL_PARAMS.contains(&name)) {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut params = Params {
            expires: None,
            policy: None,
            signature: None,
            key_pair_id: None,
            hash: None,
            resource_url: base.into(),
        };
        let mut kept: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "Expires" => &mut params.expires,
                "Policy" => &mut params.policy,
                "Signature" => &mut params.signature,
                "Key-Pair-Id" => &mut params.key_pair_id,
                "Hash-Algorithm" => &mut params.hash,
                _ => {
                    kept.push(pair);
                    continue;
                }
            };
            if slot.replace(decode(value)).is_some() {
                return Err(Refusal::Malformed("a signing parameter appears twice"));
            }
        }
        if !kept.is_empty() {
            params.resource_url = format!("{base}?{}", kept.join("&")).into();
        }
        return Ok(params);
    }
    let cookies = parse_cookie_header(request.cookie_header.unwrap_or(""));
    let get = |name: &str| cookies.iter().find(|(n, _)| *n == name).map(|(_, v)| decode(v));
    let params = Params {
        expires: get("CloudFront-Expires"),
        policy: get("CloudFront-Policy"),
        signature: get("CloudFront-Signature"),
        key_pair_id: get("CloudFront-Key-Pair-Id"),
        hash: get("CloudFront-Hash-Algorithm"),
        resource_url: url.into(),
    };
    if params.signature.is_none() && params.expires.is_none() && params.policy.is_none() {
        return Err(Refusal::MissingSignature);
    }
    Ok(params)
}

/// Splits a `Cookie` header into (name, value) pairs, in order.
pub fn parse_cookie_header(header: &str) -> Vec<(&str, &str)> {
    header
        .split(';')
        .filter_map(|part| {
            let (name, value) = part.trim().split_once('=')?;
            Some((name.trim(), value.trim().trim_matches('"')))
        })
        .collect()
}
