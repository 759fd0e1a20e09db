//! Resize-on-miss for S3: parse a derivative key (`300x300/photos/cat.jpg`), read the
//! original from S3, resize it in memory, write the derivative back with a create-only
//! conditional PUT, and answer with it (failover mode) or a 307 to where it now lives
//! (redirect mode).
//!
//! Layers, from pure to effectful: [`key`] and [`geometry`] (strings and arithmetic),
//! [`pipeline`] (bytes to bytes, no I/O), [`store`] (the S3 boundary, errors normalised
//! once), [`derivatives`] (the core: make a derivative once, whoever asks), [`handler`] (the
//! HTTP doors, never an `Err`), [`error`] (every refusal's status and code). [`config`] is parsed once at
//! start-up. Nothing here depends on the Lambda runtime except the request/response types,
//! so the devserver mounts the same handler in-process.

pub mod admission;
pub mod config;
pub mod derivatives;
pub mod error;
pub mod events;
pub mod geometry;
pub mod handler;
pub mod key;
pub mod metrics;
pub mod pipeline;
pub mod store;
mod webp_icc;

pub use config::{Config, ConfigError};
pub use handler::{handle, App};
