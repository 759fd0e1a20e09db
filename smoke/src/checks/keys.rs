//! Keys through the redirect: how the S3 website writes a key into its routing rule's
//! Location (AWS does not document it; the resizer's RedirectKeyEncoding must match it),
//! and keys with the characters that matter made under their own names, or refused with
//! nothing stored when the redirect cannot carry them.

use keyspace::routing::{carried, location_key};
use keyspace::{encode_key_path, DeliveryMode, KeyDecoding, LocationEncoding};

use super::{check_image, derivative, names, path, Smoke};
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

/// Redirect mode: `GET /{size}/smoke/{run}/a%20b.jpg` (missing), not followed; the first
/// Location's key says how S3 writes keys: `a%20b` once, `a%2520b` twice, `a b` raw. INFO,
/// with the RedirectKeyEncoding to deploy; [`special_characters`] then expects what that
/// reading carries.
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
    let written = location.split_once("/resize/").map(|(_, rest)| rest.to_owned());
    let reading = written.as_deref().and_then(|written| {
        LocationEncoding::ALL.into_iter().find(|e| location_key(*e, &key, &requested) == written)
    });
    let seen = match (reply.status, reading) {
        (307, Some(reading)) => {
            smoke.encoding = Some(reading);
            let how = match reading {
                LocationEncoding::Once => "percent-encoded once",
                LocationEncoding::Twice => "percent-encoded twice",
                LocationEncoding::Raw => "raw",
            };
            let advice = if smoke.options.key_decoding == KeyDecoding::Exactly(reading) {
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
            "Location {location:?} matches no known reading (once, twice, raw): keep \
             RedirectKeyEncoding=auto"
        ),
        (status, _) => {
            format!("{status} without a usable redirect (see the missing-key row): reading unknown")
        }
    };
    smoke.report.push(names::KEY_ENCODING, Outcome::Info, seen);
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
    if let (DeliveryMode::Redirect, KeyDecoding::Exactly(set), Some(seen_reading)) =
        (mode, decoding, smoke.encoding)
    {
        if set != seen_reading {
            problems.push(format!("RedirectKeyEncoding={set} but S3 writes keys {seen_reading}"));
        }
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
        findings.expect(stored, "stored under its own name");
        findings.expect(new.iter().all(|k| *k == key), format!("nothing else stored, got {new:?}"));
        return Ok(match findings.verdict() {
            (Outcome::Pass, _) => Arrival::Made,
            (_, seen) => Arrival::Wrong(seen),
        });
    }
    if (400..500).contains(&last.status) && new.is_empty() {
        return Ok(Arrival::Refused(last.status));
    }
    Ok(Arrival::Wrong(format!("{} ({}), stored {new:?}", chain.describe(), last.summary())))
}
