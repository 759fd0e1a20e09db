//! Delivery: a miss becomes a derivative (through S3's routing rule and the resizer's 307 in
//! redirect mode, through the origin group's failover in failover mode), the next request
//! is served without the resizer, a missing original gets the status the chain depends on,
//! and no miss is answered from CloudFront's cache once the object exists.

use keyspace::DeliveryMode;

use super::{check_made, derivative, names, path, Findings, Smoke};
use crate::report::Outcome;

/// `GET /{size}/smoke/{run}/photo.jpg`, followed: redirect `307 -> 307 -> 200` (the first
/// Location under `/resize/`), failover `200`; a JPEG of the size; stored in the bucket.
pub async fn miss(smoke: &mut Smoke<'_>) {
    let verdict = async {
        let size = smoke.options.size;
        let key = derivative(size, &smoke.public_key("photo.jpg"));
        let chain = smoke.web.follow(&smoke.url(&path(&key)), None).await?;
        let mut findings = Findings::default();
        if smoke.options.mode == DeliveryMode::Redirect && chain.hops.len() > 1 {
            let location = chain.hops[0].header("location").unwrap_or_default();
            findings.expect(
                location.contains("/resize/"),
                format!("the first redirect to /resize/..., got Location {location:?}"),
            );
        }
        check_made(smoke, &mut findings, "", &chain, size, &key).await?;
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::MISS, verdict);
}

/// The same path again, not followed: `200` at once (no redirect, no Lambda), with
/// CloudFront's X-Cache reported.
pub async fn hit(smoke: &mut Smoke<'_>) {
    let verdict = async {
        let size = smoke.options.size;
        let key = derivative(size, &smoke.public_key("photo.jpg"));
        let reply = smoke.web.get(&smoke.url(&path(&key)), None).await?;
        let mut findings = Findings::default();
        findings.saw(format!("{} directly, X-Cache: {}", reply.status, reply.x_cache()));
        findings.expect(
            reply.status == 200,
            format!("200 without a redirect, got {}", reply.summary()),
        );
        if reply.status == 200 {
            super::check_image(&mut findings, &reply, Some(size));
        }
        if reply.status == 200 && !reply.is_cache_hit() {
            // Another server of the same edge location may answer the second request;
            // what matters is that no redirect and no Lambda were involved.
            findings
                .saw("not a cache hit (another edge server may have answered: request it again)");
        }
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::HIT, verdict);
}

/// A sized path whose original does not exist. Redirect: the first hop must be the
/// routing rule's 307 to `/resize/` (S3 answered 404; a 403 means the bucket policy does
/// not let the website's readers list the bucket, and no miss ever reaches the resizer).
/// Failover: the resizer's `404 original-not-found` (the bucket's 403 or 404 failed over).
pub async fn missing_key(smoke: &mut Smoke<'_>) {
    let verdict = async {
        let key = derivative(smoke.options.size, &smoke.public_key("missing.jpg"));
        let chain = smoke.web.follow(&smoke.url(&path(&key)), None).await?;
        let first = &chain.hops[0];
        let last = chain.last();
        let mut findings = Findings::default();
        findings.saw(chain.describe_with_code());
        match smoke.options.mode {
            DeliveryMode::Redirect => {
                let location = first.header("location").unwrap_or_default();
                if first.status == 307 && location.contains("/resize/") {
                    findings.saw("S3 answered 404: the routing rule's 307 to /resize/");
                } else if first.status == 403 {
                    findings.expect(
                        false,
                        "S3 answered 403 for a missing key, on which the routing rule never \
                         fires: the bucket policy must grant s3:ListBucket to the website's \
                         readers (template.yaml's MissingKeysAre404)",
                    );
                } else {
                    findings.expect(
                        false,
                        format!(
                            "the routing rule's 307 to /resize/, got {} Location {location:?}",
                            first.status
                        ),
                    );
                }
                findings.expect(last.status != 200, "no image for a missing original");
            }
            DeliveryMode::Failover => {
                findings.expect(
                    chain.statuses() == [404]
                        && last.json_code().as_deref() == Some("original-not-found"),
                    "the resizer's 404 original-not-found",
                );
            }
        }
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::MISSING_KEY, verdict);
}

