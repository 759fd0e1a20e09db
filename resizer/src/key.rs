//! The derivative key grammar: `{W}x{H}/{original}`, `{W}x/{original}`, `x{H}/{original}`,
//! each size optionally naming the output format: `{size}.{fmt}/{original}` with `fmt` one
//! of `avif`, `webp`, `jpeg`, `png`, `gif` (`640x.avif/photos/cat.jpg`). Without a format the
//! derivative has the original's.
//!
//! Everything here is pure string handling: no I/O, no clock, no configuration beyond the
//! numbers passed in.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::pipeline::Format;

/// S3's own limit on an object key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// One size token, anchored: the whole token must match, nothing before or after. Numbers are
/// canonical decimal (no sign, no leading zero); the range is checked after parsing.
static SIZE_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\A(?:([1-9][0-9]*)x([1-9][0-9]*)|([1-9][0-9]*)x|x([1-9][0-9]*))\z")
        .expect("size token pattern compiles")
});

/// The shape of a size segment whatever its numbers and suffix: what an original may not
/// start with (a chain), and what the edge strips before looking at a private key.
static SIZE_SHAPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\A(?:[0-9]+x[0-9]*|x[0-9]+)(?:\.[A-Za-z0-9]+)?\z")
        .expect("size shape pattern compiles")
});

/// A requested size: an exact box, a width only or a height only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    /// `WxH`: exactly W by H pixels, covering the box and centre-cropping the overflow.
    Box {
        /// Output width in pixels.
        width: u32,
        /// Output height in pixels.
        height: u32,
    },
    /// `Wx`: this width, height from the aspect ratio, never wider than the original.
    Width(u32),
    /// `xH`: this height, width from the aspect ratio, never taller than the original.
    Height(u32),
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Box { width, height } => write!(f, "{width}x{height}"),
            Size::Width(w) => write!(f, "{w}x"),
            Size::Height(h) => write!(f, "x{h}"),
        }
    }
}

/// Why a size token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// The token is not `WxH`, `Wx` or `xH` with canonical decimal numbers.
    #[error("{0:?} is not a size (expected WxH, Wx or xH with plain decimal numbers)")]
    Malformed(String),
    /// A number is 0 or above the maximum dimension.
    #[error("{value} is outside 1..={max} in size {token:?}")]
    OutOfRange {
        /// The token as given.
        token: String,
        /// The offending number (saturated at u64::MAX when it does not even fit).
        value: u64,
        /// MAX_DIMENSION in force.
        max: u32,
    },
    /// The size names a format that is not one of `avif`, `webp`, `jpeg`, `png`, `gif`.
    #[error(
        "{0:?} names an unknown format (expected avif, webp, jpeg, png or gif after the size)"
    )]
    UnknownFormat(String),
}

/// Parses one size token (`300x300`, `640x`, `x200`) and checks each number is in
/// `1..=max_dimension`.
pub fn parse_size(token: &str, max_dimension: u32) -> Result<Size, SizeError> {
    let caps = SIZE_TOKEN.captures(token).ok_or_else(|| SizeError::Malformed(token.to_owned()))?;
    let number = |i: usize| -> Result<Option<u32>, SizeError> {
        let Some(m) = caps.get(i) else {
            return Ok(None);
        };
        let value: u64 = m.as_str().parse().unwrap_or(u64::MAX);
        if value == 0 || value > u64::from(max_dimension) {
            return Err(SizeError::OutOfRange {
                token: token.to_owned(),
                value,
                max: max_dimension,
            });
        }
        Ok(Some(value as u32))
    };
    Ok(match (number(1)?, number(2)?, number(3)?, number(4)?) {
        (Some(width), Some(height), _, _) => Size::Box { width, height },
        (_, _, Some(w), _) => Size::Width(w),
        (_, _, _, Some(h)) => Size::Height(h),
        _ => return Err(SizeError::Malformed(token.to_owned())),
    })
}

/// True when the segment has the shape of a size segment, whatever its numbers and format.
fn looks_like_size(segment: &str) -> bool {
    SIZE_SHAPE.is_match(segment)
}

/// A key's first segment: the size and, when named, the output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SizeSegment {
    /// The requested size.
    pub size: Size,
    /// The output format named after the size; `None`: the original's.
    pub format: Option<Format>,
}

