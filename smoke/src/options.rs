//! What one run checks and against what: the command line, parsed and validated once
//! ([`Cli::into_options`]) into [`Options`], so a bad key file or size stops the run before
//! anything is uploaded.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use keyspace::{DeliveryMode, KeyDecoding};
use signer::cloudfront::CloudFrontSigner;
use signer::keys::{HashAlgorithm, KeyError, SigningKey};

/// The command line of the `smoke` binary.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "smoke",
    about = "Checks a deployed stack (or the devserver) does what the offline tests assume",
    after_help = "Credentials and region for S3 come from the AWS SDK's default chain \
                  (AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_REGION, ...); AWS_ENDPOINT_URL_S3 points \
                  it at another S3-compatible server (path-style addressing then)."
)]
pub struct Cli {
    /// The distribution's URL (stack output SiteUrl), e.g. https://d111111abcdef8.cloudfront.net
    pub site_url: String,
    /// The image bucket (stack output BucketName).
    #[arg(long)]
    pub bucket: String,
    /// The stack's DeliveryMode: redirect or failover.
    #[arg(long, default_value = "redirect")]
    pub mode: DeliveryMode,
    /// The HTTP API's own URL (stack output ApiUrl), to show it refuses requests that did
    /// not come through CloudFront.
    #[arg(long)]
    pub api_url: Option<String>,
    /// The resizer's function URL (stack output ResizerFunctionUrl, failover mode).
    #[arg(long)]
    pub function_url: Option<String>,
    /// A JWT the API's authorizer accepts: enables the signer API checks (without it they
    /// are SKIP). Read from SMOKE_TOKEN when not given, which keeps it out of `ps`.
    #[arg(long, env = "SMOKE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A gallery the token grants, for the IP-bound cookie check (one object is uploaded
    /// into it for the check and deleted after).
    #[arg(long)]
    pub gallery: Option<String>,
    /// The CloudFront public key's id in the distribution's trusted key group.
    #[arg(long, requires = "private_key")]
    pub key_pair_id: Option<String>,
    /// The matching private key (PEM file): signs the cookies of the private-path checks.
    #[arg(long, requires = "key_pair_id")]
    pub private_key: Option<PathBuf>,
    /// Two sizes the resizer may make (the stack's AllowedResolutions): the first for
    /// most checks, the second for requests that must make nothing or that must never have
    /// been made before.
    #[arg(long, default_value = "320x,640x")]
    pub sizes: String,
    /// The stack's RedirectKeyEncoding (auto, once, twice, form, raw): how the resizer reads a
    /// key from S3's redirect, which decides which special-character keys must arrive.
    #[arg(long, default_value = "auto")]
    pub key_encoding: KeyDecoding,
    /// The bucket's region (else the SDK's default chain).
    #[arg(long)]
    pub region: Option<String>,
    /// Leave everything uploaded and made in place.
    #[arg(long)]
    pub keep: bool,
    /// Names this run's objects (default: random).
    #[arg(long)]
    pub run_id: Option<String>,
    /// How long, in seconds, to wait for a replaced original's size to be purged from the
    /// bucket and then served anew by CloudFront (S3's event, the queue, the events
    /// function, then the invalidation, which CloudFront completes in about a minute).
    #[arg(long, default_value_t = 300)]
    pub purge_wait: u64,
}

/// Why the command line cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// A URL that is not `http(s)://host[:port]` (a path would be ambiguous: the checks
    /// append theirs).
    #[error("{name} {value:?}: expected http://HOST[:PORT] or https://HOST[:PORT] with no path")]
    Url {
        /// Which option.
        name: &'static str,
        /// What was given.
        value: String,
    },
    /// `--sizes` is not two different sizes of the key grammar.
    #[error("--sizes {0:?}: expected two different sizes such as 320x,640x (WxH, Wx or xH)")]
    Sizes(String),
    /// The private key file could not be read.
    #[error("--private-key {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The private key file holds no usable key.
    #[error("--private-key {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        source: KeyError,
    },
    /// A gallery id the signer would refuse.
    #[error("--gallery {0:?}: gallery ids are 1-64 of A-Z a-z 0-9 _ -")]
    Gallery(String),
    /// A run id that cannot name a gallery, or whose galleries another run's could
    /// share (`a-other` would name run `a`'s other gallery).
    #[error("--run-id {0:?}: 1-32 of a-z 0-9")]
    RunId(String),
}

/// A derivative size: `{W}x{H}`, `{W}x` or `x{H}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// The width asked for.
    pub width: Option<u32>,
    /// The height asked for.
    pub height: Option<u32>,
}

