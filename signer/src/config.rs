//! The signer's configuration, parsed and validated once at start-up. The parser takes a
//! lookup function, so tests pass a map and never touch the process environment.

use std::time::Duration;

use keyspace::{DeliveryMode, KeyDecoding};

use crate::keys::HashAlgorithm;

/// Default lifetime of a signed URL or cookie set when the caller does not ask (1 hour).
pub const DEFAULT_SIGNED_TTL_SECS: u64 = 3600;
/// Default longest lifetime a caller may ask for (1 day).
pub const DEFAULT_MAX_SIGNED_TTL_SECS: u64 = 86_400;
/// Default lifetime of upload URLs and forms (15 minutes).
pub const DEFAULT_UPLOAD_TTL_SECS: u64 = 900;
/// Default largest upload (50 MB, the resizer's default MAX_SOURCE_BYTES).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 50_000_000;
/// Default multipart part size (8 MiB).
pub const DEFAULT_PART_BYTES: u64 = 8 * 1024 * 1024;
/// S3's smallest part (all but the last).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// Default Cache-Control stored with uploaded originals (a day).
pub const DEFAULT_UPLOAD_CACHE_CONTROL: &str = "max-age=86400";
/// The shortest ORIGIN_VERIFY_SECRET accepted: long enough that guessing is hopeless.
pub const MIN_ORIGIN_SECRET_CHARS: usize = 32;

/// ORIGIN_VERIFY_SECRET: the value CloudFront adds as the `x-origin-verify` origin header.
/// Its `Debug` never prints it, so neither does the configuration's.
#[derive(Clone, PartialEq, Eq)]
pub struct OriginSecret(String);

impl OriginSecret {
    /// The secret's bytes, for the comparison with the request's header.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for OriginSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OriginSecret(<redacted>)")
    }
}

/// Where the CloudFront private key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// CLOUDFRONT_PRIVATE_KEY: the PEM itself (local development, tests).
    Pem(String),
    /// CLOUDFRONT_PRIVATE_KEY_SECRET_ARN: a Secrets Manager secret whose string is the PEM.
    SecretArn(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pem(_) => f.write_str("Pem(<redacted>)"),
            Self::SecretArn(arn) => write!(f, "SecretArn({arn})"),
        }
    }
}

/// Everything the signer reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// CLOUDFRONT_KEY_PAIR_ID: the public key's id in the distribution's key group.
    pub key_pair_id: String,
    /// CLOUDFRONT_PRIVATE_KEY or CLOUDFRONT_PRIVATE_KEY_SECRET_ARN.
    pub key_source: KeySource,
    /// CLOUDFRONT_HASH_ALGORITHM: SHA1 (default) or SHA256.
    pub hash: HashAlgorithm,
    /// SIGNED_URL_TTL: lifetime when the caller does not ask.
    pub default_ttl: Duration,
    /// SIGNED_URL_MAX_TTL: the longest lifetime a caller may ask for.
    pub max_ttl: Duration,
    /// UPLOAD_URL_TTL: lifetime of upload URLs, forms and part URLs.
    pub upload_ttl: Duration,
    /// MAX_UPLOAD_BYTES: the largest original a user may upload.
    pub max_upload_bytes: u64,
    /// MULTIPART_PART_BYTES: the part size for multipart uploads.
    pub part_bytes: u64,
    /// BUCKET.
    pub bucket: String,
    /// PUBLIC_BASE_URL: the CloudFront (or devserver) origin signed URLs point at, no
    /// trailing slash.
    pub public_base_url: String,
    /// COOKIE_DOMAIN: the cookies' Domain attribute, if any.
    pub cookie_domain: Option<String>,
    /// COOKIE_SECURE: whether cookies carry `Secure` (default true).
    pub cookie_secure: bool,
    /// GALLERY_CLAIM: the JWT claim listing the galleries a user may open.
    pub gallery_claim: String,
    /// S3_FORCE_PATH_STYLE: path-style S3 URLs (local S3-compatible servers).
    pub force_path_style: bool,
    /// ORIGIN_VERIFY_SECRET: when set, every request must carry it in `x-origin-verify`
    /// (CloudFront adds it; a request straight to the execute-api URL does not have it).
    pub origin_secret: Option<OriginSecret>,
    /// UPLOAD_CACHE_CONTROL: the Cache-Control every uploaded original is stored with.
    pub upload_cache_control: String,
    /// DELIVERY_MODE: how the distribution reaches the resizer on a miss, which decides the
    /// upload names it can carry.
    pub delivery_mode: DeliveryMode,
    /// REDIRECT_KEY_ENCODING: how the resizer reads a key from the S3 redirect (redirect
    /// mode only).
    pub redirect_key_encoding: KeyDecoding,
}

