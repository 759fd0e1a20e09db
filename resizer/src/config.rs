//! The resizer's configuration, parsed and validated once at start-up.
//!
//! The parser takes a lookup function instead of reading the process environment, so tests
//! pass a map and never call `set_var`.

use keyspace::{DeliveryMode, KeyDecoding, PrivatePaths};

use crate::key::{parse_size, Size, SizeError};
use crate::pipeline::{Format, Limits};

/// Default largest width or height a derivative may ask for.
pub const DEFAULT_MAX_DIMENSION: u32 = 4096;
/// Default largest original, in bytes (50 MB).
pub const DEFAULT_MAX_SOURCE_BYTES: u64 = 50_000_000;
/// Default largest original, in pixels (50 MP).
pub const DEFAULT_MAX_SOURCE_PIXELS: u64 = 50_000_000;
/// Default most frames an animated original may have.
pub const DEFAULT_MAX_SOURCE_FRAMES: u32 = 500;
/// Default most pixels an animated original may have over all its frames (frames x canvas
/// width x height): 100 frames of 1000x1000, or 770 of the benchmark's 480x270.
pub const DEFAULT_MAX_SOURCE_ANIMATION_PIXELS: u64 = 100_000_000;
/// Default bound on one S3 call, retries included (the template gives the function 30 s).
pub const DEFAULT_S3_OPERATION_TIMEOUT_MS: u64 = 10_000;
/// Default Cache-Control stored with every derivative: derivatives never change once
/// written, so browsers and CloudFront may keep them for a year.
pub const DEFAULT_DERIVATIVE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// Default largest derivative answered in the response body in failover mode. A function
/// URL's response is at most 6 MB of JSON, and a binary body travels base64-encoded (4/3 of
/// its size), so about 4.5 MB of image fits with room for the headers.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 4_500_000;
/// Default time a terminal refusal (404 original-not-found, 413, 422) may be cached by
/// browsers and CloudFront, and is remembered by the process.
pub const DEFAULT_ERROR_CACHE_SECONDS: u64 = 60;
/// The longest ERROR_CACHE_SECONDS accepted: a missing original uploaded later must not stay
/// missing for long.
pub const MAX_ERROR_CACHE_SECONDS: u64 = 3600;
/// Default wall-clock budget of one resize (decode, resize, encode), in milliseconds. The
/// slowest legitimate original at the default limits (a 50 MP 16-bit PNG) takes about a
/// tenth of it on one Lambda vCPU (docs/RELIABILITY.md).
pub const DEFAULT_RESIZE_BUDGET_MS: u64 = 10_000;
/// The shortest ORIGIN_VERIFY_SECRET accepted: it is a password CloudFront presents.
pub const MIN_ORIGIN_SECRET_LEN: usize = 32;

/// The sizes a deployment serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedResolutions {
    /// ALLOWED_RESOLUTIONS empty or unset: any size up to MAX_DIMENSION.
    Any,
    /// Only these sizes, compared token for token (`300x300` does not allow `300x`).
    Only(Vec<Size>),
}

impl AllowedResolutions {
    /// Parses the comma-separated list; an empty string means any size.
    pub fn parse(raw: &str, max_dimension: u32) -> Result<Self, SizeError> {
        if raw.trim().is_empty() {
            return Ok(Self::Any);
        }
        raw.split(',')
            .map(|token| parse_size(token.trim(), max_dimension))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::Only)
    }

    /// Whether this size may be produced.
    pub fn allows(&self, size: Size) -> bool {
        match self {
            Self::Any => true,
            Self::Only(sizes) => sizes.contains(&size),
        }
    }
}

