//! Private paths: the CloudFront path patterns whose behaviours need a signature from the
//! trusted key group, and the one shape a private request may have (checked at the edge by
//! the path-guard CloudFront Function before the signature, and by the signer before it
//! signs a path).

use crate::wildcard::wildcard_match;

/// Where private galleries live: `private/galleries/{id}/...`.
pub const GALLERY_PREFIX: &str = "private/galleries/";
/// Where uploads go: `uploads/{user}/...`.
pub const UPLOAD_PREFIX: &str = "uploads/";
/// The key prefixes grants are made of (a gallery cookie, a user's uploads cookie).
pub const GRANT_PREFIXES: [&str; 2] = [GALLERY_PREFIX, UPLOAD_PREFIX];

/// The path prefix of the resizer's route in redirect mode: the S3 website's routing rule
/// sends a miss for `/{derivative}` to `/resize/{derivative}`, so CloudFront's signed
/// behaviours cover a private miss exactly as they cover a private hit.
pub const RESIZE_ROUTE: &str = "resize/";

/// The signing parameters CloudFront reads from a signed URL's query.
pub const SIGNING_PARAMS: [&str; 5] =
    ["Expires", "Policy", "Signature", "Key-Pair-Id", "Hash-Algorithm"];

/// Whether a path segment is a derivative size (`300x300`, `640x`, `x480`), whatever its
/// numbers, optionally with an output format (`300x300.avif`, `640x.webp`), whatever its
/// letters: the shape the guard strips before looking at the key. Liberal on purpose: the
/// resizer refuses sizes and formats it does not know itself, while a shape the guard did
/// not strip would make `/300x300.avif/private/galleries/g/a.jpg` a nested grant prefix.
pub fn is_size_segment(s: &str) -> bool {
    let size = match s.split_once('.') {
        Some((size, format))
            if !format.is_empty() && format.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            size
        }
        Some(_) => return false,
        None => s,
    };
    let Some((w, h)) = size.split_once('x') else { return false };
    (!w.is_empty() || !h.is_empty()) && w.bytes().chain(h.bytes()).all(|b| b.is_ascii_digit())
}

/// Whether a signing parameter's value is one CloudFront could have issued: digits
/// (`Expires`), CloudFront's URL-safe base64 (`Policy`, `Signature`: `-`, `_`, `~` for
/// `+`, `=`, `/`), a key id or a hash name. Nothing else, so that no value can carry a
/// path for a Resource's wildcard to reach.
pub fn is_signing_value(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~'))
}

/// Why a private request is not in the one shape grants are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// A query parameter other than CloudFront's signing parameters, or one whose value no
    /// signature has.
    #[error("private URLs take no query string besides the signature")]
    Query,
    /// A grant prefix (`private/galleries/`, `uploads/`) somewhere other than at the start
    /// of the key.
    #[error("a grant prefix appears inside the key")]
    NestedPrefix,
    /// An empty, `.` or `..` segment (`a//b`, `a/./b`, `a/../b`, a trailing `/`).
    #[error("private paths have no empty, '.' or '..' segments")]
    DotSegment,
}

/// The viewer-request check for private paths, run before the signature check (in AWS, by
/// the path-guard CloudFront Function; in the devserver, by its edge; and by the signer on
/// paths it is asked to sign).
///
/// Grant Resources are `{base}/*private/galleries/{id}/*` and `{base}/*uploads/{user}/*`:
/// the leading `*` must stand for an optional `resize/` and size segment only. CloudFront
/// matches a Resource against the whole URL, query included, and may pick a behaviour on a
/// normalised path while the cache key and the origin see the raw one. So: no query besides
/// the signature, whose values hold no path either (were CloudFront to ignore a lone
/// `?Hash-Algorithm=/private/galleries/mine/` and check cookies, it would match the grant
/// for `mine`), no grant prefix anywhere in the key but at its start, and no empty, `.` or
/// `..` segment (`/private/galleries/mine/../other/a.jpg` matches the grant for `mine`).
/// `path` is the decoded path without its leading `/`; `query` the raw query string.
pub fn check_private_shape(path: &str, query: Option<&str>) -> Result<(), ShapeError> {
    let query = query.unwrap_or("");
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !SIGNING_PARAMS.contains(&name) || !is_signing_value(value) {
            return Err(ShapeError::Query);
        }
    }
    if path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(ShapeError::DotSegment);
    }
    let path = path.strip_prefix(RESIZE_ROUTE).unwrap_or(path);
    let key = match path.split_once('/') {
        Some((first, rest)) if is_size_segment(first) => rest,
        _ => path,
    };
    for prefix in GRANT_PREFIXES {
        if key.match_indices(prefix).any(|(i, _)| i != 0) {
            return Err(ShapeError::NestedPrefix);
        }
    }
    Ok(())
}

/// CloudFront path patterns (cache behaviours) that require a signature, matched against
/// the request path without its leading `/`, as CloudFront matches behaviours.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrivatePaths(Vec<String>);

impl PrivatePaths {
    /// The default: originals under `private/` and `uploads/`, and every size of them.
    pub const DEFAULT: &'static str = "private/*,*/private/*,uploads/*,*/uploads/*";

