//! What AWS leaves undocumented around the path guard: whether CloudFront's signature
//! check or the viewer-request function answers first, whether a signing parameter's value
//! can carry a path for a policy's wildcard to reach, and what becomes of repeated slashes
//! (CloudFront collapses them when it picks a behaviour). Each row reports which refusal
//! answered, read off the answer: the function's (X-Cache `FunctionGeneratedResponse`, its
//! `x-refusal`), the signature check's (CloudFront's XML, `MissingKey`, `AccessDenied`), or
//! an origin's (a JSON code). Either refusal is a pass; anything but a 403 fails.

use keyspace::DeliveryMode;

use super::{names, Findings, Smoke};
use crate::report::Outcome;
use crate::web::Reply;

/// Who refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refuser {
    /// The path guard, a CloudFront Function.
    PathGuard,
    /// CloudFront's signature check (trusted key groups).
    Signature,
    /// An origin (the resizer or the signer, by their JSON error codes).
    Origin,
    /// Nothing recognisable.
    Unknown,
}

/// Who answered `reply`.
pub fn refuser(reply: &Reply) -> Refuser {
    if reply.header("x-refusal").is_some() || reply.x_cache().contains("FunctionGeneratedResponse")
    {
        Refuser::PathGuard
    } else if reply.xml_code().is_some() && reply.json_code().is_none() {
        Refuser::Signature
    } else if reply.json_code().is_some() {
        Refuser::Origin
    } else {
        Refuser::Unknown
    }
}

/// `403 from the path guard (dot-segment)`, `403 from the signature check (MissingKey)`, ...
pub fn refused_by(reply: &Reply) -> String {
    let who = match refuser(reply) {
        Refuser::PathGuard => format!(
            "the path guard ({})",
            reply.header("x-refusal").unwrap_or_else(|| "no x-refusal".to_owned())
        ),
        Refuser::Signature => {
            format!("the signature check ({})", reply.xml_code().unwrap_or_default())
        }
        Refuser::Origin => format!("the origin ({})", reply.json_code().unwrap_or_default()),
        Refuser::Unknown => return format!("{} (X-Cache {})", reply.status, reply.x_cache()),
    };
    format!("{} from {who}", reply.status)
}

/// Unsigned `GET /%70rivate/galleries/smoke-{run}/photo.jpg` (a spelling the path guard
/// refuses and CloudFront decodes when it picks the signed behaviour), and, to tell the
/// order apart from which path the function sees, unsigned
/// `GET /private/galleries/smoke-{run}/photo.jpg?smoke=1` (a query the guard refuses on
/// any path). PASS when both are 403, reporting which check answered.
pub async fn check_order(smoke: &mut Smoke<'_>) {
    let verdict = async {
        let gallery = smoke.gallery();
        let encoded = format!("/%70rivate/galleries/{gallery}/photo.jpg");
        let query = format!("/private/galleries/{gallery}/photo.jpg?smoke=1");
        let mut findings = Findings::default();
        let mut by = Vec::new();
        for path in [&encoded, &query] {
            let reply = smoke.web.get(&smoke.url(path), None).await?;
            findings.saw(format!("{path}: {}", refused_by(&reply)));
            findings.expect(
                reply.status == 403,
                format!("403 for unsigned {path}, got {}", reply.summary()),
            );
            by.push(refuser(&reply));
        }
        findings.saw(order_conclusion(by[0], by[1]));
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::CHECK_ORDER, verdict);
}

/// What the two answers of [`check_order`] say about the order (encoded spelling, query).
pub fn order_conclusion(encoded: Refuser, query: Refuser) -> &'static str {
    use Refuser::{PathGuard, Signature};
    match (encoded, query) {
        (PathGuard, PathGuard) => {
            "the path guard answers before the signature check, on the raw path"
        }
        (Signature, Signature) => {
            "the signature check answers first: the path guard sees only validly signed \
             requests on private behaviours"
        }
        (Signature, PathGuard) => {
            "the path guard runs first but let %70rivate through: it sees the path decoded, \
             and the signature check (on the raw path) refused it"
        }
        _ => "the order cannot be told from these answers",
    }
}

