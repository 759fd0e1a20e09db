//! The origins' own addresses: the HTTP API's `execute-api` URL and the resizer's function
//! URL stay reachable on the internet (CloudFront needs them), so each function must
//! refuse a request that did not come through the distribution (no `x-origin-verify`, no
//! origin access control signature). A connection failure or a 404 from a disabled
//! endpoint also keeps them unusable; the row says which it was.

use bytes::Bytes;
use http::Method;
use keyspace::DeliveryMode;

use super::{derivative, names, path, Findings, Smoke, Verdict};
use crate::report::Outcome;
use crate::web::{Reply, WebError};

/// What an origin's answer to a request that bypassed CloudFront means.
fn bypass_refused(findings: &mut Findings, answer: Result<Reply, WebError>, route: &str) {
    match answer {
        Err(e) => findings.saw(format!("{route}: not reachable ({e})")),
        Ok(reply) => match reply.status {
            403 => findings.saw(format!("{route}: {}", reply.summary())),
            404 => findings.saw(format!("{route}: 404, no such route")),
            _ => {
                findings.saw(format!("{route}: {}", reply.summary()));
                findings.expect(
                    false,
                    format!(
                        "{route} must refuse requests that did not come through CloudFront, got {}",
                        reply.status
                    ),
                );
            }
        },
    }
}

/// `GET {api}/resize/{size}/smoke/{run}/direct.jpg`: refused, and nothing made.
pub async fn execute_api_resize(smoke: &mut Smoke<'_>) {
    let Some(api) = smoke.options.api_url.clone() else {
        let seen = "give --api-url (stack output ApiUrl)";
        smoke.report.push(names::API_RESIZE, Outcome::Skip, seen);
        return;
    };
    let verdict: Verdict = async {
        let key = derivative(smoke.options.size, &smoke.public_key("direct.jpg"));
        let answer = smoke.web.get(&format!("{api}/resize{}", path(&key)), None).await;
        let mut findings = Findings::default();
        bypass_refused(&mut findings, answer, "GET /resize/...");
        let made = smoke.bucket.exists(&key).await?;
        findings.expect(!made, format!("{key} made through the API's own URL"));
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::API_RESIZE, verdict);
}

/// `POST {api}/api/sign-cookies` with the token: the JWT authorizer lets it through, the
/// signer refuses it (403 origin-not-verified). Without a token the authorizer's 401 proves
/// nothing about the signer: SKIP.
pub async fn execute_api_signer(smoke: &mut Smoke<'_>) {
    let Some(api) = smoke.options.api_url.clone() else {
        let seen = "give --api-url (stack output ApiUrl)";
        smoke.report.push(names::API_SIGNER, Outcome::Skip, seen);
        return;
    };
    let verdict: Verdict = async {
        let gallery = smoke.options.gallery.clone().unwrap_or_else(|| smoke.gallery());
        let body = serde_json::json!({ "gallery": gallery }).to_string();
        let bearer = smoke.options.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        let url = format!("{api}/api/sign-cookies");
        let answer = smoke.web.send(Method::POST, &url, &headers, Bytes::from(body)).await;
        if let Ok(reply) = &answer {
            if reply.status == 401 {
                return Ok(match bearer {
                    None => (
                        Outcome::Skip,
                        "401 from the JWT authorizer: give --token to show the signer itself \
                         refuses requests that bypass CloudFront"
                            .to_owned(),
                    ),
                    Some(_) => (
                        Outcome::Fail,
                        "401: the API's JWT authorizer refused --token (expired? another \
                         issuer or audience?), so this proves nothing"
                            .to_owned(),
                    ),
                });
            }
        }
        let mut findings = Findings::default();
        bypass_refused(&mut findings, answer, "POST /api/sign-cookies");
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::API_SIGNER, verdict);
}

/// Failover mode: unsigned `GET {function url}/{size}/smoke/{run}/direct.jpg`: refused
/// (Lambda's 403 for AWS_IAM auth), and nothing made.
pub async fn function_url(smoke: &mut Smoke<'_>) {
    if smoke.options.mode == DeliveryMode::Redirect {
        let seen = "redirect mode has no function URL";
        smoke.report.push(names::FUNCTION_URL, Outcome::Skip, seen);
        return;
    }
    let Some(function_url) = smoke.options.function_url.clone() else {
        let seen = "give --function-url (stack output ResizerFunctionUrl)";
        smoke.report.push(names::FUNCTION_URL, Outcome::Skip, seen);
        return;
    };
    let verdict: Verdict = async {
        let key = derivative(smoke.options.size, &smoke.public_key("direct.jpg"));
        let answer = smoke.web.get(&format!("{function_url}{}", path(&key)), None).await;
        let mut findings = Findings::default();
        bypass_refused(&mut findings, answer, "GET");
        let made = smoke.bucket.exists(&key).await?;
        findings.expect(!made, format!("{key} made through the function URL"));
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::FUNCTION_URL, verdict);
}
