//! What keys and paths mean at the edge, shared by the resizer, the signer and the
//! devserver so that the three agree by construction:
//!
//! - [`wildcard`]: CloudFront's `*`/`?` matching (path patterns, policy Resources);
//! - [`private`]: which paths need a signature (PRIVATE_PATHS) and the one shape a private
//!   path may have (the CloudFront Function's rules, which a test holds equal to its
//!   JavaScript);
//! - [`routing`]: how a key travels in the S3 website's redirect to the resizer, which keys
//!   each delivery mode carries, and how the resizer reads a key back whichever way S3
//!   wrote it.
//!
//! Pure string handling: no I/O, no clock, no configuration beyond the values passed in.

pub mod private;
pub mod routing;
pub mod wildcard;

pub use private::{check_private_shape, is_size_segment, PrivatePaths, ShapeError};
pub use routing::{encode_key_path, DeliveryMode, KeyDecoding, LocationEncoding};
pub use wildcard::wildcard_match;