/// A configuration variable that is missing or invalid. The message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

fn err(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { name, problem: problem.into() }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Parses the configuration from any lookup.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text =
            |name: &'static str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &'static str| text(name).ok_or_else(|| err(name, "must be set"));
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match text(name) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| err(name, format!("{v:?} is not a whole number"))),
            }
        };
        let flag = |name: &'static str, default: bool| -> Result<bool, ConfigError> {
            match text(name).map(|v| v.to_ascii_lowercase()) {
                None => Ok(default),
                Some(v) if v == "true" || v == "1" => Ok(true),
                Some(v) if v == "false" || v == "0" => Ok(false),
                Some(v) => Err(err(name, format!("{v:?} is not true or false"))),
            }
        };

        let key_pair_id = required("CLOUDFRONT_KEY_PAIR_ID")?;
        if !key_pair_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err(
                "CLOUDFRONT_KEY_PAIR_ID",
                "must be letters and digits (a CloudFront public key id)",
            ));
        }
        // The PEM is read raw: trimming is fine, but its line breaks must survive.
        let key_source =
            match (text("CLOUDFRONT_PRIVATE_KEY"), text("CLOUDFRONT_PRIVATE_KEY_SECRET_ARN")) {
                (Some(pem), None) => KeySource::Pem(pem.replace("\\n", "\n")),
                (None, Some(arn)) if arn.starts_with("arn:") => KeySource::SecretArn(arn),
                (None, Some(arn)) => {
                    return Err(err(
                        "CLOUDFRONT_PRIVATE_KEY_SECRET_ARN",
                        format!("{arn:?} is not an ARN"),
                    ))
                }
                (Some(_), Some(_)) => {
                    return Err(err(
                        "CLOUDFRONT_PRIVATE_KEY",
                        "set CLOUDFRONT_PRIVATE_KEY or CLOUDFRONT_PRIVATE_KEY_SECRET_ARN, not both",
                    ))
                }
                (None, None) => {
                    return Err(err(
                        "CLOUDFRONT_PRIVATE_KEY",
                        "set CLOUDFRONT_PRIVATE_KEY (PEM) or CLOUDFRONT_PRIVATE_KEY_SECRET_ARN",
                    ))
                }
            };
        let hash = match text("CLOUDFRONT_HASH_ALGORITHM") {
            None => HashAlgorithm::Sha1,
            Some(v) => HashAlgorithm::parse(&v).ok_or_else(|| {
                err("CLOUDFRONT_HASH_ALGORITHM", format!("{v:?} is not SHA1 or SHA256"))
            })?,
        };
        let default_ttl = number("SIGNED_URL_TTL", DEFAULT_SIGNED_TTL_SECS)?;
        let max_ttl = number("SIGNED_URL_MAX_TTL", DEFAULT_MAX_SIGNED_TTL_SECS)?;
        // CloudFront sets no ceiling; a year keeps every expiry far from overflow.
        if max_ttl > 31_536_000 {
            return Err(err("SIGNED_URL_MAX_TTL", "must be at most 31536000 seconds (a year)"));
        }
        if default_ttl == 0 || default_ttl > max_ttl {
            return Err(err(
                "SIGNED_URL_TTL",
                format!("{default_ttl} must be between 1 and SIGNED_URL_MAX_TTL ({max_ttl})"),
            ));
        }
        let upload_ttl = number("UPLOAD_URL_TTL", DEFAULT_UPLOAD_TTL_SECS)?;
        // SigV4 presigned URLs live at most 7 days.
        if upload_ttl == 0 || upload_ttl > 604_800 {
            return Err(err("UPLOAD_URL_TTL", "must be between 1 and 604800 seconds"));
        }
        let max_upload_bytes = number("MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES)?;
        if max_upload_bytes == 0 || max_upload_bytes > 5 * 1024 * 1024 * 1024 * 1024 {
            return Err(err("MAX_UPLOAD_BYTES", "must be between 1 byte and 5 TiB"));
        }
        let part_bytes = number("MULTIPART_PART_BYTES", DEFAULT_PART_BYTES)?;
        if !(MIN_PART_BYTES..=5 * 1024 * 1024 * 1024).contains(&part_bytes) {
            return Err(err(
                "MULTIPART_PART_BYTES",
                "must be between 5 MiB and 5 GiB (S3's part limits)",
            ));
        }
        let public_base_url = required("PUBLIC_BASE_URL")?.trim_end_matches('/').to_owned();
        if !(public_base_url.starts_with("https://") || public_base_url.starts_with("http://"))
            || public_base_url.chars().any(|c| c.is_whitespace() || !c.is_ascii())
        {
            return Err(err(
                "PUBLIC_BASE_URL",
                format!("{public_base_url:?} is not an http(s) URL"),
            ));
        }
        let cookie_domain = text("COOKIE_DOMAIN");
        if let Some(domain) = &cookie_domain {
            if !domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
                return Err(err("COOKIE_DOMAIN", format!("{domain:?} is not a domain name")));
            }
        }
        let gallery_claim = text("GALLERY_CLAIM").unwrap_or_else(|| "galleries".into());
        let origin_secret = match text("ORIGIN_VERIFY_SECRET") {
            None => None,
            Some(secret) if secret.chars().count() < MIN_ORIGIN_SECRET_CHARS => {
                return Err(err(
                    "ORIGIN_VERIFY_SECRET",
                    format!("must be at least {MIN_ORIGIN_SECRET_CHARS} characters"),
                ))
            }
            // It travels as a header value, so it must be one (and the message must not
            // echo it).
            Some(secret) if !secret.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(err(
                    "ORIGIN_VERIFY_SECRET",
                    "must be printable ASCII without spaces (it is sent as a header value)",
                ))
            }
            Some(secret) => Some(OriginSecret(secret)),
        };
        let upload_cache_control =
            text("UPLOAD_CACHE_CONTROL").unwrap_or_else(|| DEFAULT_UPLOAD_CACHE_CONTROL.to_owned());
        // Signed into a PUT's headers and matched exactly by a POST policy: a header value.
        if !upload_cache_control.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            return Err(err(
                "UPLOAD_CACHE_CONTROL",
                format!("{upload_cache_control:?} is not a header value (printable ASCII)"),
            ));
        }
        let delivery_mode = match text("DELIVERY_MODE") {
            None => DeliveryMode::default(),
            Some(v) => v.parse().map_err(|e: String| err("DELIVERY_MODE", e))?,
        };
        let redirect_key_encoding = match text("REDIRECT_KEY_ENCODING") {
            None => KeyDecoding::default(),
            Some(v) => v.parse().map_err(|e: String| err("REDIRECT_KEY_ENCODING", e))?,
        };
        Ok(Self {
            key_pair_id,
            key_source,
            hash,
            default_ttl: Duration::from_secs(default_ttl),
            max_ttl: Duration::from_secs(max_ttl),
            upload_ttl: Duration::from_secs(upload_ttl),
            max_upload_bytes,
            part_bytes,
            bucket: required("BUCKET")?,
            public_base_url,
            cookie_domain,
            cookie_secure: flag("COOKIE_SECURE", true)?,
            gallery_claim,
            force_path_style: flag("S3_FORCE_PATH_STYLE", false)?,
            origin_secret,
            upload_cache_control,
            delivery_mode,
            redirect_key_encoding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<&str, &str> = HashMap::from([
            ("CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
            (
                "CLOUDFRONT_PRIVATE_KEY",
                "-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----",
            ),
            ("BUCKET", "images"),
            ("PUBLIC_BASE_URL", "https://cdn.example.com/"),
        ]);
        for (k, v) in pairs {
            map.insert(k, v);
        }
        Config::from_lookup(|k| map.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn defaults_apply_and_escaped_newlines_become_real_ones() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.public_base_url, "https://cdn.example.com");
        assert_eq!(c.hash, HashAlgorithm::Sha1);
        assert_eq!(c.upload_ttl, Duration::from_secs(900));
        assert!(c.cookie_secure);
        assert_eq!(c.origin_secret, None);
        assert_eq!(c.upload_cache_control, "max-age=86400");
        assert_eq!(c.delivery_mode, DeliveryMode::Redirect);
        assert_eq!(c.redirect_key_encoding, KeyDecoding::Auto);
        let KeySource::Pem(pem) = c.key_source else { panic!("expected a PEM") };
        assert!(pem.contains("KEY-----\nAAAA\n"));
    }

    #[test]
    fn each_bad_variable_is_named() {
        for (name, value) in [
            ("CLOUDFRONT_KEY_PAIR_ID", "K-1"),
            ("CLOUDFRONT_HASH_ALGORITHM", "MD5"),
            ("SIGNED_URL_TTL", "100000"),
            ("SIGNED_URL_MAX_TTL", "99999999999"),
            ("UPLOAD_URL_TTL", "0"),
            ("MAX_UPLOAD_BYTES", "x"),
            ("MULTIPART_PART_BYTES", "1000"),
            ("PUBLIC_BASE_URL", "cdn.example.com"),
            ("COOKIE_DOMAIN", "a b"),
            ("COOKIE_SECURE", "maybe"),
            ("CLOUDFRONT_PRIVATE_KEY_SECRET_ARN", "arn:aws:secretsmanager:x"),
            ("ORIGIN_VERIFY_SECRET", "0123456789abcdef0123456789abcde"),
            ("ORIGIN_VERIFY_SECRET", "0123456789abcdef 0123456789abcdef"),
            ("UPLOAD_CACHE_CONTROL", "max-age=1\u{7f}"),
            ("DELIVERY_MODE", "Redirect"),
            ("REDIRECT_KEY_ENCODING", "thrice"),
        ] {
            let e = parse(&[(name, value)]).unwrap_err();
            let expected = if name == "CLOUDFRONT_PRIVATE_KEY_SECRET_ARN" {
                "CLOUDFRONT_PRIVATE_KEY"
            } else {
                name
            };
            assert_eq!(e.name, expected, "{name}={value}: {e}");
        }
        assert_eq!(parse(&[("BUCKET", " ")]).unwrap_err().name, "BUCKET");
    }

    #[test]
    fn edge_and_upload_settings_parse() {
        let secret = "0123456789abcdef0123456789abcdef";
        let c = parse(&[
            ("ORIGIN_VERIFY_SECRET", secret),
            ("UPLOAD_CACHE_CONTROL", "private, max-age=600"),
            ("DELIVERY_MODE", "failover"),
            ("REDIRECT_KEY_ENCODING", "twice"),
        ])
        .unwrap();
        assert_eq!(c.origin_secret.as_ref().map(OriginSecret::as_bytes), Some(secret.as_bytes()));
        assert_eq!(c.upload_cache_control, "private, max-age=600");
        assert_eq!(c.delivery_mode, DeliveryMode::Failover);
        assert_eq!(c.redirect_key_encoding, "twice".parse().unwrap());
        // Neither the configuration's Debug nor a refusal shows the secret.
        assert!(!format!("{c:?}").contains(secret));
        let short = "s3cr3t-but-only-31-characters-x";
        let e = parse(&[("ORIGIN_VERIFY_SECRET", short)]).unwrap_err();
        assert!(!e.to_string().contains(short), "{e}");
    }
}
