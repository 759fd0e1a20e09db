//! Resize-on-miss for S3: parse a derivative key (`300x300/photos/cat.jpg`), read the
//! original from S3, resize it in memory, write the derivative back with a create-only
//! conditional PUT, and answer 307 to where it now lives.
//!
//! Layers, from pure to effectful: [`key`] and [`geometry`] (strings and arithmetic),
//! [`pipeline`] (bytes to bytes, no I/O), [`store`] (the S3 boundary, errors normalised
//! once), [`handler`] (HTTP in, HTTP out, never an `Err`). [`config`] is parsed once at
//! start-up. Nothing here depends on the Lambda runtime except the request/response types,
//! so the devserver mounts the same handler in-process.

pub mod config;
pub mod geometry;
pub mod handler;
pub mod key;
pub mod pipeline;
pub mod store;
mod webp_icc;

pub use config::{Config, ConfigError};
pub use handler::{handle, App};
