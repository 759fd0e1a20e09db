//! Keys through the redirect: how the S3 website writes a key into its routing rule's
//! Location (AWS does not document it; the resizer's RedirectKeyEncoding must match it),
//! and keys with the characters that matter made under their own names, or refused with
//! nothing stored when the redirect cannot carry them; and what S3 makes of a raw `+` in a
//! path.

use keyspace::routing::{carried, location_key};
use keyspace::{encode_key_path, DeliveryMode, KeyDecoding, LocationEncoding};

use super::{check_image, derivative, names, path, Findings, Smoke};
use crate::fixture::{self, PHOTO_SIZE};
use crate::report::Outcome;

/// Originals under `smoke/{run}/chars/`, named as users name photos: a space, `+`, a `%`
/// that is no escape and one that looks like one, `&` and `=`, `#`, `?`, Vietnamese and
/// Korean letters.
pub const NAMES: [&str; 9] = [
    "a b.jpg",
    "a+b.jpg",
    "100% sure.jpg",
    "100%25.jpg",
    "a&b=c.jpg",
    "a#b.jpg",
    "why?not.jpg",
    "ảnh đẹp.jpg",
    "고양이 사진.jpg",
];

/// Which reading of S3's redirect wrote `location` for the derivative `key`, requested as
/// `requested` (the path as sent, without its leading `/`): the part after `/resize/`
/// compared with what each reading writes (`a%20b` once, `a%2520b` twice, `a+b` form,
/// `a b` raw).
pub fn reading_of(location: &str, key: &str, requested: &str) -> Option<LocationEncoding> {
    let (_, written) = location.split_once("/resize/")?;
    LocationEncoding::ALL.into_iter().find(|e| location_key(*e, key, requested) == written)
}

/// Redirect mode: `GET /{size}/smoke/{run}/a%20b.jpg` (missing), not followed; the first
/// Location's key says how S3 writes keys: `a%20b` once, `a%2520b` twice, `a+b` form, `a b`
/// raw. INFO, with the RedirectKeyEncoding to deploy; [`special_characters`] then expects
/// what that reading carries.
pub async fn encoding(smoke: &mut Smoke<'_>) {
    if smoke.options.mode == DeliveryMode::Failover {
        let seen =
            "failover mode puts no key in a Location (CloudFront forwards the viewer's path)";
        smoke.report.push(names::KEY_ENCODING, Outcome::Skip, seen);
        return;
    }
    let key = derivative(smoke.options.size, &smoke.public_key("a b.jpg"));
    let requested = encode_key_path(&key);
    let reply = match smoke.web.get(&smoke.url(&format!("/{requested}")), None).await {
        Ok(reply) => reply,
        Err(e) => {
            smoke.record(names::KEY_ENCODING, Err(e.into()));
            return;
        }
    };
    let location = reply.header("location").unwrap_or_default();
    let reading = reading_of(&location, &key, &requested);
    if reply.status == 307 {
        smoke.encoding = reading;
    }
    let seen = encoding_seen(reply.status, &location, reading, smoke.options.key_decoding);
    smoke.report.push(names::KEY_ENCODING, Outcome::Info, seen);
}

/// The key-encoding row's text: what S3 was seen to do and the RedirectKeyEncoding to set
/// when the stack runs `decoding`.
pub fn encoding_seen(
    status: u16,
    location: &str,
    reading: Option<LocationEncoding>,
    decoding: KeyDecoding,
) -> String {
    match (status, reading) {
        (307, Some(reading)) => {
            let how = match reading {
                LocationEncoding::Once => "percent-encoded once",
                LocationEncoding::Twice => "percent-encoded twice",
                LocationEncoding::Form => "form-encoded (a space as '+', a '+' as %2B)",
                LocationEncoding::Raw => "raw",
            };
            let advice = if decoding == KeyDecoding::Exactly(reading) {
                format!("RedirectKeyEncoding={reading} already matches")
            } else {
                format!(
                    "set RedirectKeyEncoding={reading} (one S3 read per miss{})",
                    if reading == LocationEncoding::Raw {
                        "; names with '#', '%XX' or a trailing space stay refused"
                    } else {
                        ", and the signer then accepts upload names with '#', '%XX' and '?'"
                    }
                )
            };
            format!("Location {location:?}: S3 writes keys {how}; {advice}")
        }
        (307, None) => format!(
            "Location {location:?} matches no known reading (once, twice, form, raw): keep \
             RedirectKeyEncoding=auto"
        ),
        (status, _) => {
            format!("{status} without a usable redirect (see the missing-key row): reading unknown")
        }
    }
}

/// What a name's request came to.
enum Arrival {
    /// Made under its own name and served.
    Made,
    /// Refused with a 4xx, nothing stored.
    Refused(u16),
    /// Anything else (a 5xx, an image stored under another name, ...).
    Wrong(String),
}

