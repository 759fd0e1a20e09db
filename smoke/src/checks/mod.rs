//! The checks and the order they run in ([`run`]): upload the run's originals, ask the site
//! for what the deployment should make of them, look in the bucket for what it did, and
//! delete it all again. Each check adds its rows to the report and never stops the run:
//! a failed request is that check's FAIL, not the end of the others.
//!
//! - [`delivery`]: a miss becomes a derivative, the next request is a hit, the status a
//!   missing key gets, a miss (redirect or error) is never cached;
//! - [`keys`]: how S3 writes a key into its redirect, keys with special characters
//!   through the whole chain, and what S3 makes of a raw `+` in a page's URL;
//! - [`private`]: private paths with and without signed cookies, another gallery, dot
//!   segments and encoded spellings, `/resize` on a private key;
//! - [`guard`]: whether the signature check or the path guard answers first, signing
//!   parameters carrying a path, repeated slashes;
//! - [`origins`]: the HTTP API's and the function URL's own addresses refuse requests
//!   that did not come through CloudFront;
//! - [`signer_api`]: an IP-bound cookie from the signer opens from the caller's address;
//! - [`uploads`]: the three kinds of upload through the signer, stored and opened;
//! - [`purge`]: a replaced original's size leaves the bucket and the edge;
//! - [`negotiation`]: a browser that takes AVIF gets AVIF, with `Vary: Accept`.

pub mod delivery;
pub mod guard;
pub mod keys;
pub mod negotiation;
pub mod origins;
pub mod private;
pub mod purge;
pub mod signer_api;
pub mod uploads;

use keyspace::{encode_key_path, DeliveryMode, LocationEncoding};
use signer::cloudfront::SignError;

use crate::bucket::{Bucket, BucketError};
use crate::fixture::{self, PHOTO_SIZE};
use crate::options::{Options, Size};
use crate::report::{Outcome, Report};
use crate::web::{Reply, Web, WebError};

/// The checks' names: the first column of the table.
pub mod names {
    /// Uploading the run's originals (a FAIL here skips every other check).
    pub const SETUP: &str = "originals uploaded";
    /// [`super::delivery::miss`].
    pub const MISS: &str = "a miss becomes a derivative";
    /// [`super::delivery::hit`].
    pub const HIT: &str = "the second request is a hit";
    /// [`super::delivery::missing_key`].
    pub const MISSING_KEY: &str = "the status S3 gives for a missing key";
    /// [`super::keys::encoding`].
    pub const KEY_ENCODING: &str = "how S3 writes a key in its redirect";
    /// [`super::keys::special_characters`].
    pub const SPECIAL_KEYS: &str = "special-character keys through the chain";
    /// [`super::keys::raw_plus`].
    pub const RAW_PLUS: &str = "a raw + in a page's URL";
    /// [`super::delivery::never_cached`].
    pub const NEVER_CACHED: &str = "a redirect is never cached";
    /// [`super::private::unsigned`].
    pub const PRIVATE_UNSIGNED: &str = "private paths 403 unsigned";
    /// [`super::private::signed`].
    pub const PRIVATE_SIGNED: &str = "private paths 200 with cookies";
    /// [`super::private::other_gallery`].
    pub const OTHER_GALLERY: &str = "another gallery 403 with the cookies";
    /// [`super::private::spellings`].
    pub const SPELLINGS: &str = "dot-segment and encoded spellings 403";
    /// [`super::private::resize_private`].
    pub const RESIZE_PRIVATE: &str = "/resize on a private key refused";
    /// [`super::guard::check_order`].
    pub const CHECK_ORDER: &str = "signature check or path guard first";
    /// [`super::guard::query_path`].
    pub const QUERY_PATH: &str = "a signing parameter cannot carry a path";
    /// [`super::guard::repeated_slashes`].
    pub const SLASHES: &str = "repeated slashes";
    /// [`super::origins::execute_api_resize`].
    pub const API_RESIZE: &str = "the execute-api URL not usable: /resize";
    /// [`super::origins::execute_api_signer`].
    pub const API_SIGNER: &str = "the execute-api URL not usable: /api";
    /// [`super::origins::function_url`].
    pub const FUNCTION_URL: &str = "the function URL not usable";
    /// [`super::signer_api::ip_bound_cookie`].
    pub const IP_BOUND: &str = "an IP-bound cookie accepted from the caller's address";
    /// [`super::uploads::through_signer`].
    pub const UPLOADS: &str = "uploads through the signer";
    /// [`super::purge::replaced_original`].
    pub const PURGE: &str = "a replaced original's size purged and served anew";
    /// [`super::negotiation::avif_for_an_avif_browser`].
    pub const NEGOTIATION: &str = "an AVIF browser gets AVIF with Vary: Accept";
    /// Deleting what the run uploaded and made.
    pub const CLEANUP: &str = "cleanup";
}