impl FromStr for Size {
    type Err = ();
    fn from_str(text: &str) -> Result<Self, ()> {
        let (w, h) = text.split_once('x').ok_or(())?;
        let number = |s: &str| -> Result<Option<u32>, ()> {
            if s.is_empty() {
                return Ok(None);
            }
            // The resizer's grammar: plain decimal, no sign, no leading zero.
            if s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            s.parse().map(Some).map_err(|_| ())
        };
        let size = Self { width: number(w)?, height: number(h)? };
        if size.width.is_none() && size.height.is_none() {
            return Err(());
        }
        Ok(size)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(w) = self.width {
            write!(f, "{w}")?;
        }
        f.write_str("x")?;
        if let Some(h) = self.height {
            write!(f, "{h}")?;
        }
        Ok(())
    }
}

impl Size {
    /// The dimensions a derivative of an `original`-sized image must have, as far as the
    /// size fixes them: `Wx` and `xH` never upscale, `WxH` is exact. The other side of a
    /// one-sided size is rounded by the resizer and not checked.
    pub fn expected(self, original: (u32, u32)) -> (Option<u32>, Option<u32>) {
        match (self.width, self.height) {
            (Some(w), Some(h)) => (Some(w), Some(h)),
            (Some(w), None) => (Some(w.min(original.0)), None),
            (None, Some(h)) => (None, Some(h.min(original.1))),
            (None, None) => (None, None),
        }
    }

    /// Whether `got` (width, height) is what this size promises for `original`.
    pub fn fits(self, original: (u32, u32), got: (u32, u32)) -> bool {
        let (w, h) = self.expected(original);
        w.is_none_or(|w| w == got.0) && h.is_none_or(|h| h == got.1)
    }
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Options {
    /// The site, `scheme://host[:port]` without a trailing `/`.
    pub site: String,
    /// The image bucket.
    pub bucket: String,
    /// The stack's delivery mode.
    pub mode: DeliveryMode,
    /// The HTTP API's own URL, without a trailing `/`.
    pub api_url: Option<String>,
    /// The resizer's function URL, without a trailing `/`.
    pub function_url: Option<String>,
    /// A bearer token for the signer API.
    pub token: Option<String>,
    /// A gallery the token grants (the IP-bound cookie check).
    pub gallery: Option<String>,
    /// Signs cookies for the private-path checks.
    pub signer: Option<CloudFrontSigner>,
    /// The size most checks request.
    pub size: Size,
    /// A second size, requested only where nothing may have been made before.
    pub second_size: Size,
    /// How the resizer reads keys from S3's redirect.
    pub key_decoding: KeyDecoding,
    /// Leave the run's objects in place.
    pub keep: bool,
    /// Names this run's objects.
    pub run_id: String,
    /// How long to wait for a purge to be seen ([`Cli::purge_wait`]).
    pub purge_wait: std::time::Duration,
    /// Print each row as it is decided.
    pub echo: bool,
}

impl Options {
    /// Options with no signing key, token or other URLs: what a caller fills in.
    pub fn new(site: &str, bucket: &str, mode: DeliveryMode) -> Result<Self, OptionsError> {
        Ok(Self {
            site: base_url("SITE_URL", site)?,
            bucket: bucket.to_owned(),
            mode,
            api_url: None,
            function_url: None,
            token: None,
            gallery: None,
            signer: None,
            size: Size { width: Some(320), height: None },
            second_size: Size { width: Some(640), height: None },
            key_decoding: KeyDecoding::Auto,
            keep: false,
            run_id: random_run_id(),
            purge_wait: std::time::Duration::from_secs(300),
            echo: true,
        })
    }
}

impl Cli {
    /// Parses `args` (the program's name first) as the binary does, without exiting on an
    /// error: for callers that run the checks in-process.
    pub fn try_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        <Self as clap::Parser>::try_parse_from(args)
    }

