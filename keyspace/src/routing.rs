//! How a missing key reaches the resizer, and back.
//!
//! In redirect mode the S3 website endpoint answers a miss with its routing rule's 307 to
//! `/resize/` + the key. How S3 writes the key there is not documented, and the readings
//! disagree: percent-encoded once, encoded twice (the key as requested, encoded again:
//! what handlers that call `decodeURIComponent` on an already decoded value assume),
//! form-encoded (a space as `+`, as S3 encodes keys in listings), or appended raw (what
//! Ceph's and Garage's implementations of routing rules do). The browser
//! then normalises the Location as a URL (spaces and non-ASCII escaped, `?` starting a
//! query, `#` starting a fragment it never sends). [`key_candidates`] reads the key back
//! under each reading; [`carried`] says which keys arrive intact under every reading, so
//! the signer can refuse the others at upload time.
//!
//! In failover mode no key is ever put in a Location: CloudFront sends the viewer's own
//! path to the resizer, decoded once like any URL path ([`decode_path`]), so every key the
//! grammar accepts is carried.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// How CloudFront reaches the resizer on a miss (template.yaml's `DeliveryMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryMode {
    /// S3 website endpoint, its routing rule's 307 to `/resize/{key}`, the resizer's 307
    /// back. The default.
    #[default]
    Redirect,
    /// A CloudFront origin group: the private bucket first, the resizer's function URL on
    /// 403/404, answering the viewer's path with the image itself.
    Failover,
}

impl FromStr for DeliveryMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "redirect" => Ok(Self::Redirect),
            "failover" => Ok(Self::Failover),
            other => Err(format!("{other:?} is not a delivery mode (redirect or failover)")),
        }
    }
}

impl fmt::Display for DeliveryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Redirect => "redirect",
            Self::Failover => "failover",
        })
    }
}

/// One reading of how S3 writes the key into the routing rule's Location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocationEncoding {
    /// The key percent-encoded once (everything but unreserved characters and `/`).
    Once,
    /// The key as the viewer requested it (already encoded), percent-encoded again.
    Twice,
    /// The key form-encoded: a space as `+`, a `+` as `%2B` (S3's listing encoding).
    Form,
    /// The key's bytes appended as they are.
    Raw,
}

impl LocationEncoding {
    /// All of them, in the order the resizer tries them when it does not know.
    pub const ALL: [Self; 4] = [Self::Once, Self::Twice, Self::Form, Self::Raw];
}

impl FromStr for LocationEncoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "once" => Ok(Self::Once),
            "twice" => Ok(Self::Twice),
            "form" => Ok(Self::Form),
            "raw" => Ok(Self::Raw),
            other => Err(format!("{other:?} is not a key encoding (once, twice, form or raw)")),
        }
    }
}

impl fmt::Display for LocationEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Once => "once",
            Self::Twice => "twice",
            Self::Form => "form",
            Self::Raw => "raw",
        })
    }
}

/// What the resizer assumes about S3's encoding (REDIRECT_KEY_ENCODING).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyDecoding {
    /// Any of the three: try each reading's key in turn (one S3 read when they agree,
    /// which they do for keys of unreserved characters).
    #[default]
    Auto,
    /// Exactly this one: one read always, and every key of the grammar is carried
    /// unless it is [`LocationEncoding::Raw`].
    Exactly(LocationEncoding),
}

impl FromStr for KeyDecoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            other => other.parse().map(Self::Exactly).map_err(|_| {
                format!("{other:?} is not a key decoding (auto, once, twice, form or raw)")
            }),
        }
    }
}

impl KeyDecoding {
    /// The readings to try, `preferred` first when it is one of them.
    pub fn readings(self, preferred: Option<LocationEncoding>) -> Vec<LocationEncoding> {
        match self {
            Self::Exactly(one) => vec![one],
            Self::Auto => {
                let mut all = LocationEncoding::ALL.to_vec();
                if let Some(p) = preferred {
                    all.retain(|e| *e != p);
                    all.insert(0, p);
                }
                all
            }
        }
    }
}