/// Why a check could not finish.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A request got no answer.
    #[error(transparent)]
    Web(#[from] WebError),
    /// An S3 call failed.
    #[error(transparent)]
    Bucket(#[from] BucketError),
    /// The cookies could not be signed.
    #[error("signing cookies: {0}")]
    Sign(#[from] SignError),
    /// A test image could not be made.
    #[error("making a test image: {0}")]
    Fixture(String),
}

/// A check's conclusion, or why it could not reach one (a FAIL).
pub type Verdict = Result<(Outcome, String), CheckError>;

/// What a check saw and what it found wrong; PASS when nothing was wrong.
#[derive(Debug, Default)]
pub struct Findings {
    seen: Vec<String>,
    problems: Vec<String>,
}

impl Findings {
    /// Records an observation.
    pub fn saw(&mut self, text: impl Into<String>) {
        self.seen.push(text.into());
    }

    /// Records `problem` unless `ok`.
    pub fn expect(&mut self, ok: bool, problem: impl Into<String>) {
        if !ok {
            self.problems.push(problem.into());
        }
    }

    /// PASS with what was seen, or FAIL with what was wrong, then what was seen.
    pub fn verdict(self) -> (Outcome, String) {
        let seen = self.seen.join("; ");
        if self.problems.is_empty() {
            (Outcome::Pass, seen)
        } else if seen.is_empty() {
            (Outcome::Fail, self.problems.join("; "))
        } else {
            (Outcome::Fail, format!("{} [seen: {seen}]", self.problems.join("; ")))
        }
    }
}

/// One run: its options, clients, names and what earlier checks learnt.
pub struct Smoke<'a> {
    /// The options.
    pub options: &'a Options,
    /// The site's client.
    pub web: Web,
    /// The bucket.
    pub bucket: Bucket,
    /// The rows so far.
    pub report: Report,
    /// The original uploaded under every name.
    pub photo: Vec<u8>,
    /// How S3 writes a key into its redirect, once [`keys::encoding`] has seen it.
    pub encoding: Option<LocationEncoding>,
    /// Cookies opening the run's gallery, once [`private::signed`] has signed them.
    pub cookie: Option<String>,
    /// The keys of the uploads through the signer (under `uploads/{user}/`), for the
    /// cleanup.
    pub uploads: Vec<String>,
}

impl Smoke<'_> {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.options.run_id
    }

    /// `smoke/{run}/{name}`: the run's public originals.
    pub fn public_key(&self, name: &str) -> String {
        format!("smoke/{}/{name}", self.run_id())
    }

    /// The gallery the run signs cookies for.
    pub fn gallery(&self) -> String {
        format!("smoke-{}", self.run_id())
    }

    /// A gallery the cookies must not open.
    pub fn other_gallery(&self) -> String {
        format!("smoke-{}-other", self.run_id())
    }

    /// `private/galleries/{gallery}/photo.jpg`.
    pub fn private_key(&self, gallery: &str) -> String {
        format!("private/galleries/{gallery}/photo.jpg")
    }

    /// The object in `--gallery` the IP check reads.
    pub fn ip_check_key(&self, gallery: &str) -> String {
        format!("private/galleries/{gallery}/smoke-{}.jpg", self.run_id())
    }

    /// The site's URL for a path written as it must be sent.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.options.site)
    }

    /// The statuses a viewer sees for a miss that succeeds.
    pub fn miss_statuses(&self) -> Vec<u16> {
        match self.options.mode {
            DeliveryMode::Redirect => vec![307, 307, 200],
            DeliveryMode::Failover => vec![200],
        }
    }

    /// Adds a check's row: its verdict, or a FAIL naming what broke.
    pub fn record(&mut self, name: &'static str, verdict: Verdict) {
        match verdict {
            Ok((outcome, seen)) => self.report.push(name, outcome, seen),
            Err(e) => self.report.push(name, Outcome::Fail, e.to_string()),
        }
    }

    /// Every prefix under which the run uploads or may have made something.
    fn prefixes(&self) -> Vec<String> {
        let mut originals = vec![
            format!("smoke/{}/", self.run_id()),
            format!("private/galleries/{}/", self.gallery()),
            format!("private/galleries/{}/", self.other_gallery()),
        ];
        if let Some(gallery) = &self.options.gallery {
            originals.push(self.ip_check_key(gallery));
        }
        originals.extend(self.uploads.iter().cloned());
        let mut all = originals.clone();
        for size in [self.options.size, self.options.second_size] {
            all.extend(originals.iter().map(|p| format!("{size}/{p}")));
            // What the edge's negotiation makes of the same paths.
            for format in ["avif", "webp"] {
                all.extend(originals.iter().map(|p| format!("{size}.{format}/{p}")));
            }
        }
        all
    }
}