/// Everything the resizer reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// BUCKET: where originals are read and derivatives written.
    pub bucket: String,
    /// DELIVERY_MODE: which door the function opens (the S3 website's redirect to
    /// `/resize/{key}`, or CloudFront's origin failover with the viewer's own path).
    pub delivery: DeliveryMode,
    /// REDIRECT_KEY_ENCODING: how the S3 website is assumed to write the key into its
    /// redirect (redirect mode).
    pub key_decoding: KeyDecoding,
    /// PRIVATE_PATHS: the derivative keys that only CloudFront's signed behaviours may ask
    /// for (the same patterns as the distribution's trusted-key-group behaviours).
    pub private_paths: PrivatePaths,
    /// ORIGIN_VERIFY_SECRET: when set, requests must carry it in `x-origin-verify` (CloudFront
    /// adds it as an origin custom header), so the API's own URL cannot go around CloudFront.
    pub origin_secret: Option<String>,
    /// MAX_RESPONSE_BYTES: the largest derivative answered in the body (failover mode); a
    /// larger one is answered with a 307 to the same path, which the bucket then serves.
    pub max_response_bytes: u64,
    /// ALLOWED_RESOLUTIONS.
    pub allowed: AllowedResolutions,
    /// ALLOWED_FORMATS: the formats a key's size segment may name (`640x.avif`); empty or
    /// unset means all five. A key without a format (the original's) is always allowed.
    pub formats: Vec<Format>,
    /// MAX_DIMENSION.
    pub max_dimension: u32,
    /// MAX_SOURCE_BYTES, MAX_SOURCE_PIXELS, MAX_SOURCE_FRAMES, MAX_SOURCE_ANIMATION_PIXELS.
    pub limits: Limits,
    /// DERIVATIVE_CACHE_CONTROL.
    pub derivative_cache_control: String,
    /// S3_FORCE_PATH_STYLE: address the bucket in the path, for S3-compatible servers on
    /// loopback that have no per-bucket host names.
    pub force_path_style: bool,
    /// S3_OPERATION_TIMEOUT_MS: the longest one S3 call may take, retries included, before
    /// the request is answered 504. Keep it below the function's timeout.
    pub s3_operation_timeout: std::time::Duration,
    /// ERROR_CACHE_SECONDS: how long a terminal refusal may be cached and is remembered
    /// (0: never, every request reads and decodes again).
    pub error_cache_seconds: u64,
    /// RESIZE_BUDGET_MS: the longest one resize may take before the request is answered
    /// `503 resize-too-slow`.
    pub resize_budget: std::time::Duration,
    /// MAX_CONCURRENT_RESIZES: how many resizes (read, decode, resize, encode) the process
    /// runs at once; more wait. Default: the number of CPUs. In Lambda one request
    /// runs per instance, so this bounds the devserver and the events function's pregeneration.
    pub max_concurrent_resizes: usize,
}

