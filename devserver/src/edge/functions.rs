//! Rust twins of template.yaml's CloudFront Functions, by the logical name of their
//! `AWS::CloudFront::Function` resource. A test runs each function's JavaScript (in Node and
//! in njs, the engine family of CloudFront's runtime) and its twin on the same corpus and
//! fails on any disagreement; the edge refuses to start when a behaviour uses a function
//! that has no twin here. A function whose code the template writes with parameters
//! (`Fn::Sub`) gets their values, as its twin's settings.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use keyspace::private::SIGNING_PARAMS;
use keyspace::routing::decode_path;
use keyspace::{check_private_shape, PrivatePaths, ShapeError};

/// What a viewer-request function sees and may change.
#[derive(Debug, Clone)]
pub struct ViewerRequest {
    /// `event.request.uri`: the path as the viewer sent it.
    pub uri: String,
    /// The query parameter names and values, as sent.
    pub querystring: Vec<(String, String)>,
    /// The viewer's headers (lowercase names), in the order sent.
    pub headers: Vec<(String, String)>,
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

/// The template parameters a function's code was written with (`Fn::Sub`), by name.
pub type Parameters = HashMap<String, String>;

/// A function's twin: `None` lets the (possibly changed) request go on.
pub type Twin = fn(&mut ViewerRequest, &Parameters) -> Option<FunctionResponse>;

/// The twin of the function named `name`, if the devserver has one.
pub fn twin(name: &str) -> Option<Twin> {
    match name {
        "PathGuardFunction" => Some(path_guard_function),
        "ViewerAddressFunction" => Some(viewer_address_function),
        _ => None,
    }
}

/// Whether the twin of `name` can follow a function written with `parameters`: each
/// setting it reads is there and is a value it knows.
pub fn check_parameters(name: &str, parameters: &Parameters) -> Result<(), String> {
    match name {
        "PathGuardFunction" => Negotiation::from_parameters(parameters).map(|_| ()),
        _ => Ok(()),
    }
}

/// The template parameter that switches format negotiation (PathGuardFunction's code).
pub const NEGOTIATION_PARAMETER: &str = "FormatNegotiation";

/// Which formats the edge negotiates for a sized path without a format: the template's
/// `FormatNegotiation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Negotiation {
    /// AVIF for viewers that take it, else WebP for those that take that (the default).
    #[default]
    AvifWebp,
    /// WebP for viewers that take AVIF or WebP.
    Webp,
    /// No rewrite: every viewer gets the path it asked for.
    Off,
}

impl Negotiation {
    /// Every value, as the template's AllowedValues lists them.
    pub const ALL: [Negotiation; 3] = [Negotiation::AvifWebp, Negotiation::Webp, Negotiation::Off];

    /// The setting a function was written with.
    pub fn from_parameters(parameters: &Parameters) -> Result<Self, String> {
        let value = parameters
            .get(NEGOTIATION_PARAMETER)
            .ok_or_else(|| format!("the code does not take {NEGOTIATION_PARAMETER}"))?;
        value.parse()
    }
}

impl FromStr for Negotiation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "avif-webp" => Ok(Self::AvifWebp),
            "webp" => Ok(Self::Webp),
            "off" => Ok(Self::Off),
            other => Err(format!("{other:?} is not avif-webp, webp or off")),
        }
    }
}

impl fmt::Display for Negotiation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AvifWebp => "avif-webp",
            Self::Webp => "webp",
            Self::Off => "off",
        })
    }
}