/// With the cookies for `smoke-{run}`, `GET /private/galleries/smoke-{run}-other/photo.jpg`
/// with `?Hash-Algorithm=`, `?Policy=` and `?Expires=` carrying
/// `/private/galleries/smoke-{run}/`: a policy's leading `*` would match the grant in the
/// query if CloudFront took the parameter for no signature and checked the cookies. Each
/// must be 403 (the path guard refuses signing values that are not digits or URL-safe
/// base64).
pub async fn query_path(smoke: &mut Smoke<'_>) {
    let Some(cookie) = smoke.cookie.clone() else {
        let seen = "needs the cookies of the signed-cookies check (unsigned, every probe is \
                    refused whatever the query: proves nothing)";
        smoke.report.push(names::QUERY_PATH, Outcome::Skip, seen);
        return;
    };
    let verdict = async {
        let (own, other) = (smoke.gallery(), smoke.other_gallery());
        let mut findings = Findings::default();
        for name in ["Hash-Algorithm", "Policy", "Expires"] {
            let path =
                format!("/private/galleries/{other}/photo.jpg?{name}=/private/galleries/{own}/");
            let reply = smoke.web.get(&smoke.url(&path), Some(&cookie)).await?;
            findings.saw(format!("?{name}=/private/galleries/{own}/: {}", refused_by(&reply)));
            findings.expect(
                reply.status == 403,
                format!("403 for {path} with the cookies, got {}", reply.summary()),
            );
        }
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::QUERY_PATH, verdict);
}

/// Unsigned, byte for byte: `/resize//private/galleries/smoke-{run}/photo.jpg` (redirect
/// mode: the raw path matches the signed `/resize/*/private/*` with an empty `*`, the
/// collapsed one the unsigned `/resize/*`) and `//private/galleries/smoke-{run}/photo.jpg`.
/// Each must be 403, from whichever check.
pub async fn repeated_slashes(smoke: &mut Smoke<'_>) {
    let verdict = async {
        let own = smoke.gallery();
        let mut paths = Vec::new();
        if smoke.options.mode == DeliveryMode::Redirect {
            paths.push(format!("/resize//private/galleries/{own}/photo.jpg"));
        }
        paths.push(format!("//private/galleries/{own}/photo.jpg"));
        let mut findings = Findings::default();
        for path in &paths {
            let reply = smoke.web.get(&smoke.url(path), None).await?;
            findings.saw(format!("{path}: {}", refused_by(&reply)));
            findings.expect(
                reply.status == 403,
                format!("403 for unsigned {path}, got {}", reply.summary()),
            );
        }
        if smoke.options.mode == DeliveryMode::Failover {
            findings.saw("no /resize route in failover mode");
        }
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::SLASHES, verdict);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue};

    fn reply(status: u16, headers: &[(&'static str, &'static str)], body: &'static str) -> Reply {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        Reply { url: String::new(), status, headers: map, body: Bytes::from(body) }
    }

    #[test]
    fn refusals_are_told_apart_by_their_answers() {
        let guard = reply(
            403,
            &[
                ("x-cache", "FunctionGeneratedResponse from cloudfront"),
                ("x-refusal", "encoded-private-path"),
            ],
            "Forbidden",
        );
        assert_eq!(refuser(&guard), Refuser::PathGuard);
        assert_eq!(refused_by(&guard), "403 from the path guard (encoded-private-path)");
        let signature = reply(
            403,
            &[("x-cache", "Error from cloudfront")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>MissingKey</Code>\
             <Message>Missing Key-Pair-Id query parameter or cookie value</Message></Error>",
        );
        assert_eq!(refused_by(&signature), "403 from the signature check (MissingKey)");
        let origin = reply(403, &[], r#"{"code":"unsigned-private-path","message":"..."}"#);
        assert_eq!(refused_by(&origin), "403 from the origin (unsigned-private-path)");
        let other = reply(200, &[("x-cache", "Miss from cloudfront")], "");
        assert_eq!(refused_by(&other), "200 (X-Cache Miss from cloudfront)");
        assert_eq!(
            order_conclusion(Refuser::Signature, Refuser::PathGuard),
            "the path guard runs first but let %70rivate through: it sees the path decoded, \
             and the signature check (on the raw path) refused it"
        );
    }
}