/// A configuration value that stops start-up. Every variant names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} is required but not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        var: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Parses and validates every variable through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));

        let bucket = required("BUCKET")?;
        let delivery = match get("DELIVERY_MODE") {
            None => DeliveryMode::default(),
            Some(raw) => {
                raw.trim().parse().map_err(|e: String| invalid("DELIVERY_MODE", &raw, &e))?
            }
        };
        let key_decoding = match get("REDIRECT_KEY_ENCODING") {
            None => KeyDecoding::default(),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: String| invalid("REDIRECT_KEY_ENCODING", &raw, &e))?,
        };
        let private_paths = match lookup("PRIVATE_PATHS") {
            None => PrivatePaths::default_patterns(),
            Some(raw) => {
                PrivatePaths::parse(&raw).map_err(|e| invalid("PRIVATE_PATHS", &raw, &e))?
            }
        };
        let origin_secret = get("ORIGIN_VERIFY_SECRET");
        if let Some(secret) = &origin_secret {
            if secret.len() < MIN_ORIGIN_SECRET_LEN || http::HeaderValue::from_str(secret).is_err()
            {
                return Err(invalid(
                    "ORIGIN_VERIFY_SECRET",
                    "(hidden)",
                    &format!("must be at least {MIN_ORIGIN_SECRET_LEN} header-safe characters"),
                ));
            }
        }
        let max_response_bytes =
            number("MAX_RESPONSE_BYTES", get("MAX_RESPONSE_BYTES"), DEFAULT_MAX_RESPONSE_BYTES)?;

        let ImageSettings { max_dimension, allowed, formats, limits } =
            ImageSettings::from_lookup(&lookup)?;
        let derivative_cache_control = get("DERIVATIVE_CACHE_CONTROL")
            .unwrap_or_else(|| DEFAULT_DERIVATIVE_CACHE_CONTROL.to_owned());
        if http::HeaderValue::from_str(&derivative_cache_control).is_err() {
            return Err(invalid(
                "DERIVATIVE_CACHE_CONTROL",
                &derivative_cache_control,
                "not a valid header value",
            ));
        }
        let force_path_style = match get("S3_FORCE_PATH_STYLE").as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(invalid("S3_FORCE_PATH_STYLE", other, "expected true or false"))
            }
        };
        let timeout_ms = number(
            "S3_OPERATION_TIMEOUT_MS",
            get("S3_OPERATION_TIMEOUT_MS"),
            DEFAULT_S3_OPERATION_TIMEOUT_MS,
        )?;
        let error_cache_seconds = match get("ERROR_CACHE_SECONDS") {
            None => DEFAULT_ERROR_CACHE_SECONDS,
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(v) if v <= MAX_ERROR_CACHE_SECONDS => v,
                _ => {
                    return Err(invalid(
                        "ERROR_CACHE_SECONDS",
                        &raw,
                        &format!("expected 0..={MAX_ERROR_CACHE_SECONDS}"),
                    ))
                }
            },
        };
        let budget_ms =
            number("RESIZE_BUDGET_MS", get("RESIZE_BUDGET_MS"), DEFAULT_RESIZE_BUDGET_MS)?;
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let max_concurrent_resizes =
            number("MAX_CONCURRENT_RESIZES", get("MAX_CONCURRENT_RESIZES"), cpus)?;
        Ok(Self {
            s3_operation_timeout: std::time::Duration::from_millis(timeout_ms),
            error_cache_seconds,
            resize_budget: std::time::Duration::from_millis(budget_ms),
            max_concurrent_resizes,
            bucket,
            delivery,
            key_decoding,
            private_paths,
            origin_secret,
            max_response_bytes,
            allowed,
            formats,
            max_dimension,
            limits,
            derivative_cache_control,
            force_path_style,
        })
    }
}

/// The image limits shared by the Lambda and the `resize` CLI: MAX_DIMENSION,
/// ALLOWED_RESOLUTIONS, ALLOWED_FORMATS and the MAX_SOURCE_* limits.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    /// MAX_DIMENSION.
    pub max_dimension: u32,
    /// ALLOWED_RESOLUTIONS.
    pub allowed: AllowedResolutions,
    /// ALLOWED_FORMATS (all when unset).
    pub formats: Vec<Format>,
    /// MAX_SOURCE_BYTES, MAX_SOURCE_PIXELS, MAX_SOURCE_FRAMES, MAX_SOURCE_ANIMATION_PIXELS.
    pub limits: Limits,
}

/// Parses ALLOWED_FORMATS: comma-separated format names as the key grammar spells them
/// (`avif,webp`); empty means all.
pub fn parse_formats(raw: &str) -> Result<Vec<Format>, String> {
    if raw.trim().is_empty() {
        return Ok(Format::ALL.to_vec());
    }
    let mut formats = Vec::new();
    for name in raw.split(',').map(str::trim) {
        let format = Format::from_name(name).ok_or_else(|| {
            format!("{name:?} is not a format (expected avif, webp, jpeg, png or gif)")
        })?;
        if !formats.contains(&format) {
            formats.push(format);
        }
    }
    Ok(formats)
}

impl ImageSettings {
    /// Parses and validates the four variables through `lookup`; unset means the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let max_dimension = number("MAX_DIMENSION", get("MAX_DIMENSION"), DEFAULT_MAX_DIMENSION)?;
        if max_dimension == 0 || max_dimension > 65_535 {
            return Err(invalid("MAX_DIMENSION", &max_dimension.to_string(), "must be 1..=65535"));
        }
        let raw_allowed = get("ALLOWED_RESOLUTIONS").unwrap_or_default();
        let allowed = AllowedResolutions::parse(&raw_allowed, max_dimension)
            .map_err(|e| invalid("ALLOWED_RESOLUTIONS", &raw_allowed, &e.to_string()))?;

        let raw_formats = get("ALLOWED_FORMATS").unwrap_or_default();
        let formats = parse_formats(&raw_formats)
            .map_err(|reason| invalid("ALLOWED_FORMATS", &raw_formats, &reason))?;

