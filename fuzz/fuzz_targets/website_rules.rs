//! The S3 website emulator's routing rules: arbitrary website-configuration JSON and an
//! arbitrary request path.
//!
//! Input: a selector byte (the lookup's error code and the Location encoding), then
//! `{json}\0{requested path}`. Invariants: nothing panics; a configuration that validates
//! routes every key to a 3xx whose Location is `{protocol}://{host}/...` with a protocol and
//! host the rule or the request gave; rules with an error-code condition never match
//! before the lookup; the index document is appended only to empty keys and keys ending
//! in `/`.
#![no_main]

use devserver::website::{Origin, WebsiteConfiguration};
use keyspace::routing::decode_path;
use keyspace::LocationEncoding;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let (json, requested) = text.split_once('\0').unwrap_or((text, "300x300/a.jpg"));
    let error_code = [None, Some(403), Some(404), Some(500), Some(418)][usize::from(selector % 5)];
    let encoding = LocationEncoding::ALL[usize::from(selector / 5 % 4)];

    let config = match WebsiteConfiguration::from_template(json, "https", "resizer.example:9000") {
        Ok(c) => c,
        Err(_) => match WebsiteConfiguration::parse(json) {
            Ok(c) => c,
            Err(_) => return,
        },
    };
    let key = decode_path(requested).unwrap_or_else(|| requested.to_owned());
    let object = config.object_key(&key);
    if key.is_empty() || key.ends_with('/') {
        assert!(object.starts_with(&key) && object.len() > key.len(), "index document appended");
    } else {
        assert_eq!(object, key);
    }
    let origin = Origin { protocol: "http", host: "bucket.example", requested, encoding };
    for code in [None, error_code] {
        let Some(to) = config.route(&key, code, origin) else { continue };
        assert!((300..=399).contains(&to.status), "{to:?}");
        let (protocol, after) = to.location.split_once("://").expect("an absolute Location");
        assert!(protocol == "http" || protocol == "https", "{to:?}");
        assert!(after.contains('/'), "{to:?}");
        if code.is_none() {
            let rule = config
                .routing_rules
                .iter()
                .find(|r| {
                    r.condition.as_ref().is_none_or(|c| {
                        c.http_error_code_returned_equals.is_none()
                            && c.key_prefix_equals.as_deref().is_none_or(|p| key.starts_with(p))
                    })
                })
                .expect("a rule matched before the lookup, so one has no error-code condition");
            let _ = rule;
        }
    }
});
