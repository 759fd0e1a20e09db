//! Development-only sign-in: the devserver issues HS256 JWTs and checks them the way API
//! Gateway's JWT authorizer does (signature, issuer, audience, expiry), then hands the
//! signer the claims flattened as API Gateway flattens them (`[a b]` for arrays).
//!
//! Never deploy this: in AWS the identity provider (Cognito or any OIDC issuer) signs the
//! tokens and API Gateway validates them.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use serde_json::{json, Value};

/// The issuer and audience of development tokens.
pub const ISSUER: &str = "devserver";
/// Lifetime of a development token (1 hour).
pub const TOKEN_TTL_SECS: u64 = 3600;

/// Issues and checks development tokens with a per-process secret.
pub struct DevAuth {
    secret: Vec<u8>,
}

/// Why a token was refused (API Gateway answers 401 for all of them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url JSON parts.
    #[error("malformed token")]
    Malformed,
    /// Wrong signature or algorithm.
    #[error("bad token signature")]
    BadSignature,
    /// Wrong issuer or audience.
    #[error("token not issued for this API")]
    WrongIssuer,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl DevAuth {
    /// A new random secret.
    pub fn new() -> Self {
        let mut secret = vec![0u8; 32];
        openssl::rand::rand_bytes(&mut secret).expect("OpenSSL random bytes");
        Self { secret }
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let key = PKey::hmac(&self.secret).expect("HMAC key");
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &key).expect("HMAC");
        signer.sign_oneshot_to_vec(data).expect("HMAC-SHA256")
    }

    /// A token for `user` granting `galleries`, valid for [`TOKEN_TTL_SECS`].
    pub fn issue(&self, user: &str, galleries: &[String]) -> (String, Value) {
        let iat = now();
        let claims = json!({
            "iss": ISSUER,
            "aud": ISSUER,
            "sub": user,
            "galleries": galleries,
            "iat": iat,
            "exp": iat + TOKEN_TTL_SECS,
        });
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.mac(signing_input.as_bytes()));
        (format!("{signing_input}.{signature}"), claims)
    }

    /// Validates `token` and returns its claims flattened as API Gateway puts them in
    /// `requestContext.authorizer.jwt.claims`.
    pub fn verify(&self, token: &str) -> Result<HashMap<String, String>, TokenError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed);
        let header: Value =
            serde_json::from_slice(&decode(header_b64)?).map_err(|_| TokenError::Malformed)?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(TokenError::BadSignature);
        }
        let expected = self.mac(format!("{header_b64}.{payload}").as_bytes());
        let given = decode(signature)?;
        // Constant-time comparison; memcmp::eq needs equal lengths.
        if given.len() != expected.len() || !openssl::memcmp::eq(&expected, &given) {
            return Err(TokenError::BadSignature);
        }
        let claims: Value =
            serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Malformed)?;
        let Value::Object(claims) = claims else { return Err(TokenError::Malformed) };
        if claims.get("iss").and_then(Value::as_str) != Some(ISSUER)
            || claims.get("aud").and_then(Value::as_str) != Some(ISSUER)
        {
            return Err(TokenError::WrongIssuer);
        }
        if claims.get("exp").and_then(Value::as_u64).is_none_or(|exp| now() >= exp) {
            return Err(TokenError::Expired);
        }
        Ok(claims.into_iter().map(|(k, v)| (k, flatten(&v))).collect())
    }
}

impl Default for DevAuth {
    fn default() -> Self {
        Self::new()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_flatten_like_api_gateway() {
        let auth = DevAuth::new();
        let (token, _) = auth.issue("alice", &["g1".into(), "g2".into()]);
        let claims = auth.verify(&token).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["galleries"], "[g1 g2]");
        assert!(claims["exp"].parse::<u64>().is_ok());
    }

    #[test]
    fn forged_or_foreign_tokens_are_refused() {
        let auth = DevAuth::new();
        let (token, _) = auth.issue("alice", &[]);
        let other = DevAuth::new();
        assert_eq!(other.verify(&token), Err(TokenError::BadSignature));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(r#"{"iss":"devserver","aud":"devserver","sub":"bob","exp":99999999999}"#);
        parts[1] = &forged;
        assert_eq!(auth.verify(&parts.join(".")), Err(TokenError::BadSignature));
        assert_eq!(auth.verify("a.b"), Err(TokenError::Malformed));
        let none_alg = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), forged);
        assert_eq!(auth.verify(&none_alg), Err(TokenError::BadSignature));
    }
}
