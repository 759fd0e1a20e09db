//! CloudFront signed URLs and signed cookies (signing and verifying), S3 presigned uploads
//! and downloads, and the signer Lambda's HTTP handler.
//!
//! The signing modules (`policy`, `keys`, `cloudfront`) are pure: keys, clocks and client
//! addresses are inputs, so tests pin them and compare with independent implementations.
//! They depend on OpenSSL for RSA and ECDSA and on nothing that talks to the network.
//! `presign` talks SigV4 with S3's rules; `handler` is the Lambda's only HTTP surface: it
//! lists every route and hands each to `uploads` or `downloads`, and every refusal is an
//! `error::ApiError`.

pub mod cloudfront;
pub mod config;
mod downloads;
pub mod error;
pub mod handler;
pub mod identity;
pub mod keys;
pub mod policy;
pub mod presign;
mod uploads;