/// What a viewer's `Accept` says it decodes, of the formats the edge negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptClass {
    /// `image/avif` with a weight above 0 (WebP or not).
    Avif,
    /// `image/webp` with a weight above 0, and no AVIF.
    Webp,
    /// Neither named (wildcards promise neither), or both refused.
    Neither,
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// A `q` value: `Some(true)` above 0, `Some(false)` 0, `None` malformed (RFC 9110's qvalue:
/// `0` or `1` with at most three decimals, `1`'s all zeros).
fn weight(q: &str) -> Option<bool> {
    let (int, frac) = match q.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (q, None),
    };
    let frac = frac.unwrap_or("");
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match int {
        "0" if frac.bytes().all(|b| b == b'0') => Some(false),
        "0" => Some(true),
        "1" if frac.bytes().all(|b| b == b'0') => Some(true),
        _ => None,
    }
}

/// The class of an `Accept` header, as PathGuardFunction's `acceptClass` reads it: a media
/// range counts when it names the type itself with a weight above 0 (none is 1); a weight
/// of 0 for the type anywhere refuses it; a malformed weight voids its range.
pub fn accept_class(accept: &str) -> AcceptClass {
    // 0: not seen, 1: accepted, -1: refused.
    let (mut avif, mut webp) = (0i8, 0i8);
    for range in accept.split(',') {
        let mut params = range.split(';');
        let media = trim_ows(params.next().unwrap_or("")).to_lowercase();
        let seen = match media.as_str() {
            "image/avif" => &mut avif,
            "image/webp" => &mut webp,
            _ => continue,
        };
        let mut accepted = Some(true);
        for param in params {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if trim_ows(name).to_lowercase() == "q" {
                accepted = weight(trim_ows(value));
                break;
            }
        }
        match accepted {
            Some(false) => *seen = -1,
            Some(true) if *seen == 0 => *seen = 1,
            _ => {}
        }
    }
    if avif > 0 {
        AcceptClass::Avif
    } else if webp > 0 {
        AcceptClass::Webp
    } else {
        AcceptClass::Neither
    }
}

/// The widest (or tallest) size the edge negotiates into AVIF: one-threaded AVIF encoding
/// grows with the pixels (4.1 s at 2048x1152, docs/BENCHMARKS.md), and a 4096 px one would
/// run past the resizer's RESIZE_BUDGET_MS. Larger sizes get WebP; `.avif` asked by name
/// is still made.
pub const AVIF_MAX_SIDE: u64 = 1024;

/// The format an un-suffixed size of an original with extension `ext` (lowercase) becomes
/// for a viewer of `class`, or `None`. JPEG and PNG become AVIF or WebP (both keep alpha);
/// GIF and WebP may be animated and the AVIF encoder writes stills, so they become WebP
/// for either class; any other extension is left alone. A size (`size`, canonical, no
/// format) with a side over [`AVIF_MAX_SIDE`] gets WebP rather than AVIF.
pub fn negotiated_format(
    ext: &str,
    class: AcceptClass,
    negotiation: Negotiation,
    size: &str,
) -> Option<&'static str> {
    if negotiation == Negotiation::Off || class == AcceptClass::Neither {
        return None;
    }
    // Digits only (canonical): a number too long for u64 is over the bound.
    let small =
        size.split('x').all(|n| n.is_empty() || n.parse::<u64>().is_ok_and(|n| n <= AVIF_MAX_SIDE));
    match ext {
        "jpg" | "jpeg" | "png"
            if class == AcceptClass::Avif && negotiation == Negotiation::AvifWebp && small =>
        {
            Some("avif")
        }
        "jpg" | "jpeg" | "png" | "gif" | "webp" => Some("webp"),
        _ => None,
    }
}

/// A canonical size segment without a format (`300x300`, `640x`, `x480`; no leading zero).
fn is_plain_size(s: &str) -> bool {
    let canonical = |n: &str| n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0');
    match s.split_once('x') {
        Some((w, h)) => (!w.is_empty() || !h.is_empty()) && canonical(w) && canonical(h),
        None => false,
    }
}