impl fmt::Display for SizeSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.format {
            Some(format) => write!(f, "{}.{}", self.size, format.name()),
            None => write!(f, "{}", self.size),
        }
    }
}

/// Parses a size segment (`300x300`, `640x.avif`): a size token, then optionally `.` and one
/// of the format names, spelt exactly (`jpg`, `AVIF` or a second suffix are refused).
pub fn parse_size_segment(segment: &str, max_dimension: u32) -> Result<SizeSegment, SizeError> {
    let (token, format) = match segment.split_once('.') {
        None => (segment, None),
        Some((token, name)) => {
            let format = Format::from_name(name)
                .ok_or_else(|| SizeError::UnknownFormat(segment.to_owned()))?;
            (token, Some(format))
        }
    };
    Ok(SizeSegment { size: parse_size(token, max_dimension)?, format })
}

/// A parsed derivative key: the size, the output format if named, and the original's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DerivativeKey {
    /// The requested size.
    pub size: Size,
    /// The output format named in the key; `None`: the original's.
    pub format: Option<Format>,
    /// The original object's key (never itself a derivative key).
    pub original: String,
}

impl DerivativeKey {
    /// The key's first segment.
    pub fn segment(&self) -> SizeSegment {
        SizeSegment { size: self.size, format: self.format }
    }
}

impl fmt::Display for DerivativeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.segment(), self.original)
    }
}

/// Why a derivative key was refused. All of these are the caller's fault (400 `invalid-key`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The percent-encoding is broken or decodes to bytes that are not UTF-8, under every
    /// reading of how the key was encoded.
    #[error("the key is not valid percent-encoded UTF-8")]
    BadEncoding,
    /// Longer than S3 allows.
    #[error("the key is {0} bytes long; the limit is {MAX_KEY_BYTES}")]
    TooLong(usize),
    /// `a//b`, a leading or a trailing slash.
    #[error("the key has an empty path segment")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("the key has a '.' or '..' segment")]
    DotSegment,
    /// A backslash anywhere.
    #[error("the key contains a backslash")]
    Backslash,
    /// A control character (U+0000..U+001F, U+007F..U+009F).
    #[error("the key contains a control character")]
    ControlCharacter,
    /// No original after the size, or nothing but a size.
    #[error("the key has no original after the size")]
    MissingOriginal,
    /// The first segment is not a size token.
    #[error(transparent)]
    Size(#[from] SizeError),
    /// The original key itself starts with a size token (`300x300/300x300/a.jpg`).
    #[error("the original {0:?} is itself a derivative key")]
    Chained(String),
}

/// Parses a decoded derivative key (`300x300/photos/cat.jpg`).
pub fn parse_derivative_key(key: &str, max_dimension: u32) -> Result<DerivativeKey, KeyError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooLong(key.len()));
    }
    if key.contains('\\') {
        return Err(KeyError::Backslash);
    }
    if key.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter);
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err(KeyError::EmptySegment),
            "." | ".." => return Err(KeyError::DotSegment),
            _ => {}
        }
    }
    let (size_token, original) = key.split_once('/').ok_or(KeyError::MissingOriginal)?;
    let SizeSegment { size, format } = parse_size_segment(size_token, max_dimension)?;
    // A chain: the original itself starts with a size segment (`300x300/640x.webp/a.jpg`),
    // or is nothing but a bare size. A file named like a size with a format
    // (`640x/300x300.png`) is an original like any other.
    let chained = match original.split_once('/') {
        Some((first, _)) => looks_like_size(first),
        None => SIZE_TOKEN.is_match(original),
    };
    if chained {
        return Err(KeyError::Chained(original.to_owned()));
    }
    Ok(DerivativeKey { size, format, original: original.to_owned() })
}