/// `/` + the key percent-encoded as a page writes it in a URL.
pub fn path(key: &str) -> String {
    format!("/{}", encode_key_path(key))
}

/// `{size}/{key}`.
pub fn derivative(size: Size, key: &str) -> String {
    format!("{size}/{key}")
}

/// Checks that `reply` is the JPEG derivative `size` of the run's photo.
pub fn check_image(findings: &mut Findings, reply: &Reply, size: Option<Size>) {
    let content_type = reply.header("content-type").unwrap_or_else(|| "no Content-Type".into());
    match fixture::inspect(&reply.body) {
        Some((format, w, h)) => {
            findings.saw(format!("{content_type} {w}x{h}"));
            findings.expect(
                format == image::ImageFormat::Jpeg && content_type == "image/jpeg",
                format!("a JPEG served as image/jpeg, got {format:?} as {content_type}"),
            );
            let fits = size.map_or((w, h) == PHOTO_SIZE, |s| s.fits(PHOTO_SIZE, (w, h)));
            let wanted = size.map_or("the original".to_owned(), |s| format!("size {s}"));
            findings
                .expect(fits, format!("{wanted} of a {}x{} original", PHOTO_SIZE.0, PHOTO_SIZE.1));
        }
        None => {
            findings.saw(format!("{content_type}, {} bytes", reply.body.len()));
            findings.expect(false, "an image");
        }
    }
}

/// Checks a chain is a successful miss ending in the derivative `size`, stored as `key`;
/// `label` introduces what was seen.
pub async fn check_made(
    smoke: &Smoke<'_>,
    findings: &mut Findings,
    label: &str,
    chain: &crate::web::Chain,
    size: Size,
    key: &str,
) -> Result<(), CheckError> {
    findings.saw(format!("{label}{}", chain.describe()));
    let expected = smoke.miss_statuses();
    findings.expect(
        chain.statuses() == expected,
        format!(
            "expected {} (got {})",
            expected.iter().map(u16::to_string).collect::<Vec<_>>().join(" -> "),
            chain.last().summary()
        ),
    );
    if chain.last().status == 200 {
        check_image(findings, chain.last(), Some(size));
    }
    let stored = smoke.bucket.exists(key).await?;
    findings.saw(if stored { format!("stored as {key}") } else { format!("{key} not stored") });
    findings.expect(stored, format!("{key} in the bucket"));
    Ok(())
}