/// The path negotiation gives `uri` (the request's raw path), or `None` to leave it: the
/// same steps as PathGuardFunction's `negotiate`. Only `/{size}/{key}` with a canonical
/// size and no format is rewritten, to `/{size}.{format}/{key}`: never an explicit format
/// (so the rewrite is idempotent), `/resize/...` or an original; nor a signed URL
/// (CloudFront may check it against either URI, which AWS does not document, and a canned
/// policy names the exact one).
pub fn negotiate(
    uri: &str,
    query: &[(&str, &str)],
    accept: Option<&str>,
    negotiation: Negotiation,
) -> Option<String> {
    let slash = uri.get(1..)?.find('/')? + 1;
    let size = uri.get(1..slash)?;
    if !is_plain_size(size) {
        return None;
    }
    if query.iter().any(|(name, _)| SIGNING_PARAMS.contains(name)) {
        return None;
    }
    let name = &uri[uri.rfind('/')? + 1..];
    let ext = name.rsplit_once('.')?.1.to_lowercase();
    let format = negotiated_format(&ext, accept_class(accept?), negotiation, size)?;
    Some(format!("/{size}.{format}{}", &uri[slash..]))
}

/// The header the viewer-address function writes.
pub const VIEWER_ADDRESS_HEADER: &str = "x-viewer-address";

fn viewer_address_function(req: &mut ViewerRequest, _: &Parameters) -> Option<FunctionResponse> {
    req.added_headers.retain(|(name, _)| name != VIEWER_ADDRESS_HEADER);
    req.added_headers.push((VIEWER_ADDRESS_HEADER.to_owned(), req.viewer_ip.to_string()));
    None
}