/// Every name of [`NAMES`] requested at `/{size}/smoke/{run}/chars/{name}` (percent-encoded,
/// as a page writes it) and followed. A name must arrive (be made under its own name) when
/// the redirect carries it under the reading S3 was seen to use (every name in failover
/// mode); otherwise it must fail with a 4xx and store nothing. When the reading is unknown,
/// the names carried under every reading must arrive and the others may go either way.
pub async fn special_characters(smoke: &mut Smoke<'_>) {
    let size = smoke.options.size;
    let mode = smoke.options.mode;
    let decoding = smoke.options.key_decoding;
    let prefix = derivative(size, &smoke.public_key("chars/"));
    let mut made = Vec::new();
    let mut refused = Vec::new();
    let mut problems = Vec::new();
    for name in NAMES {
        let key = derivative(size, &smoke.public_key(&format!("chars/{name}")));
        // Some(true): must arrive; Some(false): must not; None: either.
        let expected = match (mode, smoke.encoding) {
            (DeliveryMode::Failover, _) => Some(true),
            (DeliveryMode::Redirect, Some(reading)) => {
                Some(carried(&key, mode, KeyDecoding::Exactly(reading), false).is_ok())
            }
            (DeliveryMode::Redirect, None) => {
                carried(&key, mode, decoding, false).is_ok().then_some(true)
            }
        };
        let arrival = match arrive(smoke, &key, &prefix).await {
            Ok(arrival) => arrival,
            Err(e) => Arrival::Wrong(e.to_string()),
        };
        let label = format!("{name:?}");
        match (arrival, expected) {
            (Arrival::Made, Some(true) | None) => made.push(label),
            (Arrival::Refused(status), Some(false) | None) => {
                refused.push(format!("{label} {status}"))
            }
            (Arrival::Made, Some(false)) => {
                problems.push(format!("{label} arrived, but the reading seen should lose it"))
            }
            (Arrival::Refused(status), Some(true)) => {
                problems.push(format!("{label} refused ({status}), expected to be made"))
            }
            (Arrival::Wrong(what), _) => problems.push(format!("{label}: {what}")),
        }
    }
    let mut seen =
        if made.is_empty() { "none made".to_owned() } else { format!("made: {}", made.join(", ")) };
    if !refused.is_empty() {
        seen.push_str(&format!(
            "; refused, nothing stored (the redirect cannot carry them): {}",
            refused.join(", ")
        ));
    }
    match (mode, decoding, smoke.encoding) {
        (DeliveryMode::Redirect, KeyDecoding::Exactly(set), Some(seen_reading))
            if set != seen_reading =>
        {
            problems.push(format!("RedirectKeyEncoding={set} but S3 writes keys {seen_reading}"));
        }
        // Under `auto` the resizer takes the first reading whose original exists, which
        // for two names that differ by a space and a `+` may be the other name's.
        (DeliveryMode::Redirect, KeyDecoding::Auto, Some(seen_reading)) if !problems.is_empty() => {
            problems.push(format!(
                "RedirectKeyEncoding=auto may read a key under another reading than S3's: set \
                 RedirectKeyEncoding={seen_reading}"
            ));
        }
        _ => {}
    }
    let (outcome, seen) = if problems.is_empty() {
        (Outcome::Pass, seen)
    } else {
        (Outcome::Fail, format!("{} [seen: {seen}]", problems.join("; ")))
    };
    smoke.report.push(names::SPECIAL_KEYS, outcome, seen);
}

/// Requests the derivative `key` and says what came of it; `prefix` is listed before and
/// after to see whether anything was stored under another name.
async fn arrive(smoke: &Smoke<'_>, key: &str, prefix: &str) -> Result<Arrival, super::CheckError> {
    let before = smoke.bucket.list(prefix).await?;
    let chain = smoke.web.follow(&smoke.url(&path(key)), None).await?;
    let after = smoke.bucket.list(prefix).await?;
    let new: Vec<&String> = after.iter().filter(|k| !before.contains(k)).collect();
    let last = chain.last();
    if chain.statuses() == smoke.miss_statuses() {
        let mut findings = super::Findings::default();
        check_image(&mut findings, last, Some(smoke.options.size));
        let stored = smoke.bucket.exists(key).await?;
        findings.expect(stored, "not stored under its own name");
        findings.expect(new.iter().all(|k| *k == key), format!("stored {new:?}"));
        return Ok(match findings.verdict() {
            (Outcome::Pass, _) => Arrival::Made,
            (_, seen) => Arrival::Wrong(seen),
        });
    }
    if (400..500).contains(&last.status) && new.is_empty() {
        return Ok(Arrival::Refused(last.status));
    }
    let stored =
        if new.is_empty() { "nothing stored".to_owned() } else { format!("stored {new:?}") };
    Ok(Arrival::Wrong(format!("{}, {stored}", chain.describe_with_code())))
}

/// The original [`raw_plus`] asks for with a raw `+`, `smoke/{run}/a+b.jpg`.
pub const PLUS_NAME: &str = "a+b.jpg";