/// Runs every check against the deployment `options` describe, reaching the bucket with
/// `s3`; deletes what it uploaded unless `options.keep`. Never fails: every problem is a
/// row.
pub async fn run(options: &Options, s3: aws_sdk_s3::Client) -> Report {
    let mut report = Report::new(options.echo);
    let web = match Web::new() {
        Ok(web) => web,
        Err(e) => {
            report.push(names::SETUP, Outcome::Fail, e.to_string());
            return report;
        }
    };
    let photo = match fixture::photo() {
        Ok(photo) => photo,
        Err(e) => {
            report.push(names::SETUP, Outcome::Fail, format!("making the test photo: {e}"));
            return report;
        }
    };
    let mut smoke = Smoke {
        options,
        web,
        bucket: crate::bucket::Bucket::new(s3, options.bucket.clone()),
        report,
        photo,
        encoding: None,
        cookie: None,
        uploads: Vec::new(),
    };
    let verdict = setup(&smoke).await;
    let ready = verdict.is_ok();
    smoke.record(names::SETUP, verdict);
    if ready {
        delivery::miss(&mut smoke).await;
        delivery::hit(&mut smoke).await;
        delivery::missing_key(&mut smoke).await;
        keys::encoding(&mut smoke).await;
        keys::special_characters(&mut smoke).await;
        keys::raw_plus(&mut smoke).await;
        delivery::never_cached(&mut smoke).await;
        private::unsigned(&mut smoke).await;
        private::signed(&mut smoke).await;
        private::other_gallery(&mut smoke).await;
        private::spellings(&mut smoke).await;
        private::resize_private(&mut smoke).await;
        guard::check_order(&mut smoke).await;
        guard::query_path(&mut smoke).await;
        guard::repeated_slashes(&mut smoke).await;
        origins::execute_api_resize(&mut smoke).await;
        origins::execute_api_signer(&mut smoke).await;
        origins::function_url(&mut smoke).await;
        signer_api::ip_bound_cookie(&mut smoke).await;
        uploads::through_signer(&mut smoke).await;
        purge::replaced_original(&mut smoke).await;
        negotiation::avif_for_an_avif_browser(&mut smoke).await;
    }
    cleanup(&mut smoke).await;
    smoke.report
}

/// Uploads the run's originals.
async fn setup(smoke: &Smoke<'_>) -> Verdict {
    let mut keys = vec![
        smoke.public_key("photo.jpg"),
        smoke.public_key("direct.jpg"),
        smoke.public_key(keys::PLUS_NAME),
        smoke.private_key(&smoke.gallery()),
        smoke.private_key(&smoke.other_gallery()),
    ];
    keys.extend(keys::NAMES.iter().map(|name| smoke.public_key(&format!("chars/{name}"))));
    if let (Some(gallery), Some(_)) = (&smoke.options.gallery, &smoke.options.token) {
        keys.push(smoke.ip_check_key(gallery));
    }
    for key in &keys {
        smoke.bucket.put(key, smoke.photo.clone(), "image/jpeg").await?;
    }
    Ok((
        Outcome::Info,
        format!(
            "run {}: {} originals ({}x{} JPEG) under smoke/{}/ and private/galleries/{}[-other]/",
            smoke.run_id(),
            keys.len(),
            PHOTO_SIZE.0,
            PHOTO_SIZE.1,
            smoke.run_id(),
            smoke.gallery()
        ),
    ))
}

/// Deletes everything under the run's prefixes, originals and derivatives.
async fn cleanup(smoke: &mut Smoke<'_>) {
    let prefixes = smoke.prefixes();
    if smoke.options.keep {
        let seen = format!("--keep: left everything under {}", prefixes.join(", "));
        smoke.report.push(names::CLEANUP, Outcome::Info, seen);
        return;
    }
    let verdict = match smoke.bucket.delete_under(&prefixes).await {
        Ok(n) => Ok((Outcome::Info, format!("deleted {n} objects (originals and derivatives)"))),
        Err(e) => Err(e.into()),
    };
    smoke.record(names::CLEANUP, verdict);
}
