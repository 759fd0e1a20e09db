//! Rust twins of template.yaml's CloudFront Functions, by the logical name of their
//! `AWS::CloudFront::Function` resource. A test runs each function's JavaScript (in Node and
//! in njs, the engine family of CloudFront's runtime) and its twin on the same corpus and
//! fails on any disagreement; the edge refuses to start when a behaviour uses a function
//! that has no twin here.

use std::net::IpAddr;

use keyspace::routing::decode_path;
use keyspace::{check_private_shape, PrivatePaths, ShapeError};

/// What a viewer-request function sees and may change.
#[derive(Debug, Clone)]
pub struct ViewerRequest {
    /// `event.request.uri`: the path as the viewer sent it.
    pub uri: String,
    /// The query parameter names and values, as sent.
    pub querystring: Vec<(String, String)>,
    /// Headers the function adds (lowercase names), on top of the viewer's.
    pub added_headers: Vec<(String, String)>,
    /// `event.viewer.ip`.
    pub viewer_ip: IpAddr,
}

/// A response a function generated instead of letting the request go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionResponse {
    /// `statusCode`.
    pub status: u16,
    /// `headers`, lowercase names.
    pub headers: Vec<(String, String)>,
    /// `body`.
    pub body: String,
}

/// A function's twin: `None` lets the (possibly changed) request go on.
pub type Twin = fn(&mut ViewerRequest) -> Option<FunctionResponse>;

/// The twin of the function named `name`, if the devserver has one.
pub fn twin(name: &str) -> Option<Twin> {
    match name {
        "PathGuardFunction" => Some(path_guard_function),
        "ViewerAddressFunction" => Some(viewer_address_function),
        _ => None,
    }
}

/// The header the viewer-address function writes.
pub const VIEWER_ADDRESS_HEADER: &str = "x-viewer-address";

fn viewer_address_function(req: &mut ViewerRequest) -> Option<FunctionResponse> {
    req.added_headers.retain(|(name, _)| name != VIEWER_ADDRESS_HEADER);
    req.added_headers.push((VIEWER_ADDRESS_HEADER.to_owned(), req.viewer_ip.to_string()));
    None
}

fn path_guard_function(req: &mut ViewerRequest) -> Option<FunctionResponse> {
    let query: Vec<(&str, &str)> =
        req.querystring.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    path_guard(&req.uri, &query).map(|reason| FunctionResponse {
        status: 403,
        headers: vec![
            ("content-type".into(), "text/plain".into()),
            ("cache-control".into(), "no-store".into()),
            ("x-refusal".into(), reason.into()),
        ],
        body: format!("Forbidden: {reason}\n"),
    })
}

/// The path guard's decision for `uri` with these query parameters (names and raw values):
/// `None` lets the request through, `Some(reason)` is the 403's `x-refusal`. The same steps,
/// in the same order, as PathGuardFunction's JavaScript.
pub fn path_guard(uri: &str, query: &[(&str, &str)]) -> Option<&'static str> {
    let raw = uri.strip_prefix('/').unwrap_or(uri);
    // decodeURIComponent: every escape, reserved ones included; a stray `%` or bytes that
    // are not UTF-8 throw.
    let Some(path) = decode_path(raw) else { return Some("malformed-path") };
    let patterns = PrivatePaths::default_patterns();
    let raw_private = patterns.is_private(raw);
    if !raw_private && !patterns.is_private(&path) {
        return None;
    }
    if !raw_private {
        return Some("encoded-private-path");
    }
    let query: Vec<String> = query.iter().map(|(n, v)| format!("{n}={v}")).collect();
    match check_private_shape(&path, Some(&query.join("&"))) {
        Ok(()) => None,
        Err(ShapeError::Query) => Some("private-query"),
        Err(ShapeError::DotSegment) => Some("dot-segment"),
        Err(ShapeError::NestedPrefix) => Some("nested-grant-prefix"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_refuses_each_bad_shape_with_its_reason() {
        let case = |uri: &str, q: &[(&str, &str)]| path_guard(uri, q);
        assert_eq!(case("/photos/a.jpg", &[("x", "/a/")]), None);
        assert_eq!(
            case("/private/galleries/g/a.jpg", &[("Expires", "1"), ("Signature", "a~b")]),
            None
        );
        assert_eq!(case("/resize/300x300/private/galleries/g/a.jpg", &[]), None);
        assert_eq!(case("/private/galleries/g/a.jpg", &[("v", "")]), Some("private-query"));
        assert_eq!(
            case("/private/galleries/g/a.jpg", &[("Hash-Algorithm", "/private/galleries/h/")]),
            Some("private-query")
        );
        assert_eq!(case("/%70rivate/galleries/g/a.jpg", &[]), Some("encoded-private-path"));
        assert_eq!(case("/private%2Fgalleries%2Fg%2Fa.jpg", &[]), Some("encoded-private-path"));
        assert_eq!(case("/private/galleries/a/../b/x.jpg", &[]), Some("dot-segment"));
        assert_eq!(case("/private/galleries/a/%2e%2e/b/x.jpg", &[]), Some("dot-segment"));
        assert_eq!(case("/300x300/private/galleries//x.jpg", &[]), Some("dot-segment"));
        assert_eq!(case("/a/private/galleries/b/x.jpg", &[]), Some("nested-grant-prefix"));
        assert_eq!(case("/private/%zz", &[]), Some("malformed-path"));
    }

    #[test]
    fn the_viewer_address_replaces_any_the_viewer_sent() {
        let mut req = ViewerRequest {
            uri: "/api/sign-url".into(),
            querystring: vec![],
            added_headers: vec![(VIEWER_ADDRESS_HEADER.into(), "1.2.3.4".into())],
            viewer_ip: "203.0.113.9".parse().unwrap(),
        };
        assert_eq!(viewer_address_function(&mut req), None);
        assert_eq!(req.added_headers, vec![(VIEWER_ADDRESS_HEADER.into(), "203.0.113.9".into())]);
    }
}