        let limits = Limits {
            max_source_bytes: number(
                "MAX_SOURCE_BYTES",
                get("MAX_SOURCE_BYTES"),
                DEFAULT_MAX_SOURCE_BYTES,
            )?,
            max_source_pixels: number(
                "MAX_SOURCE_PIXELS",
                get("MAX_SOURCE_PIXELS"),
                DEFAULT_MAX_SOURCE_PIXELS,
            )?,
            max_source_frames: number(
                "MAX_SOURCE_FRAMES",
                get("MAX_SOURCE_FRAMES"),
                DEFAULT_MAX_SOURCE_FRAMES,
            )?,
            max_animation_pixels: number(
                "MAX_SOURCE_ANIMATION_PIXELS",
                get("MAX_SOURCE_ANIMATION_PIXELS"),
                DEFAULT_MAX_SOURCE_ANIMATION_PIXELS,
            )?,
        };
        Ok(Self { max_dimension, allowed, formats, limits })
    }
}

fn invalid(var: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid { var, value: value.to_owned(), reason: reason.to_owned() }
}

fn number<T: std::str::FromStr + PartialOrd + Default>(
    var: &'static str,
    raw: Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.trim().parse::<T>() {
        Ok(v) if v > T::default() => Ok(v),
        _ => Err(invalid(var, &raw, "expected a positive whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = HashMap::from([("BUCKET".into(), "images".into())]);
        for (k, v) in pairs {
            map.insert((*k).into(), (*v).into());
        }
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[track_caller]
    fn rejects(pairs: &[(&str, &str)], var: &str) {
        let err = parse(pairs).expect_err("should be refused").to_string();
        assert!(err.starts_with(var), "message {err:?} should name {var}");
    }

    #[test]
    fn defaults_apply_when_only_required_values_are_set() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.bucket, "images");
        assert_eq!(c.delivery, DeliveryMode::Redirect);
        assert_eq!(c.key_decoding, KeyDecoding::Auto);
        assert_eq!(c.private_paths, PrivatePaths::default_patterns());
        assert_eq!(c.origin_secret, None);
        assert_eq!(c.max_response_bytes, 4_500_000);
        assert_eq!(c.allowed, AllowedResolutions::Any);
        assert_eq!(c.max_dimension, 4096);
        assert_eq!(c.limits.max_source_bytes, 50_000_000);
        assert_eq!(c.limits.max_source_pixels, 50_000_000);
        assert_eq!(c.derivative_cache_control, "public, max-age=31536000, immutable");
        assert!(!c.force_path_style);
        assert_eq!(c.s3_operation_timeout, std::time::Duration::from_secs(10));
        assert_eq!(c.error_cache_seconds, 60);
        assert_eq!(c.resize_budget, std::time::Duration::from_secs(10));
        assert!(c.max_concurrent_resizes >= 1);
    }

    #[test]
    fn abuse_bounds_are_parsed_and_checked() {
        let c = parse(&[
            ("ERROR_CACHE_SECONDS", "0"),
            ("RESIZE_BUDGET_MS", "2500"),
            ("MAX_CONCURRENT_RESIZES", "3"),
        ])
        .unwrap();
        assert_eq!(c.error_cache_seconds, 0);
        assert_eq!(c.resize_budget, std::time::Duration::from_millis(2500));
        assert_eq!(c.max_concurrent_resizes, 3);
        for (var, bad) in [
            ("ERROR_CACHE_SECONDS", "3601"),
            ("ERROR_CACHE_SECONDS", "-1"),
            ("RESIZE_BUDGET_MS", "0"),
            ("MAX_CONCURRENT_RESIZES", "0"),
            ("MAX_CONCURRENT_RESIZES", "many"),
        ] {
            let err = parse(&[(var, bad)]).unwrap_err();
            assert!(err.to_string().starts_with(var), "{var}={bad}: {err}");
        }
    }

    #[test]
    fn allowed_resolutions_table() {
        let c = parse(&[("ALLOWED_RESOLUTIONS", "300x300, 640x,x200")]).unwrap();
        let allow = |t: &str| c.allowed.allows(parse_size(t, 4096).unwrap());
        assert!(allow("300x300"));
        assert!(allow("640x"));
        assert!(allow("x200"));
        assert!(!allow("300x"));
        assert!(!allow("640x640"));
        assert!(!allow("200x"));
        let any = parse(&[("ALLOWED_RESOLUTIONS", "")]).unwrap();
        assert!(any.allowed.allows(Size::Box { width: 4096, height: 1 }));
    }

    #[test]
    fn malformed_allowed_resolution_names_the_entry() {
        for (raw, entry) in [
            ("300x300,30ox30", "30ox30"),
            ("300x300,", "\"\""),
            ("0x10", "0x10"),
            ("5000x", "5000x"),
            ("300X300", "300X300"),
        ] {
            let err = parse(&[("ALLOWED_RESOLUTIONS", raw)]).unwrap_err().to_string();
            assert!(err.starts_with("ALLOWED_RESOLUTIONS"), "{err}");
            assert!(err.contains(entry), "{err:?} should name {entry}");
        }
    }

    #[test]
    fn missing_or_bad_values_name_the_variable() {
        let none = |_: &str| -> Option<String> { None };
        assert!(Config::from_lookup(none).unwrap_err().to_string().starts_with("BUCKET"));
        rejects(&[("DELIVERY_MODE", "edge")], "DELIVERY_MODE");
        rejects(&[("REDIRECT_KEY_ENCODING", "thrice")], "REDIRECT_KEY_ENCODING");
        rejects(&[("PRIVATE_PATHS", "a b")], "PRIVATE_PATHS");
        rejects(&[("ORIGIN_VERIFY_SECRET", "short")], "ORIGIN_VERIFY_SECRET");
        rejects(&[("MAX_RESPONSE_BYTES", "0")], "MAX_RESPONSE_BYTES");
        rejects(&[("MAX_DIMENSION", "0")], "MAX_DIMENSION");
        rejects(&[("MAX_DIMENSION", "100000")], "MAX_DIMENSION");
        rejects(&[("MAX_DIMENSION", "ten")], "MAX_DIMENSION");
        rejects(&[("MAX_SOURCE_BYTES", "-1")], "MAX_SOURCE_BYTES");
        rejects(&[("MAX_SOURCE_PIXELS", "1.5")], "MAX_SOURCE_PIXELS");
        rejects(&[("DERIVATIVE_CACHE_CONTROL", "a\nb")], "DERIVATIVE_CACHE_CONTROL");
        rejects(&[("S3_FORCE_PATH_STYLE", "yes")], "S3_FORCE_PATH_STYLE");
        rejects(&[("S3_OPERATION_TIMEOUT_MS", "0")], "S3_OPERATION_TIMEOUT_MS");
    }

    #[test]
    fn allowed_resolutions_are_checked_against_max_dimension() {
        assert!(parse(&[("MAX_DIMENSION", "8000"), ("ALLOWED_RESOLUTIONS", "5000x")]).is_ok());
        rejects(
            &[("MAX_DIMENSION", "1000"), ("ALLOWED_RESOLUTIONS", "1001x")],
            "ALLOWED_RESOLUTIONS",
        );
    }

    #[test]
    fn delivery_settings_parse() {
        let c = parse(&[
            ("DELIVERY_MODE", "failover"),
            ("REDIRECT_KEY_ENCODING", "twice"),
            ("PRIVATE_PATHS", "secret/*"),
            ("ORIGIN_VERIFY_SECRET", &"s".repeat(32)),
            ("MAX_RESPONSE_BYTES", "1000"),
        ])
        .unwrap();
        assert_eq!(c.delivery, DeliveryMode::Failover);
        assert_eq!(c.key_decoding, "twice".parse().unwrap());
        assert!(c.private_paths.is_private_key("secret/a.jpg"));
        assert!(!c.private_paths.is_private_key("private/a.jpg"));
        assert_eq!(c.origin_secret.as_deref(), Some("s".repeat(32).as_str()));
        assert_eq!(c.max_response_bytes, 1000);
        // PRIVATE_PATHS set empty means nothing is private.
        let open = parse(&[("PRIVATE_PATHS", "")]).unwrap();
        assert!(!open.private_paths.is_private_key("private/a.jpg"));
    }
}