    /// Parses a comma-separated list of patterns (`private/*,*/private/*`). Empty means
    /// nothing is private.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut patterns = Vec::new();
        for token in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let token = token.strip_prefix('/').unwrap_or(token);
            if token.is_empty() || token.len() > 255 || token.chars().any(|c| c.is_whitespace()) {
                return Err(format!("{token:?} is not a path pattern"));
            }
            patterns.push(token.to_owned());
        }
        Ok(Self(patterns))
    }

    /// The default patterns.
    pub fn default_patterns() -> Self {
        Self::parse(Self::DEFAULT).expect("the default patterns parse")
    }

    /// Whether `path` (with or without its leading `/`) needs a signature.
    pub fn is_private(&self, path: &str) -> bool {
        let path = path.strip_prefix('/').unwrap_or(path);
        self.0.iter().any(|p| wildcard_match(p, path))
    }

    /// Whether a derivative key (or an original key) is private. Same patterns as
    /// [`PrivatePaths::is_private`]: keys and paths differ only by the leading `/`.
    pub fn is_private_key(&self, key: &str) -> bool {
        self.0.iter().any(|p| wildcard_match(p, key))
    }

    /// The patterns, in order.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn shape(path: &str, query: Option<&str>, expected: Result<(), ShapeError>) {
        assert_eq!(check_private_shape(path, query), expected, "{path} {query:?}");
    }

    #[test]
    fn private_requests_have_one_shape() {
        shape("private/galleries/g1/a.jpg", None, Ok(()));
        shape(
            "300x300/private/galleries/g1/a.jpg",
            Some("Expires=1&Signature=x&Key-Pair-Id=K"),
            Ok(()),
        );
        shape("640x/uploads/alice/a.jpg", Some(""), Ok(()));
        shape("resize/640x/uploads/alice/a.jpg", None, Ok(()));
        shape("resize/300x300/private/galleries/g1/a.jpg", None, Ok(()));
        // The query can no longer carry a grant prefix for a leading `*` to reach.
        shape(
            "private/galleries/g2/a.jpg",
            Some("x=private/galleries/g1/"),
            Err(ShapeError::Query),
        );
        shape("private/galleries/g2/a.jpg", Some("Signature=x&v=2"), Err(ShapeError::Query));
        // A signing parameter's value holds no path.
        shape(
            "private/galleries/g2/a.jpg",
            Some("Hash-Algorithm=/private/galleries/g1/"),
            Err(ShapeError::Query),
        );
        shape(
            "private/galleries/g2/a.jpg",
            Some("Policy=%2Fprivate%2Fgalleries%2Fg1%2F"),
            Err(ShapeError::Query),
        );
        shape(
            "private/galleries/g2/a.jpg",
            Some("Policy=eyJ-_~&Signature=aB9_&Key-Pair-Id=K2JC&Expires=17"),
            Ok(()),
        );
        shape(
            "private/galleries/g2/private/galleries/g1/a.jpg",
            None,
            Err(ShapeError::NestedPrefix),
        );
        shape(
            "300x300/private/galleries/g2/xuploads/alice/a.jpg",
            None,
            Err(ShapeError::NestedPrefix),
        );
        shape("foo/private/galleries/g1/a.jpg", None, Err(ShapeError::NestedPrefix));
        // A size that names its format is a size: the edge's negotiation writes these.
        shape("300x300.avif/private/galleries/g1/a.jpg", None, Ok(()));
        shape("resize/640x.webp/uploads/alice/a.png", None, Ok(()));
        shape("300x300.av-if/private/galleries/g1/a.jpg", None, Err(ShapeError::NestedPrefix));
        shape("resize/foo/private/galleries/g1/a.jpg", None, Err(ShapeError::NestedPrefix));
    }

    #[test]
    fn dot_and_empty_segments_are_refused() {
        for path in [
            "private/galleries/mine/../other/a.jpg",
            "private/galleries/mine/./a.jpg",
            "300x300/private/galleries/mine/..",
            "private/galleries//a.jpg",
            "private/galleries/g/",
            "resize/300x300/private/galleries/mine/../other/a.jpg",
            "./private/galleries/g/a.jpg",
        ] {
            shape(path, None, Err(ShapeError::DotSegment));
        }
        shape("private/galleries/g/a..b.jpg", None, Ok(()));
        shape("private/galleries/g/.hidden", None, Ok(()));
    }

    #[test]
    fn default_patterns_cover_originals_uploads_and_every_size() {
        let p = PrivatePaths::default_patterns();
        assert!(p.is_private("/private/galleries/g1/a.jpg"));
        assert!(p.is_private("300x300/private/galleries/g1/a.jpg"));
        assert!(p.is_private("/640x/private/a.jpg"));
        assert!(p.is_private("/uploads/alice/a.jpg"));
        assert!(p.is_private("/640x/uploads/alice/a.jpg"));
        assert!(p.is_private("resize/640x/uploads/alice/a.jpg"));
        assert!(p.is_private_key("300x300/private/a.jpg"));
        assert!(!p.is_private("/300x300/photos/a.jpg"));
        assert!(!p.is_private("/privateer/a.jpg"));
        assert!(!p.is_private("/uploadsx/a.jpg"));
        assert!(!PrivatePaths::parse("").unwrap().is_private("/private/a.jpg"));
        assert!(PrivatePaths::parse("a b").is_err());
    }

    #[test]
    fn size_segments() {
        for s in
            ["300x300", "640x", "x480", "0x0", "300x300.avif", "640x.webp", "x480.png", "1x1.jpg"]
        {
            assert!(is_size_segment(s), "{s}");
        }
        for s in [
            "x",
            "photos",
            "300x300x",
            "300X300",
            "",
            "resize",
            "x.avif",
            "300x300.",
            "300x300.avif.webp",
            "300x300.a-b",
            ".avif",
            "a.jpg",
            "300x300.av%69f",
        ] {
            assert!(!is_size_segment(s), "{s}");
        }
    }
}
