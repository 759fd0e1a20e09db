//! The post-deploy smoke test: after `sam deploy`, ask the live distribution, bucket and
//! functions what they actually do, for every behaviour the offline tests could only
//! emulate (S3's status for a missing key, how S3 writes a key into its redirect and reads a
//! raw `+`, whether CloudFront caches a redirect, what trusted key groups and the path guard
//! refuse and which answers first, whether the functions' own URLs are locked, whether the
//! signer's role lets uploads through), and print one row per check.
//!
//! It speaks to the site over HTTP/1.1 ([`web`]: plain HTTP for the devserver, HTTPS with
//! rustls for CloudFront) sending every path byte for byte, to the bucket with the AWS SDK
//! ([`bucket`]), and signs CloudFront cookies with the `signer` crate. It depends on no
//! part of the deployment's code beyond the shared key rules (`keyspace`) and the signer
//! library: it checks the deployment, it does not reimplement it.
//!
//! Everything it uploads lives under `smoke/{run}/` and `private/galleries/smoke-{run}/`
//! (`smoke-{run}-other/`), plus one object in the gallery named for the IP check and, with
//! a token, three uploads through the signer under the token's `uploads/{user}/` (their
//! keys recorded as the signer returns them), and is deleted at the end with every
//! derivative made of it, unless `--keep`.

#![forbid(unsafe_code)]

pub mod bucket;
pub mod checks;
pub mod fixture;
pub mod options;
pub mod report;
pub mod web;

pub use checks::run;
pub use options::{Cli, Options, Size};
pub use report::{Outcome, Report, Row};
