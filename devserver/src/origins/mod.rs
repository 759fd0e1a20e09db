//! What CloudFront's origins are in AWS, each a server of its own on loopback that knows
//! nothing of the edge in front of it:
//!
//! - [`s3_website`]: the bucket's website endpoint (redirect mode), with the bucket policy's
//!   part and website-rules.json's routing rules;
//! - the bucket's REST endpoint is the embedded store itself ([`crate::store`]), which the
//!   edge reaches with origin access control's signature (failover mode);
//! - [`api_gateway`]: the HTTP API with the template's routes and its JWT authorizer;
//! - [`function_url`]: the resizer's function URL with AWS_IAM auth (failover mode);
//! - [`lambda`]: the payload format 2.0 events both fronts hand the functions;
//! - [`oac`]: origin access control's SigV4, signed by the edge and checked by the origins.

pub mod api_gateway;
pub mod function_url;
pub mod lambda;
pub mod oac;
pub mod s3_website;