/// Characters left as they are in a path: RFC 3986 unreserved plus `/`.
const PATH: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// Percent-encodes a key for use as a URL path: everything but unreserved characters and `/`.
pub fn encode_key_path(key: &str) -> String {
    utf8_percent_encode(key, PATH).to_string()
}

/// Characters form encoding leaves as they are (as S3 encodes listed keys): letters,
/// digits, `-_.*` and `/`; a space becomes `+`.
const FORM: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'*').remove(b'/').remove(b' ');

fn form_encode(key: &str) -> String {
    utf8_percent_encode(key, FORM).to_string().replace(' ', "+")
}

/// What S3 puts after `ReplaceKeyPrefixWith` under `encoding`, for the key `key` that the
/// viewer requested as `requested` (the path as sent, without its leading `/`). The
/// devserver's S3 website emulates each reading with it.
pub fn location_key(encoding: LocationEncoding, key: &str, requested: &str) -> String {
    match encoding {
        LocationEncoding::Once => encode_key_path(key),
        LocationEncoding::Twice => encode_key_path(requested),
        LocationEncoding::Form => form_encode(key),
        LocationEncoding::Raw => key.to_owned(),
    }
}

/// Decodes a percent-encoded path or query value exactly once. `None` for a stray `%`
/// (not followed by two hex digits) or bytes that are not UTF-8. `+` stays a plus.
pub fn decode_path(raw: &str) -> Option<String> {
    if !well_formed_escapes(raw) {
        return None;
    }
    percent_decode(raw.as_bytes()).decode_utf8().ok().map(|s| s.into_owned())
}

/// Decodes `%XX` escapes and leaves any other `%` as it is: what a raw key with a literal
/// `%` looks like after a browser normalised it (browsers never escape `%`).
fn decode_lenient(raw: &str) -> Option<String> {
    String::from_utf8(percent_decode(raw.as_bytes()).collect()).ok()
}

fn well_formed_escapes(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// The key that arrived under one reading. `path` is the request path after the route
/// prefix (`/resize/`) as it arrived, `query` the raw query string.
pub fn read_key(encoding: LocationEncoding, path: &str, query: Option<&str>) -> Option<String> {
    match encoding {
        LocationEncoding::Once => decode_path(path),
        LocationEncoding::Twice => decode_path(&decode_path(path)?),
        LocationEncoding::Form => decode_path(&path.replace('+', " ")),
        LocationEncoding::Raw => {
            let mut key = decode_lenient(path)?;
            // A raw `?` in the key started the query: put it back.
            if let Some(query) = query.filter(|q| !q.is_empty()) {
                key.push('?');
                key.push_str(&decode_lenient(query)?);
            }
            Some(key)
        }
    }
}

/// The keys a request to the resizer's route may stand for, in the order to try them
/// (the readings of `decoding`, `preferred` first), each once, with the reading that gave
/// it.
pub fn key_candidates(
    path: &str,
    query: Option<&str>,
    decoding: KeyDecoding,
    preferred: Option<LocationEncoding>,
) -> Vec<(LocationEncoding, String)> {
    let mut out: Vec<(LocationEncoding, String)> = Vec::new();
    for encoding in decoding.readings(preferred) {
        if let Some(key) = read_key(encoding, path, query) {
            if !out.iter().any(|(_, k)| *k == key) {
                out.push((encoding, key));
            }
        }
    }
    out
}

/// Why a key cannot make the trip through the redirect under every reading of S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotCarried {
    /// A raw `#` starts a fragment, which the browser never sends.
    #[error("'#' cannot reach the resizer in redirect mode (S3 may write the key raw, and '#' then ends the URL)")]
    Hash,
    /// A raw `%XX` is read back as the character it escapes.
    #[error("'%' followed by two hex digits cannot reach the resizer in redirect mode (S3 may write the key raw, and it then reads as an escape)")]
    Escape,
    /// Any other raw `%` in the path makes it malformed, and the edge's path guard, which
    /// decodes the path, refuses it.
    #[error("'%' cannot be in the path part of a key in redirect mode (S3 may write the key raw, and the edge refuses a malformed path)")]
    Percent,
    /// A raw `?` starts a query string, which private paths may not carry.
    #[error("'?' cannot be in a private key in redirect mode (S3 may write the key raw, and private URLs take no query)")]
    QueryInPrivate,
    /// What precedes a raw `?` ends in a `.` or `..` segment, which the browser resolves.
    #[error("a '.' or '..' just before a '?' cannot reach the resizer in redirect mode (S3 may write the key raw, and the browser resolves it as a dot segment)")]
    DotBeforeQuestionMark,
    /// A key whose first `?` is its last character leaves an empty query, which arrives
    /// as none.
    #[error("a key cannot end with its first '?' in redirect mode")]
    TrailingQuestionMark,
    /// Browsers strip spaces at the end of a URL.
    #[error("a key cannot end with a space in redirect mode")]
    TrailingSpace,
}

