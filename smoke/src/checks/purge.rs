//! When an original changes: replacing it must take its sizes with it, in the bucket (S3's
//! event, the queue, the events function) and at the edge (the invalidation). Only a real
//! deployment shows the whole path: how S3 writes the key in its event, whether the
//! invalidation's spelling of the path matches what CloudFront cached, how long it takes.

use std::time::{Duration, Instant};

use super::{derivative, names, path, CheckError, Findings, Smoke, Verdict};

/// A key with a space, a `+` and a non-ASCII letter: S3 form-encodes keys in its events,
/// and the invalidation must name the path as viewers spell it.
pub const NAME: &str = "thay ảnh+1.jpg";

/// The replacement's colour: nothing like the gradient of the first version, so its size's
/// bytes differ from the first version's.
const GREEN: [u8; 3] = [30, 200, 40];

/// How often the bucket and the site are asked again while waiting.
const POLL: Duration = Duration::from_millis(250);

/// Upload an original, make a size and see it cached; replace the original; then wait for
/// the size to leave the bucket (or be remade from the new version), and for the site to
/// serve the new version's size.
pub async fn replaced_original(smoke: &mut Smoke<'_>) {
    let verdict = replaced(smoke).await;
    smoke.record(names::PURGE, verdict);
}

async fn replaced(smoke: &Smoke<'_>) -> Verdict {
    let original = smoke.public_key(NAME);
    let size = smoke.options.size;
    let key = derivative(size, &original);
    let url = smoke.url(&path(&key));
    let mut findings = Findings::default();
    smoke.bucket.put(&original, smoke.photo.clone(), "image/jpeg").await?;
    let first = smoke.web.follow(&url, None).await?;
    let old = first.last().body.clone();
    if first.last().status != 200 || crate::fixture::inspect(&old).is_none() {
        findings.expect(false, format!("the first version's size, got {}", first.describe()));
        return Ok(findings.verdict());
    }
    // Asked again so CloudFront holds it.
    smoke.web.get(&url, None).await?;
    let made = smoke.bucket.head(&key).await?;
    findings.expect(made.is_some(), format!("{key} stored after the miss"));

    let replacement =
        crate::fixture::solid(GREEN).map_err(|e| CheckError::Fixture(e.to_string()))?;
    smoke.bucket.put(&original, replacement, "image/jpeg").await?;
    let replaced_at = Instant::now();
    let deadline = replaced_at + smoke.options.purge_wait;

    // The bucket: the old size deleted (or already remade from the new version).
    let mut purged = None;
    while Instant::now() < deadline {
        match smoke.bucket.head(&key).await? {
            None => {
                purged = Some(replaced_at.elapsed());
                break;
            }
            Some(stored)
                if stored.content_length != made.as_ref().and_then(|m| m.content_length) =>
            {
                purged = Some(replaced_at.elapsed());
                break;
            }
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
    match purged {
        Some(after) => {
            findings.saw(format!("the old size left the bucket after {:.1} s", after.as_secs_f64()))
        }
        None => {
            findings.expect(
                false,
                format!(
                    "the old size purged from the bucket within {} s (is the events function deployed, and the bucket's notification to its queue?)",
                    smoke.options.purge_wait.as_secs()
                ),
            );
            return Ok(findings.verdict());
        }
    }
    // The site: the new version's size, once the invalidation took effect.
    let mut served = None;
    let mut last = String::new();
    while Instant::now() < deadline {
        let chain = smoke.web.follow(&url, None).await?;
        let reply = chain.last();
        let image = crate::fixture::inspect(&reply.body);
        let same = reply.body == old;
        last = format!(
            "{}, X-Cache {}, {}",
            chain.describe(),
            reply.x_cache(),
            if same { "the first version's bytes" } else { "other bytes" }
        );
        // The new version's size: an image of the same dimensions, not the cached bytes.
        let fits = image.is_some_and(|(_, w, h)| {
            crate::fixture::inspect(&old).is_some_and(|(_, ow, oh)| (w, h) == (ow, oh))
        });
        if reply.status == 200 && fits && !same {
            served = Some(replaced_at.elapsed());
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    match served {
        Some(after) => findings.saw(format!("the site served the new size after {:.1} s", after.as_secs_f64())),
        None => findings.expect(
            false,
            format!(
                "the new version's size served within {} s; still the old one or no image ({last}): the invalidation did not reach the path as cached",
                smoke.options.purge_wait.as_secs()
            ),
        ),
    }
    Ok(findings.verdict())
}