fn path_guard_function(
    req: &mut ViewerRequest,
    parameters: &Parameters,
) -> Option<FunctionResponse> {
    let query: Vec<(&str, &str)> =
        req.querystring.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let Some(reason) = path_guard(&req.uri, &query) else {
        // A header sent more than once reaches the function as its values in order, which
        // the code joins as one list.
        let accept: Vec<&str> =
            req.headers.iter().filter(|(n, _)| n == "accept").map(|(_, v)| v.as_str()).collect();
        let accept = (!accept.is_empty()).then(|| accept.join(","));
        let negotiation = Negotiation::from_parameters(parameters).unwrap_or(Negotiation::Off);
        if let Some(uri) = negotiate(&req.uri, &query, accept.as_deref(), negotiation) {
            req.uri = uri;
        }
        return None;
    };
    Some(FunctionResponse {
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
        // A size that names its format is still a size, not the start of the key.
        assert_eq!(case("/300x300.avif/private/galleries/g/a.jpg", &[]), None);
        assert_eq!(case("/resize/640x.webp/uploads/u/a.png", &[]), None);
    }

    const CHROME: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    const SAFARI_16: &str = "image/webp,image/avif,image/jxl,image/heic,image/x-adobe-dng,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";
    const SAFARI_OLD: &str = "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";

    #[track_caller]
    fn class(accept: &str, expected: AcceptClass) {
        assert_eq!(accept_class(accept), expected, "{accept:?}");
    }

    #[test]
    fn accept_is_read_as_a_list_of_media_ranges() {
        use AcceptClass::{Avif, Neither, Webp};
        class(CHROME, Avif);
        class("image/avif,image/webp,*/*", Avif);
        class("image/webp,*/*", Webp);
        class(SAFARI_16, Avif);
        class(SAFARI_OLD, Neither);
        class("*/*", Neither);
        class("image/*", Neither);
        class("", Neither);
        class("image/jpeg", Neither);
        // Weights: 0 refuses (in any spelling), anything else above 0 accepts.
        class("image/avif;q=0,image/webp", Webp);
        class("image/avif;q=0.000,image/webp;q=0.", Neither);
        class("image/avif;q=0.001", Avif);
        class("image/avif;q=1.000", Avif);
        class("image/avif , image/avif;q=0", Neither);
        // A malformed weight voids its range; a refusal anywhere stands.
        class("image/avif;q=2,image/webp;q=0.5", Webp);
        class("image/avif;q=0.5000", Neither);
        class("image/avif;q=,image/webp;q", Neither);
        // Case, spaces and tabs around the parts; parameters besides q.
        class(" IMAGE/AVIF ;\tQ = 0.9 ", Avif);
        class("image/webp;level=1;q=0.4", Webp);
        class("image/avifx,image/web,image/avif+xml", Neither);
    }

    #[track_caller]
    fn rewrite(
        uri: &str,
        query: &[(&str, &str)],
        accept: Option<&str>,
        expected: [Option<&str>; 3],
    ) {
        for (negotiation, want) in Negotiation::ALL.into_iter().zip(expected) {
            assert_eq!(
                negotiate(uri, query, accept, negotiation).as_deref(),
                want,
                "{uri} {accept:?} {negotiation}"
            );
        }
    }

    #[test]
    fn only_plain_sized_paths_are_rewritten_by_the_originals_extension() {
        let avif = Some(CHROME);
        // Order of the answers: avif-webp, webp, off.
        rewrite(
            "/300x300/a.jpg",
            &[],
            avif,
            [Some("/300x300.avif/a.jpg"), Some("/300x300.webp/a.jpg"), None],
        );
        rewrite(
            "/640x/p/a.JPEG",
            &[],
            avif,
            [Some("/640x.avif/p/a.JPEG"), Some("/640x.webp/p/a.JPEG"), None],
        );
        rewrite(
            "/x200/a.png",
            &[],
            Some("image/webp,*/*"),
            [Some("/x200.webp/a.png"), Some("/x200.webp/a.png"), None],
        );
        // May be animated: WebP for both classes.
        rewrite(
            "/300x300/a.gif",
            &[],
            avif,
            [Some("/300x300.webp/a.gif"), Some("/300x300.webp/a.gif"), None],
        );
        rewrite(
            "/300x300/a.webp",
            &[],
            avif,
            [Some("/300x300.webp/a.webp"), Some("/300x300.webp/a.webp"), None],
        );
        // Other extensions, no extension, a viewer of neither class, no Accept.
        for (uri, accept) in [
            ("/300x300/a.tiff", avif),
            ("/300x300/a", avif),
            ("/300x300/a.jpg/b", avif),
            ("/300x300/a.jpg", Some("*/*")),
            ("/300x300/a.jpg", Some("image/jpeg")),
            ("/300x300/a.jpg", None),
        ] {
            rewrite(uri, &[], accept, [None, None, None]);
        }
        // Explicit formats (so the rewrite is idempotent), the resizer's route, originals,
        // sizes that are not canonical, encoded spellings.
        for uri in [
            "/300x300.avif/a.jpg",
            "/300x300.png/a.jpg",
            "/300x300.webp/a.jpg",
            "/resize/300x300/a.jpg",
            "/photos/a.jpg",
            "/a.jpg",
            "/0300x300/a.jpg",
            "/300x0/a.jpg",
            "/x/a.jpg",
            "/%33300x300/a.jpg",
            "/300x300/a%2Ejpg",
            "/300x300%2Fa.jpg",
        ] {
            rewrite(uri, &[], avif, [None, None, None]);
        }
        // A signed URL is never rewritten; other queries are.
        rewrite(
            "/300x300/private/galleries/g/a.jpg",
            &[("Expires", "1"), ("Signature", "s")],
            avif,
            [None, None, None],
        );
        rewrite(
            "/300x300/a.jpg",
            &[("v", "2")],
            avif,
            [Some("/300x300.avif/a.jpg"), Some("/300x300.webp/a.jpg"), None],
        );
        // Encoded keys keep their spelling.
        rewrite(
            "/300x300/caf%C3%A9.jpg",
            &[],
            avif,
            [Some("/300x300.avif/caf%C3%A9.jpg"), Some("/300x300.webp/caf%C3%A9.jpg"), None],
        );
    }

    fn request(uri: &str, accept: &[&str]) -> ViewerRequest {
        ViewerRequest {
            uri: uri.into(),
            querystring: vec![],
            headers: accept.iter().map(|a| ("accept".to_owned(), (*a).to_owned())).collect(),
            added_headers: vec![],
            viewer_ip: "203.0.113.9".parse().unwrap(),
        }
    }

    #[test]
    fn the_guard_negotiates_what_it_lets_through_with_the_templates_setting() {
        let on = Parameters::from([(NEGOTIATION_PARAMETER.to_owned(), "avif-webp".to_owned())]);
        let off = Parameters::from([(NEGOTIATION_PARAMETER.to_owned(), "off".to_owned())]);
        let mut req = request("/300x300/private/galleries/g/a.jpg", &["image/avif"]);
        assert_eq!(path_guard_function(&mut req, &on), None);
        assert_eq!(req.uri, "/300x300.avif/private/galleries/g/a.jpg");
        // Idempotent: the rewritten path passes the guard and stays.
        assert_eq!(path_guard_function(&mut req, &on), None);
        assert_eq!(req.uri, "/300x300.avif/private/galleries/g/a.jpg");
        let mut req = request("/300x300/private/galleries/g/a.jpg", &["image/avif"]);
        assert_eq!(path_guard_function(&mut req, &off), None);
        assert_eq!(req.uri, "/300x300/private/galleries/g/a.jpg");
        // A refused path is refused, not rewritten.
        let mut req = request("/300x300/a/private/galleries/g/a.jpg", &["image/avif"]);
        assert!(path_guard_function(&mut req, &on).is_some());
        assert_eq!(req.uri, "/300x300/a/private/galleries/g/a.jpg");
        // Accept sent twice reads as one list.
        let mut req = request("/300x300/a.png", &["image/png", "image/webp"]);
        assert_eq!(path_guard_function(&mut req, &on), None);
        assert_eq!(req.uri, "/300x300.webp/a.png");
        // Sizes with a side over AVIF_MAX_SIDE get WebP, at the bound AVIF.
        for (uri, want) in [
            ("/1024x1024/a.jpg", "/1024x1024.avif/a.jpg"),
            ("/1025x/a.jpg", "/1025x.webp/a.jpg"),
            ("/x2048/a.png", "/x2048.webp/a.png"),
            ("/200x4096/a.jpg", "/200x4096.webp/a.jpg"),
            ("/99999999999999999999x/a.jpg", "/99999999999999999999x.webp/a.jpg"),
        ] {
            let mut req = request(uri, &["image/avif,image/webp"]);
            assert_eq!(path_guard_function(&mut req, &on), None);
            assert_eq!(req.uri, want);
        }
        // The setting must be there and known.
        assert!(check_parameters("PathGuardFunction", &on).is_ok());
        assert!(check_parameters("PathGuardFunction", &Parameters::new()).is_err());
        let bad = Parameters::from([(NEGOTIATION_PARAMETER.to_owned(), "avif".to_owned())]);
        assert!(check_parameters("PathGuardFunction", &bad).is_err());
        for n in Negotiation::ALL {
            assert_eq!(n.to_string().parse::<Negotiation>(), Ok(n));
        }
    }

    #[test]
    fn the_viewer_address_replaces_any_the_viewer_sent() {
        let mut req = ViewerRequest {
            uri: "/api/sign-url".into(),
            querystring: vec![],
            headers: vec![],
            added_headers: vec![(VIEWER_ADDRESS_HEADER.into(), "1.2.3.4".into())],
            viewer_ip: "203.0.113.9".parse().unwrap(),
        };
        assert_eq!(viewer_address_function(&mut req, &Parameters::new()), None);
        assert_eq!(req.added_headers, vec![(VIEWER_ADDRESS_HEADER.into(), "203.0.113.9".into())]);
    }
}
