//! The key grammar and the key's trip through the S3 website's redirect.
//!
//! Input: one selector byte (the max dimension), then text. Invariants: nothing panics; a
//! size or derivative key that parses is spelled canonically (its `Display` is the input)
//! and re-parses to the same value; every non-raw reading of the redirect carries every key
//! back intact; parsed modes and encodings print as they were spelled.
#![no_main]

use keyspace::routing::{carried, decode_path, key_candidates, location_key, read_key};
use keyspace::{
    check_private_shape, encode_key_path, is_size_segment, wildcard_match, DeliveryMode,
    KeyDecoding, LocationEncoding, PrivatePaths,
};
use libfuzzer_sys::fuzz_target;
use resizer::key::{parse_derivative_key, parse_size, parse_size_segment};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let max = [1, 100, 4096, 65_535, u32::MAX][usize::from(selector % 5)];

    if let Ok(size) = parse_size(text, max) {
        assert_eq!(size.to_string(), text, "a size parses only from its canonical spelling");
        assert_eq!(parse_size(&size.to_string(), max), Ok(size));
        assert!(is_size_segment(text), "keyspace's size shape accepts what the grammar does");
    }
    if let Ok(segment) = parse_size_segment(text, max) {
        assert_eq!(segment.to_string(), text, "a size segment parses only from its spelling");
        assert!(is_size_segment(text), "keyspace's size shape accepts every format suffix");
    }
    if let Ok(key) = parse_derivative_key(text, max) {
        let spelled = key.to_string();
        assert_eq!(spelled, text);
        assert_eq!(parse_derivative_key(&spelled, max), Ok(key));
    }

    // The key's encodings: each non-raw reading gives the key back.
    let key = text;
    let once = encode_key_path(key);
    assert_eq!(decode_path(&once).as_deref(), Some(key), "decode(encode(k)) == k");
    for encoding in [LocationEncoding::Once, LocationEncoding::Twice, LocationEncoding::Form] {
        let location = location_key(encoding, key, &once);
        assert_eq!(
            read_key(encoding, &location, None).as_deref(),
            Some(key),
            "{encoding} reading of {location:?}"
        );
    }
    let raw = location_key(LocationEncoding::Raw, key, &once);
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw.as_str(), None),
    };
    let _ = read_key(LocationEncoding::Raw, path, query);
    for decoding in [KeyDecoding::Auto, KeyDecoding::Exactly(LocationEncoding::Raw)] {
        let found = key_candidates(path, query, decoding, Some(LocationEncoding::Form));
        let mut seen = std::collections::HashSet::new();
        assert!(found.iter().all(|(_, k)| seen.insert(k.clone())), "candidates are distinct");
        for private in [false, true] {
            let _ = carried(key, DeliveryMode::Redirect, decoding, private);
        }
    }
    for mode in [DeliveryMode::Failover] {
        assert_eq!(carried(key, mode, KeyDecoding::Auto, false), Ok(()), "failover carries all");
    }

    // Names round-trip through FromStr and Display.
    if let Ok(e) = text.parse::<LocationEncoding>() {
        assert_eq!(e.to_string(), text);
    }
    if let Ok(m) = text.parse::<DeliveryMode>() {
        assert_eq!(m.to_string(), text);
    }
    if let Ok(d) = text.parse::<KeyDecoding>() {
        let readings = d.readings(None);
        assert!(!readings.is_empty());
    }

    // Private paths and the guard's shape check.
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    let _ = check_private_shape(path, query);
    if let Ok(patterns) = PrivatePaths::parse(text) {
        let _ = patterns.is_private("/private/a.jpg");
        // CloudFront spells a path pattern with or without its leading `/`; parse strips
        // one, so `/` + each stored pattern is a spelling that parses back to the same list.
        let spelled: Vec<String> = patterns.patterns().iter().map(|p| format!("/{p}")).collect();
        let reparsed = PrivatePaths::parse(&spelled.join(","));
        assert_eq!(reparsed.as_ref(), Ok(&patterns), "patterns re-parse from their list");
    }
    if let Some((pattern, subject)) = text.split_once('\n') {
        let matched = wildcard_match(pattern, subject);
        if !pattern.contains(['*', '?']) {
            assert_eq!(matched, pattern == subject, "a pattern without wildcards is literal");
        }
        if pattern == "*" {
            assert!(matched);
        }
    }
});