/// Whether `key` (an original's or a derivative's) arrives intact at the resizer in
/// `mode` when the resizer reads it with `decoding`. Failover carries every key, and so do
/// the once, twice and form readings; only a raw Location (possible under `Auto`) loses
/// some.
pub fn carried(
    key: &str,
    mode: DeliveryMode,
    decoding: KeyDecoding,
    private: bool,
) -> Result<(), NotCarried> {
    let raw_possible = matches!(
        (mode, decoding),
        (DeliveryMode::Redirect, KeyDecoding::Auto | KeyDecoding::Exactly(LocationEncoding::Raw))
    );
    if !raw_possible {
        return Ok(());
    }
    if key.contains('#') {
        return Err(NotCarried::Hash);
    }
    let bytes = key.as_bytes();
    let escape = bytes
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit());
    if escape {
        return Err(NotCarried::Escape);
    }
    // What precedes a raw `?` is the path the edge decodes; the rest is the query.
    if key.split('?').next().is_some_and(|path| path.contains('%')) {
        return Err(NotCarried::Percent);
    }
    if key.contains('?') {
        if private {
            return Err(NotCarried::QueryInPrivate);
        }
        // The query is what follows the first `?`: empty, it arrives as no query at all.
        if key.find('?') == Some(key.len() - 1) {
            return Err(NotCarried::TrailingQuestionMark);
        }
        let path = key.split('?').next().unwrap_or_default();
        if matches!(path.rsplit('/').next(), Some("." | "..")) {
            return Err(NotCarried::DotBeforeQuestionMark);
        }
    }
    if key.ends_with(' ') {
        return Err(NotCarried::TrailingSpace);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a browser requests after following `location` (WHATWG URL parsing, as
    /// Chromium does): the path after `/resize/` and the query.
    fn follow(location_key: &str) -> (String, Option<String>) {
        let base = url::Url::parse("https://cdn.example.com/300x300/x.jpg").unwrap();
        let url = base.join(&format!("/resize/{location_key}")).unwrap();
        let path = url.path().strip_prefix("/resize/").unwrap().to_owned();
        (path, url.query().map(str::to_owned))
    }

    /// The request path a page or a client writes for `key`: fully encoded, or with only
    /// what must be escaped in a path escaped.
    fn requested_forms(key: &str) -> [String; 2] {
        let minimal: String = key
            .chars()
            .map(|c| match c {
                '%' | '#' | '?' | ' ' => format!("%{:02X}", c as u32),
                c if !c.is_ascii() => encode_key_path(&c.to_string()),
                c => c.to_string(),
            })
            .collect();
        [encode_key_path(key), minimal]
    }

    fn arrives_as(
        key: &str,
        encoding: LocationEncoding,
        requested: &str,
        decoding: KeyDecoding,
    ) -> bool {
        let (path, query) = follow(&location_key(encoding, key, requested));
        key_candidates(&path, query.as_deref(), decoding, None).iter().any(|(_, k)| k == key)
    }

    #[test]
    fn each_reading_reads_back_what_it_wrote() {
        let key = "300x300/a b+c&d?e 100%25 ảnh 고양이.jpg";
        for requested in requested_forms(key) {
            for encoding in
                [LocationEncoding::Once, LocationEncoding::Twice, LocationEncoding::Form]
            {
                let (path, query) = follow(&location_key(encoding, key, &requested));
                assert_eq!(query, None, "{encoding}");
                assert_eq!(read_key(encoding, &path, None).as_deref(), Some(key), "{encoding}");
            }
        }
        // Raw: `%25` cannot be told from an escape; without it the key arrives whole.
        let key = "300x300/a b+c&d?e ảnh 고양이.jpg";
        let (path, query) = follow(&location_key(LocationEncoding::Raw, key, ""));
        assert_eq!(query.as_deref(), Some("e%20%E1%BA%A3nh%20%EA%B3%A0%EC%96%91%EC%9D%B4.jpg"));
        assert_eq!(read_key(LocationEncoding::Raw, &path, query.as_deref()).as_deref(), Some(key));
    }

    #[test]
    fn unreserved_keys_have_one_candidate() {
        let got = key_candidates("300x300/photos/cat-1_a.b~c.jpg", None, KeyDecoding::Auto, None);
        assert_eq!(
            got,
            vec![(LocationEncoding::Once, "300x300/photos/cat-1_a.b~c.jpg".to_owned())]
        );
    }

    #[test]
    fn candidates_follow_the_readings_and_the_preference() {
        // `a%2520b` is `a b` encoded twice, or the key `a%20b` encoded once.
        let got = key_candidates("x1/a%2520b", None, KeyDecoding::Auto, None);
        assert_eq!(
            got,
            vec![
                (LocationEncoding::Once, "x1/a%20b".to_owned()),
                (LocationEncoding::Twice, "x1/a b".to_owned()),
            ]
        );
        let got =
            key_candidates("x1/a%2520b", None, KeyDecoding::Auto, Some(LocationEncoding::Twice));
        assert_eq!(got[0], (LocationEncoding::Twice, "x1/a b".to_owned()));
        let got = key_candidates("x1/a%2520b", None, "once".parse().unwrap(), None);
        assert_eq!(got, vec![(LocationEncoding::Once, "x1/a%20b".to_owned())]);
        // A stray `%` is no escape: only the raw reading keeps it.
        let got = key_candidates("x1/100%.jpg", None, KeyDecoding::Auto, None);
        assert_eq!(got, vec![(LocationEncoding::Raw, "x1/100%.jpg".to_owned())]);
        // Not UTF-8 under any reading: nothing.
        assert!(key_candidates("x1/%FF", None, KeyDecoding::Auto, None).is_empty());
    }

    #[test]
    fn settings_parse() {
        assert_eq!("auto".parse::<KeyDecoding>(), Ok(KeyDecoding::Auto));
        assert_eq!("raw".parse::<KeyDecoding>(), Ok(KeyDecoding::Exactly(LocationEncoding::Raw)));
        assert_eq!("form".parse::<LocationEncoding>(), Ok(LocationEncoding::Form));
        assert!("Once".parse::<KeyDecoding>().is_err());
        assert_eq!("failover".parse::<DeliveryMode>(), Ok(DeliveryMode::Failover));
        assert!("edge".parse::<DeliveryMode>().is_err());
    }

    #[test]
    fn path_encoding_keeps_slashes_and_escapes_the_rest() {
        assert_eq!(encode_key_path("300x300/a b+c%.jpg"), "300x300/a%20b%2Bc%25.jpg");
        assert_eq!(encode_key_path("300x/ảnh.jpg"), "300x/%E1%BA%A3nh.jpg");
        assert_eq!(encode_key_path("x1/a?b#c&d=e"), "x1/a%3Fb%23c%26d%3De");
        assert_eq!(decode_path("a%20b+c"), Some("a b+c".to_owned()));
        assert_eq!(decode_path("100%"), None);
        assert_eq!(decode_path("%zz"), None);
    }

    #[test]
    fn named_keys_the_redirect_cannot_carry() {
        let auto = KeyDecoding::Auto;
        let redirect = DeliveryMode::Redirect;
        let case = |key: &str, private: bool| carried(key, redirect, auto, private);
        assert_eq!(case("300x300/a#b.jpg", false), Err(NotCarried::Hash));
        assert_eq!(case("300x300/a%20b.jpg", false), Err(NotCarried::Escape));
        assert_eq!(case("300x300/private/a?b.jpg", true), Err(NotCarried::QueryInPrivate));
        assert_eq!(case("300x300/a?", false), Err(NotCarried::TrailingQuestionMark));
        assert_eq!(case("300x300/a??", false), Ok(()));
        assert_eq!(case("300x300/k/.?a", false), Err(NotCarried::DotBeforeQuestionMark));
        assert_eq!(case("300x300/k/a.?b", false), Ok(()));
        assert_eq!(case("300x300/a ", false), Err(NotCarried::TrailingSpace));
        assert_eq!(case("300x300/a?b.jpg", false), Ok(()));
        assert_eq!(case("300x300/100%.jpg", false), Err(NotCarried::Percent));
        assert_eq!(case("300x300/a?100%.jpg", false), Ok(()));
        assert_eq!(case("300x300/a b+c&d ảnh 고양이.jpg", true), Ok(()));
        for fine in ["once", "twice", "form"] {
            let exactly = fine.parse().unwrap();
            assert_eq!(carried("300x300/a#b%20?", redirect, exactly, true), Ok(()));
        }
        assert_eq!(carried("300x300/a#b%20?", DeliveryMode::Failover, auto, true), Ok(()));
    }

    /// Keys made of the characters that matter, plus plain ones; only keys the grammar
    /// accepts (no empty, `.` or `..` segment: the resizer refuses those, and a browser
    /// resolves dot segments before anything could carry them).
    fn keys() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "a", "b", "Z", "9", "-", ".", "_", "~", " ", "+", "%", "%2", "%20", "%25", "&", "=",
            "#", "?", "'", "\"", "<", ">", "(", "!", "*", "@", ":", ";", ",", "$", "ả", "고", "é",
            "/", "😀",
        ]);
        prop::collection::vec(piece, 1..12)
            .prop_map(|pieces| {
                let original: String = pieces.concat();
                format!("300x300/k{original}")
            })
            .prop_filter("a key of the grammar", |key| {
                key.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
            })
    }

    proptest! {
        /// The rule the signer applies is exactly what the trip allows: a key `carried`
        /// approves arrives among the candidates under every reading of S3 and every way a
        /// client may have spelt the requested path, past the edge's path guard; a key it
        /// refuses is lost under at least one.
        #[test]
        fn carried_keys_arrive_under_every_reading_and_refused_ones_do_not(key in keys(), private in any::<bool>()) {
            let verdict = carried(&key, DeliveryMode::Redirect, KeyDecoding::Auto, private);
            let mut lost = false;
            for encoding in LocationEncoding::ALL {
                for requested in requested_forms(&key) {
                    let (path, query) = follow(&location_key(encoding, &key, &requested));
                    let arrives = arrives_as(&key, encoding, &requested, KeyDecoding::Auto)
                        && arrives_as(&key, encoding, &requested, KeyDecoding::Exactly(encoding))
                        // The edge's path guard decodes the path and refuses a malformed
                        // one, and a private path takes no query.
                        && decode_path(&path).is_some()
                        && !(private && query.is_some());
                    if verdict.is_ok() {
                        prop_assert!(arrives, "{key:?} under {encoding} (requested {requested:?})");
                    }
                    lost |= !arrives;
                }
            }
            if verdict.is_err() {
                prop_assert!(lost, "{key:?} refused ({verdict:?}) but arrives under every reading");
            }
        }
    }
}
