//! The signer API through the distribution: cookies bound to the caller's address open
//! the gallery from that address. This is what the viewer-address CloudFront Function
//! exists for: API Gateway sees only CloudFront's edge, so without the function the
//! signer would bind the edge's address (or refuse), and the cookie would never open.

use bytes::Bytes;
use http::Method;
use signer::policy::{cf_base64_decode, Policy};

use super::{check_image, names, path, Findings, Smoke, Verdict};
use crate::report::Outcome;
use crate::web::{Reply, Web, WebError};

/// `POST {url}` with the bearer `token` and a JSON body; the answer and its body as JSON
/// (`Null` when it is not JSON).
pub async fn post_json(
    web: &Web,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<(Reply, serde_json::Value), WebError> {
    let bearer = format!("Bearer {token}");
    let headers = [("content-type", "application/json"), ("authorization", bearer.as_str())];
    let reply = web.send(Method::POST, url, &headers, Bytes::from(body.to_string())).await?;
    let value = serde_json::from_slice(&reply.body).unwrap_or_default();
    Ok((reply, value))
}

/// The cookies of a `/api/sign-cookies` answer's body, `(name, value)`.
pub fn cookies_of(value: &serde_json::Value) -> Vec<(String, String)> {
    value["cookies"]
        .as_object()
        .map(|all| {
            all.iter()
                .filter_map(|(name, v)| v.as_str().map(|v| (name.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The `Cookie` header a browser sends back for `cookies`.
pub fn cookie_header(cookies: &[(String, String)]) -> String {
    cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
}

/// `POST {SITE}/api/sign-cookies {"gallery": G, "bind_to_ip": true}` with `--token`, then
/// `GET /private/galleries/{G}/smoke-{run}.jpg` (uploaded for the check) with those
/// cookies: 200. Both over IPv4, the only family a CloudFront policy can bind.
pub async fn ip_bound_cookie(smoke: &mut Smoke<'_>) {
    let (Some(token), Some(gallery)) = (smoke.options.token.clone(), smoke.options.gallery.clone())
    else {
        let seen = match smoke.options.token {
            None => "give --token (a JWT the API accepts) and --gallery (a gallery it grants)",
            Some(_) => "give --gallery NAME: a gallery the token grants (smoke puts one object in it for the check)",
        };
        smoke.report.push(names::IP_BOUND, Outcome::Skip, seen);
        return;
    };
    let verdict: Verdict = async {
        let web = Web::ipv4_only()?;
        let body = serde_json::json!({ "gallery": gallery, "bind_to_ip": true, "expires_in": 600 });
        let url = smoke.url("/api/sign-cookies");
        let (reply, value) = post_json(&web, &url, &token, &body).await?;
        let mut findings = Findings::default();
        if reply.status != 200 {
            let hint = match reply.json_code().as_deref() {
                Some("viewer-address-unavailable") => {
                    ": the /api/* behaviour lacks the viewer-address function"
                }
                Some("forbidden") => ": the token does not grant --gallery",
                _ => "",
            };
            findings.saw(format!("sign-cookies: {}", reply.summary()));
            findings.expect(false, format!("200 from /api/sign-cookies{hint}"));
            return Ok(findings.verdict());
        }
        let cookies = cookies_of(&value);
        let bound = cookies
            .iter()
            .find(|(name, _)| name == "CloudFront-Policy")
            .and_then(|(_, policy)| cf_base64_decode(policy))
            .and_then(|text| Policy::parse_json(&text).ok())
            .and_then(|policy| policy.ip_address);
        match bound {
            Some(network) => findings.saw(format!("cookies bound to {network}")),
            None => findings.expect(false, "a CloudFront-Policy with an IpAddress condition"),
        }
        let cookie = cookie_header(&cookies);
        let key = smoke.ip_check_key(&gallery);
        let reply = web.get(&smoke.url(&path(&key)), Some(&cookie)).await?;
        findings.saw(format!("/{key}: {}", reply.summary()));
        findings.expect(reply.status == 200, "200 with the bound cookies from the same address");
        if reply.status == 200 {
            check_image(&mut findings, &reply, None);
        }
        Ok(findings.verdict())
    }
    .await;
    smoke.record(names::IP_BOUND, verdict);
}