/// No miss is answered from CloudFront's cache. Redirect: a missing original's sized path
/// twice, not followed: two 307s, neither a cache hit; then the original is uploaded and
/// the same path must make it. Failover: the resizer's `404 original-not-found` in place of
/// the 307s, which may be cached for its `max-age` (ERROR_CACHE_SECONDS, at most an hour):
/// the first is no hit, its Cache-Control `no-store` or `max-age` within that bound, and
/// once the original is uploaded a size not asked for while it was missing is made. Then
/// the first check's derivative is deleted and `/resize/{size}/...` asked directly: 307 and
/// the derivative exists again (redirect), or a size never requested: 200 (failover).
pub async fn never_cached(smoke: &mut Smoke<'_>) {
    let verdict = async {
        let mode = smoke.options.mode;
        let size = smoke.options.second_size;
        let late = smoke.public_key("late.jpg");
        let late_derivative = derivative(size, &late);
        let late_url = smoke.url(&path(&late_derivative));
        let mut findings = Findings::default();
        let mut firsts = Vec::new();
        for attempt in 0..2 {
            let reply = smoke.web.get(&late_url, None).await?;
            let cache_control = reply.header("cache-control").unwrap_or_else(|| "-".into());
            firsts.push(format!("{} ({}, {cache_control})", reply.status, reply.x_cache()));
            match mode {
                DeliveryMode::Redirect => findings.expect(
                    reply.status == 307 && !reply.is_cache_hit(),
                    format!(
                        "307 not from the cache for a missing original, got {} X-Cache {}",
                        reply.status,
                        reply.x_cache()
                    ),
                ),
                DeliveryMode::Failover => {
                    findings.expect(
                        reply.status == 404 && (attempt > 0 || !reply.is_cache_hit()),
                        format!(
                            "404 for a missing original, the first not from the cache, got {} \
                             X-Cache {}",
                            reply.status,
                            reply.x_cache()
                        ),
                    );
                    findings.expect(
                        briefly_cached(&cache_control),
                        format!("a missing original's 404 is no-store or briefly cached, got {cache_control}"),
                    );
                }
            }
        }
        findings.saw(format!("missing original: {}", firsts.join(", ")));
        smoke.bucket.put(&late, smoke.photo.clone(), "image/jpeg").await?;
        let asked = match mode {
            DeliveryMode::Redirect => late_derivative.clone(),
            // The size asked while missing may stay cached as 404 for its max-age.
            DeliveryMode::Failover => derivative(smoke.options.size, &late),
        };
        let chain = smoke.web.follow(&smoke.url(&path(&asked)), None).await?;
        findings.saw(format!("uploaded, {asked}: {}", chain.describe()));
        findings.expect(
            chain.statuses() == smoke.miss_statuses(),
            format!("the miss made once the original exists, got {}", chain.last().summary()),
        );

        let made = derivative(smoke.options.size, &smoke.public_key("photo.jpg"));
        smoke.bucket.delete(&made).await?;
        match mode {
            DeliveryMode::Redirect => {
                let resize = smoke.url(&format!("/resize{}", path(&made)));
                let reply = smoke.web.get(&resize, None).await?;
                let stored = smoke.bucket.exists(&made).await?;
                findings.saw(format!(
                    "derivative deleted, /resize: {} Cache-Control {}, {}",
                    reply.summary(),
                    reply.header("cache-control").unwrap_or_else(|| "-".into()),
                    if stored { "made again" } else { "not made" }
                ));
                findings
                    .expect(reply.status == 307, "/resize answers 307 for a deleted derivative");
                findings.expect(stored, format!("{made} made again"));
            }
            DeliveryMode::Failover => {
                let other = derivative(size, &smoke.public_key("photo.jpg"));
                let chain = smoke.web.follow(&smoke.url(&path(&other)), None).await?;
                let mut made_again = Findings::default();
                check_made(smoke, &mut made_again, "", &chain, size, &other).await?;
                let (outcome, seen) = made_again.verdict();
                findings.saw(format!("derivative deleted, size {size} never requested: {seen}"));
                findings.expect(
                    outcome == Outcome::Pass,
                    format!("a new size made after the delete ({seen})"),
                );
                findings.saw("no redirect to cache in failover mode");
            }
        }
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::NEVER_CACHED, verdict);
}

/// `no-store`, or a `max-age` of at most an hour (ERROR_CACHE_SECONDS' bound).
fn briefly_cached(cache_control: &str) -> bool {
    cache_control == "no-store"
        || cache_control
            .strip_prefix("max-age=")
            .and_then(|age| age.parse::<u64>().ok())
            .is_some_and(|age| age <= 3600)
}