pub use keyspace::encode_key_path;

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn size_case(token: &str, expected: Result<Size, ()>) {
        let got = parse_size(token, 4096).map_err(|_| ());
        assert_eq!(got, expected, "size token {token:?}");
    }

    #[test]
    fn size_tokens() {
        let ok = |width, height| Ok(Size::Box { width, height });
        size_case("300x300", ok(300, 300));
        size_case("1x1", ok(1, 1));
        size_case("4096x4096", ok(4096, 4096));
        size_case("640x", Ok(Size::Width(640)));
        size_case("x200", Ok(Size::Height(200)));
        size_case("4097x1", Err(()));
        size_case("0x10", Err(()));
        size_case("010x10", Err(()));
        size_case("+10x10", Err(()));
        size_case("-10x10", Err(()));
        size_case("10X10", Err(()));
        size_case("x", Err(()));
        size_case("", Err(()));
        size_case("10x10x", Err(()));
        size_case("a10x10", Err(()));
        size_case("10x10 ", Err(()));
        size_case("10x10\n", Err(()));
        size_case("99999999999999999999999x1", Err(()));
        size_case("１0x10", Err(()));
    }

    #[test]
    fn size_display_round_trips() {
        for token in ["300x300", "640x", "x200"] {
            assert_eq!(parse_size(token, 4096).unwrap().to_string(), token);
        }
    }

    #[track_caller]
    fn key_case(key: &str, expected: Result<(&str, &str), KeyError>) {
        let got = parse_derivative_key(key, 4096);
        match (got, expected) {
            (Ok(dk), Ok((size, original))) => {
                assert_eq!(dk.segment().to_string(), size, "{key:?}");
                assert_eq!(dk.original, original, "{key:?}");
                assert_eq!(dk.to_string(), key);
            }
            (Err(e), Err(want)) => assert_eq!(e, want, "{key:?}"),
            (got, want) => panic!("{key:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn derivative_keys() {
        key_case("300x300/photos/cat.jpg", Ok(("300x300", "photos/cat.jpg")));
        key_case("640x/a.png", Ok(("640x", "a.png")));
        key_case("x200/a.png", Ok(("x200", "a.png")));
        key_case("300x300/my cat+dog 100%.jpg", Ok(("300x300", "my cat+dog 100%.jpg")));
        key_case("300x300/ảnh/고양이.jpg", Ok(("300x300", "ảnh/고양이.jpg")));
        key_case("300x300/a..b/c.jpg", Ok(("300x300", "a..b/c.jpg")));
        key_case("300x300/.hidden", Ok(("300x300", ".hidden")));
        key_case("300x300/photos/300x300.jpg", Ok(("300x300", "photos/300x300.jpg")));
        key_case("300x300/photos/640x/a.jpg", Ok(("300x300", "photos/640x/a.jpg")));
    }

    #[test]
    fn invalid_derivative_keys() {
        key_case("300x300/300x300/a.jpg", Err(KeyError::Chained("300x300/a.jpg".into())));
        key_case("300x300/x20/a.jpg", Err(KeyError::Chained("x20/a.jpg".into())));
        key_case("300x300/99999x1/a.jpg", Err(KeyError::Chained("99999x1/a.jpg".into())));
        key_case("300x300//a.jpg", Err(KeyError::EmptySegment));
        key_case("/300x300/a.jpg", Err(KeyError::EmptySegment));
        key_case("300x300/a/", Err(KeyError::EmptySegment));
        key_case("300x300/", Err(KeyError::EmptySegment));
        key_case("300x300/../a.jpg", Err(KeyError::DotSegment));
        key_case("300x300/a/./b.jpg", Err(KeyError::DotSegment));
        key_case("300x300/a\\b.jpg", Err(KeyError::Backslash));
        key_case("300x300/a\u{0}b.jpg", Err(KeyError::ControlCharacter));
        key_case("300x300/a\nb.jpg", Err(KeyError::ControlCharacter));
        key_case("300x300/a\u{7f}b.jpg", Err(KeyError::ControlCharacter));
        key_case("300x300", Err(KeyError::MissingOriginal));
        key_case("photos/cat.jpg", Err(KeyError::Size(SizeError::Malformed("photos".into()))));
        key_case(
            "300x300abc/cat.jpg",
            Err(KeyError::Size(SizeError::Malformed("300x300abc".into()))),
        );
        let long = format!("300x300/{}", "a".repeat(MAX_KEY_BYTES));
        key_case(&long, Err(KeyError::TooLong(long.len())));
        let fits = format!("300x300/{}", "a".repeat(MAX_KEY_BYTES - 8));
        assert!(parse_derivative_key(&fits, 4096).is_ok());
    }

    #[test]
    fn formats_in_the_size_segment() {
        key_case("640x.avif/photos/cat.jpg", Ok(("640x.avif", "photos/cat.jpg")));
        key_case("300x300.webp/a.png", Ok(("300x300.webp", "a.png")));
        key_case("x200.jpeg/a.png", Ok(("x200.jpeg", "a.png")));
        key_case("x200.png/a.gif", Ok(("x200.png", "a.gif")));
        key_case("x200.gif/a.webp", Ok(("x200.gif", "a.webp")));
        let dk = parse_derivative_key("640x.avif/photos/cat.jpg", 4096).unwrap();
        assert_eq!((dk.size, dk.format), (Size::Width(640), Some(Format::Avif)));
        assert_eq!(parse_derivative_key("640x/cat.jpg", 4096).unwrap().format, None);
        // An original named like a size with a format is an original.
        key_case("640x/300x300.png", Ok(("640x", "300x300.png")));
        key_case("640x.webp/300x300.webp", Ok(("640x.webp", "300x300.webp")));
        for name in Format::ALL.map(Format::name) {
            let key = format!("10x10.{name}/a.jpg");
            assert_eq!(parse_derivative_key(&key, 4096).unwrap().to_string(), key);
        }
    }

    #[test]
    fn unknown_or_uncanonical_formats_and_chains_are_refused() {
        for segment in [
            "640x.jpg",
            "640x.AVIF",
            "640x.avif.webp",
            "640x.",
            "640x.avif ",
            "640x.tiff",
            "640x.av1f",
            ".avif",
            "640x..avif",
        ] {
            let key = format!("{segment}/a.jpg");
            assert!(
                matches!(
                    parse_derivative_key(&key, 4096),
                    Err(KeyError::Size(SizeError::UnknownFormat(_) | SizeError::Malformed(_)))
                ),
                "{key:?}"
            );
        }
        // A known format on a bad size is a bad size.
        assert!(matches!(
            parse_derivative_key("5000x10.avif/a.jpg", 4096),
            Err(KeyError::Size(SizeError::OutOfRange { .. }))
        ));
        key_case("300x300/640x.webp/a.jpg", Err(KeyError::Chained("640x.webp/a.jpg".into())));
        key_case("300x300.avif/x20/a.jpg", Err(KeyError::Chained("x20/a.jpg".into())));
        key_case("300x300/640x.evil/a.jpg", Err(KeyError::Chained("640x.evil/a.jpg".into())));
        key_case("300x300.avif/300x300", Err(KeyError::Chained("300x300".into())));
    }

    proptest::proptest! {
        /// Every size with or without each format spells one key that parses back to it; any
        /// other suffix is refused.
        #[test]
        fn size_segments_round_trip_and_other_suffixes_are_refused(
            w in 1u32..=4096,
            h in 1u32..=4096,
            shape in 0u8..3,
            format in proptest::option::of(proptest::sample::select(Format::ALL.to_vec())),
            other in "[A-Za-z0-9]{1,6}",
        ) {
            let size = match shape {
                0 => Size::Box { width: w, height: h },
                1 => Size::Width(w),
                _ => Size::Height(h),
            };
            let segment = SizeSegment { size, format };
            let key = format!("{segment}/photos/a.jpg");
            let parsed = parse_derivative_key(&key, 4096).unwrap();
            proptest::prop_assert_eq!(parsed.segment(), segment);
            proptest::prop_assert_eq!(parsed.to_string(), key);
            if Format::from_name(&other).is_none() {
                let refused = format!("{size}.{other}/a.jpg");
                proptest::prop_assert!(parse_derivative_key(&refused, 4096).is_err(), "{}", refused);
                // And as the start of an original it is a chain.
                let chained = format!("{segment}/{size}.{other}/a.jpg");
                proptest::prop_assert!(
                    matches!(parse_derivative_key(&chained, 4096), Err(KeyError::Chained(_))),
                    "{}", chained
                );
            }
        }
    }

    #[test]
    fn dimension_above_max_is_refused() {
        assert!(matches!(
            parse_derivative_key("5000x10/a.jpg", 4096),
            Err(KeyError::Size(SizeError::OutOfRange { value: 5000, .. }))
        ));
        assert!(parse_derivative_key("5000x10/a.jpg", 8000).is_ok());
    }
}
