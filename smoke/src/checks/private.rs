//! Private paths as the distribution's trusted key group and path guard enforce them:
//! refused unsigned, opened by cookies for their gallery (every size, misses included),
//! closed to another gallery whatever the spelling, and `/resize` refusing a private key
//! without a signature.

use std::time::{SystemTime, UNIX_EPOCH};

use keyspace::DeliveryMode;
use signer::policy::Policy;

use super::{check_image, check_made, derivative, names, path, Findings, Smoke};
use crate::report::Outcome;

/// How long the run's cookies live: the run takes seconds.
const COOKIE_LIFETIME_SECS: u64 = 900;

/// Unsigned `GET /private/galleries/smoke-{run}/photo.jpg` and its sized path: 403 both.
pub async fn unsigned(smoke: &mut Smoke<'_>) {
    let verdict = async {
        let original = smoke.private_key(&smoke.gallery());
        let mut findings = Findings::default();
        for key in [original.clone(), derivative(smoke.options.size, &original)] {
            let reply = smoke.web.get(&smoke.url(&path(&key)), None).await?;
            findings.saw(format!("/{key}: {} ({})", reply.summary(), reply.x_cache()));
            findings.expect(reply.status == 403, format!("403 for unsigned /{key}"));
        }
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::PRIVATE_UNSIGNED, verdict);
}

/// Cookies signed with `--private-key` for `{SITE}/*private/galleries/smoke-{run}/*` (the
/// signer Lambda's gallery policy): the original 200, and its sized path made through the
/// chain (redirect: the signed `/resize/*/private/*` behaviour).
pub async fn signed(smoke: &mut Smoke<'_>) {
    let Some(signer) = &smoke.options.signer else {
        let seen = "give --key-pair-id and --private-key to sign cookies";
        smoke.report.push(names::PRIVATE_SIGNED, Outcome::Skip, seen);
        return;
    };
    let verdict = async {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let policy = Policy {
            resource: Some(smoke.url(&format!("/*private/galleries/{}/*", smoke.gallery()))),
            date_less_than: now + COOKIE_LIFETIME_SECS,
            date_greater_than: None,
            ip_address: None,
        };
        let cookies = signer.sign_cookies(&policy)?;
        let cookie =
            cookies.pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ");
        let original = smoke.private_key(&smoke.gallery());
        let mut findings = Findings::default();
        let reply = smoke.web.get(&smoke.url(&path(&original)), Some(&cookie)).await?;
        findings.saw(format!("original: {}", reply.summary()));
        findings.expect(reply.status == 200, format!("200 for /{original} with the cookies"));
        if reply.status == 200 {
            check_image(&mut findings, &reply, None);
        }
        let size = smoke.options.size;
        let sized = derivative(size, &original);
        let chain = smoke.web.follow(&smoke.url(&path(&sized)), Some(&cookie)).await?;
        check_made(smoke, &mut findings, &format!("{size}: "), &chain, size, &sized).await?;
        Ok((findings, cookie))
    }
    .await;
    match verdict {
        Ok((findings, cookie)) => {
            smoke.cookie = Some(cookie);
            smoke.record(names::PRIVATE_SIGNED, Ok(findings.verdict()));
        }
        Err(e) => smoke.record(names::PRIVATE_SIGNED, Err(e)),
    }
}

/// The same cookies on `smoke-{run}-other`'s photo and its sized path: 403 both.
pub async fn other_gallery(smoke: &mut Smoke<'_>) {
    let Some(cookie) = smoke.cookie.clone() else {
        let seen = "needs the cookies of the signed-cookies check";
        smoke.report.push(names::OTHER_GALLERY, Outcome::Skip, seen);
        return;
    };
    let verdict = async {
        let other = smoke.private_key(&smoke.other_gallery());
        let mut findings = Findings::default();
        for key in [other.clone(), derivative(smoke.options.size, &other)] {
            let reply = smoke.web.get(&smoke.url(&path(&key)), Some(&cookie)).await?;
            findings.saw(format!("/{key}: {}", reply.summary()));
            findings.expect(reply.status == 403, format!("403 for /{key}"));
        }
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::OTHER_GALLERY, verdict);
}

/// Spellings of the other gallery's photo that a normalising edge or S3 would resolve to
/// it, sent byte for byte with the run's cookies (unsigned when there are none): `..` and
/// `%2E%2E` segments inside the signed gallery, `%70rivate` (an unreserved escape
/// CloudFront decodes before picking a behaviour) and `%2F` (a reserved one it does not
/// decode, which S3 does). Each must be refused: 403 (a 400 from CloudFront itself is
/// reported and accepted).
pub async fn spellings(smoke: &mut Smoke<'_>) {
    let verdict = async {
        let (own, other) = (smoke.gallery(), smoke.other_gallery());
        let paths = [
            format!("/private/galleries/{own}/../{other}/photo.jpg"),
            format!("/private/galleries/{own}/%2E%2E/{other}/photo.jpg"),
            format!("/%70rivate/galleries/{other}/photo.jpg"),
            format!("/private%2Fgalleries%2F{other}%2Fphoto.jpg"),
        ];
        let cookie = smoke.cookie.clone();
        let mut findings = Findings::default();
        if cookie.is_none() {
            findings.saw("unsigned (no cookies: proves less)");
        }
        for path in &paths {
            let reply = smoke.web.get(&smoke.url(path), cookie.as_deref()).await?;
            findings.saw(format!("{path}: {}", reply.summary()));
            findings.expect(
                matches!(reply.status, 400 | 403),
                format!("{path} refused, got {}", reply.status),
            );
        }
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::SPELLINGS, verdict);
}

/// Redirect mode: unsigned `GET /resize/{second size}/private/galleries/smoke-{run}/photo.jpg`
/// is 403 (the signed `/resize/*/private/*` behaviour) and makes nothing.
pub async fn resize_private(smoke: &mut Smoke<'_>) {
    if smoke.options.mode == DeliveryMode::Failover {
        let seen = "failover mode has no /resize route (misses reach the resizer only through the origin group)";
        smoke.report.push(names::RESIZE_PRIVATE, Outcome::Skip, seen);
        return;
    }
    let verdict = async {
        let key = derivative(smoke.options.second_size, &smoke.private_key(&smoke.gallery()));
        let reply = smoke.web.get(&smoke.url(&format!("/resize{}", path(&key))), None).await?;
        let made = smoke.bucket.exists(&key).await?;
        let mut findings = Findings::default();
        findings.saw(format!(
            "{} ({}), {}",
            reply.summary(),
            reply.x_cache(),
            if made { "made" } else { "nothing made" }
        ));
        findings.expect(reply.status == 403, "403 for an unsigned /resize of a private key");
        findings.expect(!made, format!("{key} not made"));
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::RESIZE_PRIVATE, verdict);
}