/// `GET /{size}/smoke/{run}/a+b.jpg` with the `+` raw (as a page that does not encode its
/// URLs writes it), followed. S3 is known to read a raw `+` in a path as a space: then the
/// sized path misses on `a b.jpg` (redirect mode: nothing is made; failover: the function,
/// which reads `+` literally, makes it, and every request that is not a cache hit goes to
/// it again). The original `/smoke/{run}/a+b.jpg`, asked with the raw `+` too, says which
/// S3 does (200: literally). Failover: the sized path asked a second time, hit or not.
/// INFO; FAIL only when something is stored under another key than `{size}/.../a+b.jpg`.
pub async fn raw_plus(smoke: &mut Smoke<'_>) {
    let verdict = async {
        let size = smoke.options.size;
        let original = smoke.public_key(PLUS_NAME);
        let key = derivative(size, &original);
        let prefix = derivative(size, &smoke.public_key(""));
        let before = smoke.bucket.list(&prefix).await?;
        // The key is hex, `/`, unreserved characters and the `+`: sent as it is.
        let sized_url = smoke.url(&format!("/{key}"));
        let chain = smoke.web.follow(&sized_url, None).await?;
        let after = smoke.bucket.list(&prefix).await?;
        let made = after.contains(&key);
        let wrong: Vec<&String> =
            after.iter().filter(|k| !before.contains(k) && **k != key).collect();
        let original_reply = smoke.web.get(&smoke.url(&format!("/{original}")), None).await?;
        let literal = original_reply.status == 200
            && fixture::inspect(&original_reply.body).is_some_and(|(_, w, h)| (w, h) == PHOTO_SIZE);
        let mut findings = Findings::default();
        findings.saw(format!(
            "/{key}: {}, {}",
            chain.describe_with_code(),
            if made { format!("made as {key}") } else { "nothing made".to_owned() }
        ));
        findings.saw(format!(
            "/{original}: {} ({})",
            original_reply.summary(),
            if literal {
                "S3 reads a raw '+' literally".to_owned()
            } else {
                "S3 reads a raw '+' as a space, a known S3 quirk: pages must write '+' as %2B, \
                 as the project's encoders do"
                    .to_owned()
            }
        ));
        if smoke.options.mode == DeliveryMode::Failover && chain.last().status == 200 {
            let again = smoke.web.get(&sized_url, None).await?;
            findings.saw(format!(
                "again: {} X-Cache {} ({})",
                again.status,
                again.x_cache(),
                if again.is_cache_hit() {
                    "a cache hit"
                } else {
                    "not from the cache: to the bucket and, on its miss, to the function again"
                }
            ));
        }
        findings.expect(
            wrong.is_empty(),
            format!("nothing stored but {key}, got {wrong:?} (a key read wrongly)"),
        );
        Ok(match findings.verdict() {
            (Outcome::Pass, seen) => (Outcome::Info, seen),
            failed => failed,
        })
    }
    .await;
    smoke.record(names::RAW_PLUS, verdict);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reading_is_recognised_in_a_location() {
        let key = "320x/smoke/r/a b.jpg";
        let requested = encode_key_path(key);
        let case = |location: &str| reading_of(location, key, &requested);
        assert_eq!(case("http://cdn/resize/320x/smoke/r/a%20b.jpg"), Some(LocationEncoding::Once));
        assert_eq!(case("/resize/320x/smoke/r/a%2520b.jpg"), Some(LocationEncoding::Twice));
        assert_eq!(case("https://cdn/resize/320x/smoke/r/a+b.jpg"), Some(LocationEncoding::Form));
        assert_eq!(case("https://cdn/resize/320x/smoke/r/a b.jpg"), Some(LocationEncoding::Raw));
        assert_eq!(case("https://cdn/resize/320x/smoke/r/a_b.jpg"), None);
        assert_eq!(case("https://cdn/320x/smoke/r/a%20b.jpg"), None);
    }

    #[test]
    fn a_form_encoded_location_recommends_form() {
        let seen = encoding_seen(
            307,
            "https://cdn/resize/320x/smoke/r/a+b.jpg",
            Some(LocationEncoding::Form),
            KeyDecoding::Auto,
        );
        assert!(seen.contains("S3 writes keys form-encoded"), "{seen}");
        assert!(seen.contains("set RedirectKeyEncoding=form"), "{seen}");
        let seen = encoding_seen(
            307,
            "https://cdn/resize/320x/smoke/r/a+b.jpg",
            Some(LocationEncoding::Form),
            KeyDecoding::Exactly(LocationEncoding::Form),
        );
        assert!(seen.contains("RedirectKeyEncoding=form already matches"), "{seen}");
        let seen = encoding_seen(307, "/resize/x", None, KeyDecoding::Auto);
        assert!(seen.contains("(once, twice, form, raw)"), "{seen}");
    }
}