    /// Validates the command line and reads the key file.
    pub fn into_options(self) -> Result<Options, OptionsError> {
        let mut options = Options::new(&self.site_url, &self.bucket, self.mode)?;
        options.api_url = self.api_url.map(|u| base_url("--api-url", &u)).transpose()?;
        options.function_url =
            self.function_url.map(|u| base_url("--function-url", &u)).transpose()?;
        options.token = self.token.filter(|t| !t.is_empty());
        if let Some(gallery) = &self.gallery {
            let valid = (1..=64).contains(&gallery.len())
                && gallery.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(OptionsError::Gallery(gallery.clone()));
            }
        }
        options.gallery = self.gallery;
        if let (Some(id), Some(path)) = (self.key_pair_id, self.private_key) {
            let pem = std::fs::read(&path)
                .map_err(|source| OptionsError::KeyFile { path: path.clone(), source })?;
            let key =
                SigningKey::from_pem(&pem).map_err(|source| OptionsError::Key { path, source })?;
            // CloudFront accepts SHA-1 signatures from every trusted key, whatever the
            // stack's CloudFrontHashAlgorithm (that setting is what the signer Lambda uses).
            options.signer = Some(CloudFrontSigner::new(id, key, HashAlgorithm::Sha1));
        }
        let sizes: Vec<&str> = self.sizes.split(',').map(str::trim).collect();
        let [first, second] = sizes.as_slice() else {
            return Err(OptionsError::Sizes(self.sizes.clone()));
        };
        let parse =
            |s: &str| s.parse::<Size>().map_err(|()| OptionsError::Sizes(self.sizes.clone()));
        (options.size, options.second_size) = (parse(first)?, parse(second)?);
        if options.size == options.second_size {
            return Err(OptionsError::Sizes(self.sizes.clone()));
        }
        options.key_decoding = self.key_encoding;
        options.keep = self.keep;
        options.purge_wait = std::time::Duration::from_secs(self.purge_wait);
        if let Some(id) = self.run_id {
            let valid = (1..=32).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !valid {
                return Err(OptionsError::RunId(id));
            }
            options.run_id = id;
        }
        Ok(options)
    }
}

/// `scheme://authority` of `value`, which may end in `/` but have no other path.
fn base_url(name: &'static str, value: &str) -> Result<String, OptionsError> {
    let error = || OptionsError::Url { name, value: value.to_owned() };
    let trimmed = value.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(error)?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(error());
    }
    Ok(trimmed.to_owned())
}

/// Twelve hex digits: unique enough that two runs never share objects.
fn random_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[track_caller]
    fn size(text: &str, expected: Option<(Option<u32>, Option<u32>)>) {
        let got = text.parse::<Size>().ok().map(|s| (s.width, s.height));
        assert_eq!(got, expected, "{text}");
        if let Ok(s) = text.parse::<Size>() {
            assert_eq!(s.to_string(), text);
        }
    }

    #[test]
    fn sizes_follow_the_key_grammar() {
        size("320x", Some((Some(320), None)));
        size("x200", Some((None, Some(200))));
        size("300x300", Some((Some(300), Some(300))));
        size("x", None);
        size("0300x", None);
        size("+3x", None);
        size("300X300", None);
        size("300", None);
    }

    #[test]
    fn expected_dimensions_never_upscale_one_sided_sizes() {
        let original = (800, 600);
        assert!(Size::from_str("320x").unwrap().fits(original, (320, 240)));
        assert!(Size::from_str("4000x").unwrap().fits(original, (800, 600)));
        assert!(Size::from_str("x100").unwrap().fits(original, (133, 100)));
        assert!(Size::from_str("1000x1000").unwrap().fits(original, (1000, 1000)));
        assert!(!Size::from_str("320x").unwrap().fits(original, (321, 240)));
    }

    #[test]
    fn site_urls_take_no_path() {
        assert_eq!(base_url("x", "https://cdn.example.com/").unwrap(), "https://cdn.example.com");
        assert_eq!(base_url("x", "http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert!(base_url("x", "https://cdn.example.com/images").is_err());
        assert!(base_url("x", "cdn.example.com").is_err());
        assert!(base_url("x", "ftp://cdn.example.com").is_err());
    }

    #[test]
    fn the_command_line_is_validated_before_anything_runs() {
        let parse = |args: &[&str]| {
            let mut all = vec!["smoke", "https://cdn.example.com", "--bucket", "b"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all)
                .map_err(|e| e.to_string())?
                .into_options()
                .map_err(|e| e.to_string())
        };
        let options = parse(&["--mode", "failover", "--sizes", "64x,x48"]).unwrap();
        assert_eq!(options.mode, DeliveryMode::Failover);
        assert_eq!(
            (options.size.to_string(), options.second_size.to_string()),
            ("64x".into(), "x48".into())
        );
        assert!(parse(&["--sizes", "64x,64x"]).is_err());
        assert!(parse(&["--sizes", "64x"]).is_err());
        assert!(parse(&["--mode", "edge"]).is_err());
        assert!(parse(&["--key-pair-id", "K1"]).is_err(), "needs --private-key too");
        assert!(parse(&["--gallery", "../x"]).is_err());
        assert!(parse(&["--run-id", "A B"]).is_err());
        assert!(parse(&["--run-id", "a-other"]).is_err());
        assert_eq!(parse(&["--run-id", "r1"]).unwrap().run_id, "r1");
        let missing = parse(&["--key-pair-id", "K1", "--private-key", "/nonexistent.pem"]);
        assert!(missing.unwrap_err().contains("/nonexistent.pem"));
    }
}
