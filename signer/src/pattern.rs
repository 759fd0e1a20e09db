//! CloudFront's wildcards: `*` matches any run of characters (`/` included, possibly
//! none) and `?` exactly one. Used for policy Resources and for path patterns.

/// Whether `text` matches `pattern` (`*` and `?` wildcards, everything else literal).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // Greedy matching with one backtrack point: linear in practice and never exponential,
    // whatever the number of stars (a policy arrives from the request, so it is untrusted).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == b'?' && is_char_start(t[ti]) || p[pi] == t[ti]) {
            if p[pi] == b'?' {
                ti += char_len(t[ti]);
            } else {
                ti += 1;
            }
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            let next = st + char_len(t[st]);
            star = Some((sp, next));
            ti = next;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

fn is_char_start(b: u8) -> bool {
    b & 0xC0 != 0x80
}

fn char_len(b: u8) -> usize {
    match b {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[track_caller]
    fn case(pattern: &str, text: &str, expected: bool) {
        assert_eq!(wildcard_match(pattern, text), expected, "{pattern:?} vs {text:?}");
    }

    #[test]
    fn stars_and_question_marks_follow_cloudfront() {
        case("https://d.net/a.jpg", "https://d.net/a.jpg", true);
        case("https://d.net/a.jpg", "https://d.net/a.jpgx", false);
        case("https://d.net/*", "https://d.net/", true);
        case("https://d.net/*", "https://d.net/x/y/z.jpg?q=1", true);
        case(
            "https://d.net/*private/galleries/g1/*",
            "https://d.net/private/galleries/g1/a.jpg",
            true,
        );
        case(
            "https://d.net/*private/galleries/g1/*",
            "https://d.net/300x300/private/galleries/g1/a.jpg",
            true,
        );
        case(
            "https://d.net/*private/galleries/g1/*",
            "https://d.net/private/galleries/g2/a.jpg",
            false,
        );
        case("https://d.net/?.jpg", "https://d.net/a.jpg", true);
        case("https://d.net/?.jpg", "https://d.net/ab.jpg", false);
        case("https://d.net/?.jpg", "https://d.net/é.jpg", true);
        case("*", "", true);
        case("?", "", false);
        case("a*b*c", "abc", true);
        case("a*b*c", "aXbYc", true);
        case("a*b*c", "aXbY", false);
        case("private/*", "private/x.jpg", true);
        case("private/*", "300x300/private/x.jpg", false);
    }

    #[test]
    fn many_stars_do_not_take_exponential_time() {
        let pattern = "*a".repeat(200) + "b";
        let text = "a".repeat(5_000);
        assert!(!wildcard_match(&pattern, &text));
    }
}

/// Whether a path segment is a derivative size (`300x300`, `640x`, `x480`).
pub fn is_size_segment(s: &str) -> bool {
    let Some((w, h)) = s.split_once('x') else { return false };
    (!w.is_empty() || !h.is_empty()) && w.bytes().chain(h.bytes()).all(|b| b.is_ascii_digit())
}

/// The key prefixes that grants are made of (see `identity`).
const GRANT_PREFIXES: [&str; 2] = [crate::identity::GALLERY_PREFIX, crate::identity::UPLOAD_PREFIX];

/// The signing parameters CloudFront reads from a signed URL's query.
pub const SIGNING_PARAMS: [&str; 5] =
    ["Expires", "Policy", "Signature", "Key-Pair-Id", "Hash-Algorithm"];

/// Why a private request is not in the one shape grants are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// A query parameter other than CloudFront's signing parameters.
    #[error("private URLs take no query string besides the signature")]
    Query,
    /// A grant prefix (`private/galleries/`, `uploads/`) somewhere other than at the start
    /// of the key.
    #[error("a grant prefix appears inside the key")]
    NestedPrefix,
}

/// The viewer-request check for private paths, run before the signature check (in AWS, by
/// the CloudFront Function on private behaviours; in the devserver, by its guard).
///
/// Grant Resources are `{base}/*private/galleries/{id}/*` and `{base}/*uploads/{user}/*`:
/// the leading `*` must stand for an optional size segment only. CloudFront matches a
/// Resource against the whole URL, query included, so without this check
/// `/private/galleries/OTHER/a.jpg?x=private/galleries/mine/` would match the grant for
/// `mine`. Hence: no query besides the signature, and no grant prefix anywhere in the key
/// but at its start. `path` is the decoded path without its leading `/`.
pub fn check_private_shape(path: &str, query: Option<&str>) -> Result<(), ShapeError> {
    let query = query.unwrap_or("");
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        if !SIGNING_PARAMS.contains(&name) {
            return Err(ShapeError::Query);
        }
    }
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
    /// The default: originals under `private/` and every size of them.
    pub const DEFAULT: &'static str = "private/*,*/private/*";

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

    /// Whether `path` (with or without its leading `/`) needs a signature.
    pub fn is_private(&self, path: &str) -> bool {
        let path = path.strip_prefix('/').unwrap_or(path);
        self.0.iter().any(|p| wildcard_match(p, path))
    }

    /// The patterns, in order.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod private_path_tests {
    use super::{check_private_shape, PrivatePaths, ShapeError};

    #[test]
    fn private_requests_have_one_shape() {
        let ok =
            |p: &str, q: Option<&str>| assert_eq!(check_private_shape(p, q), Ok(()), "{p} {q:?}");
        ok("private/galleries/g1/a.jpg", None);
        ok("300x300/private/galleries/g1/a.jpg", Some("Expires=1&Signature=x&Key-Pair-Id=K"));
        ok("640x/uploads/alice/a.jpg", Some(""));
        let bad = |p: &str, q: Option<&str>, e| {
            assert_eq!(check_private_shape(p, q), Err(e), "{p} {q:?}")
        };
        // The query can no longer carry a grant prefix for a leading `*` to reach.
        bad("private/galleries/g2/a.jpg", Some("x=private/galleries/g1/"), ShapeError::Query);
        bad("private/galleries/g2/a.jpg", Some("Signature=x&v=2"), ShapeError::Query);
        bad("private/galleries/g2/private/galleries/g1/a.jpg", None, ShapeError::NestedPrefix);
        bad("300x300/private/galleries/g2/xuploads/alice/a.jpg", None, ShapeError::NestedPrefix);
        bad("foo/private/galleries/g1/a.jpg", None, ShapeError::NestedPrefix);
    }

    #[test]
    fn default_patterns_cover_originals_and_every_size() {
        let p = PrivatePaths::parse(PrivatePaths::DEFAULT).unwrap();
        assert!(p.is_private("/private/galleries/g1/a.jpg"));
        assert!(p.is_private("300x300/private/galleries/g1/a.jpg"));
        assert!(p.is_private("/640x/private/a.jpg"));
        assert!(!p.is_private("/300x300/photos/a.jpg"));
        assert!(!p.is_private("/privateer/a.jpg"));
        assert!(!PrivatePaths::parse("").unwrap().is_private("/private/a.jpg"));
        assert!(PrivatePaths::parse("a b").is_err());
    }
}
