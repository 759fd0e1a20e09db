//! The routes that let a caller fetch private images: `sign-url` (one CloudFront signed
//! URL), `sign-cookies` (a signed cookie set for a gallery or the caller's uploads),
//! `clear-cookies`, and `download-url` (a presigned S3 GET of an original). Each checks
//! that the caller may read what is asked, bounds the lifetime by SIGNED_URL_MAX_TTL, and
//! binds to the viewer's address only when asked. The route match in `handler` calls these
//! after it has the caller's identity.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use http::{header, HeaderValue};
use keyspace::is_size_segment;
use lambda_http::{Body, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::handler::{epoch, json_response, ApiError, App};
use crate::identity::{is_gallery_id, Identity, GALLERY_PREFIX};
use crate::policy::{Ipv4Cidr, Policy};

/// Every cookie CloudFront reads.
const COOKIE_NAMES: [&str; 5] = [
    "CloudFront-Policy",
    "CloudFront-Expires",
    "CloudFront-Signature",
    "CloudFront-Key-Pair-Id",
    "CloudFront-Hash-Algorithm",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignUrl {
    /// `/300x300/private/galleries/g1/cat.jpg`: a path under PUBLIC_BASE_URL.
    path: String,
    expires_in: Option<u64>,
    #[serde(default)]
    bind_to_ip: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignCookies {
    gallery: Option<String>,
    #[serde(default)]
    uploads: bool,
    expires_in: Option<u64>,
    #[serde(default)]
    bind_to_ip: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DownloadUrl {
    key: String,
    expires_in: Option<u64>,
}

fn lifetime(app: &App, asked: Option<u64>) -> Result<Duration, ApiError> {
    match asked {
        None => Ok(app.config.default_ttl),
        Some(0) => Err(ApiError::InvalidField("expires_in must be at least 1 second".into())),
        Some(s) if s > app.config.max_ttl.as_secs() => {
            Err(ApiError::LifetimeTooLong { asked: s, max: app.config.max_ttl.as_secs() })
        }
        Some(s) => Ok(Duration::from_secs(s)),
    }
}

/// The policy's IpAddress condition: none unless `bind` asks, else the viewer's address,
/// which is needed only then (a request without it may still sign unbound).
fn ip_condition(
    bind: bool,
    viewer: Result<IpAddr, ApiError>,
) -> Result<Option<Ipv4Cidr>, ApiError> {
    if !bind {
        return Ok(None);
    }
    match viewer? {
        IpAddr::V4(v4) => Ok(Some(
            Ipv4Cidr::parse(&v4.to_string()).map_err(|e| ApiError::Internal(e.to_string()))?,
        )),
        IpAddr::V6(_) => Err(ApiError::InvalidField(
            "bind_to_ip needs an IPv4 caller (CloudFront policies are IPv4 only)".into(),
        )),
    }
}

/// The original key a public path refers to: the path without `/` and without a size
/// prefix, percent-decoded.
fn original_key(path: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::InvalidField(format!(
            "{path:?} is not a path like /300x300/private/galleries/g1/cat.jpg"
        ))
    };
    let rest = path.strip_prefix('/').ok_or_else(invalid)?;
    // RFC 3986 path characters only: no `*` (it would be a wildcard in a custom policy) and
    // nothing a browser would re-encode on the way (the signature covers the exact bytes).
    let path_char = |b: u8| b.is_ascii_alphanumeric() || b"-._~/%!$&'()+,;=:@".contains(&b);
    if rest.is_empty() || path.len() > 2048 || !path.bytes().all(path_char) {
        return Err(invalid());
    }
    let decoded =
        percent_encoding::percent_decode_str(rest).decode_utf8().map_err(|_| invalid())?;
    if keyspace::check_private_shape(&decoded, None).is_err() {
        return Err(invalid());
    }
    let key = match decoded.split_once('/') {
        Some((first, key)) if is_size_segment(first) => key,
        _ => &decoded,
    };
    Ok(key.to_owned())
}

pub(crate) fn sign_url(
    app: &App,
    id: &Identity,
    viewer: Result<IpAddr, ApiError>,
    input: SignUrl,
    now: SystemTime,
) -> Result<Response<Body>, ApiError> {
    let key = original_key(&input.path)?;
    if !id.may_read(&key) {
        return Err(ApiError::Forbidden(format!("you may not sign {:?}", input.path)));
    }
    let ttl = lifetime(app, input.expires_in)?;
    let url = format!("{}{}", app.config.public_base_url, input.path);
    let expires = epoch(now).saturating_add(ttl.as_secs());
    let policy = Policy {
        resource: Some(url.clone()),
        date_less_than: expires,
        date_greater_than: None,
        ip_address: ip_condition(input.bind_to_ip, viewer)?,
    };
    let signed = app.signer.sign_url(&url, &policy)?;
    Ok(json_response(json!({ "url": signed, "expires": expires })))
}

pub(crate) fn sign_cookies(
    app: &App,
    id: &Identity,
    viewer: Result<IpAddr, ApiError>,
    input: SignCookies,
    now: SystemTime,
) -> Result<Response<Body>, ApiError> {
    let base = &app.config.public_base_url;
    let resource = match (&input.gallery, input.uploads) {
        (Some(gallery), false) => {
            if !is_gallery_id(gallery) {
                return Err(ApiError::InvalidField(format!("{gallery:?} is not a gallery id")));
            }
            if !id.may_open_gallery(gallery) {
                return Err(ApiError::Forbidden(format!(
                    "gallery {gallery:?} is not granted to you"
                )));
            }
            // `*` spans `/`: the originals and every size prefix of the gallery.
            format!("{base}/*{GALLERY_PREFIX}{gallery}/*")
        }
        (None, true) => format!("{base}/*{}*", id.upload_prefix()),
        _ => {
            return Err(ApiError::InvalidField(
                "give either \"gallery\": \"<id>\" or \"uploads\": true".into(),
            ))
        }
    };
    let ttl = lifetime(app, input.expires_in)?;
    let expires = epoch(now).saturating_add(ttl.as_secs());
    let policy = Policy {
        resource: Some(resource.clone()),
        date_less_than: expires,
        date_greater_than: None,
        ip_address: ip_condition(input.bind_to_ip, viewer)?,
    };
    let cookies = app.signer.sign_cookies(&policy)?;
    let mut resp = json_response(json!({
        "resource": resource,
        "expires": expires,
        "cookies": cookies.pairs.iter().map(|(n, v)| (n.to_string(), Value::from(v.as_str()))).collect::<serde_json::Map<_, _>>(),
    }));
    for (name, value) in &cookies.pairs {
        append_cookie(&mut resp, &cookie_header(&app.config, name, value, ttl.as_secs()))?;
    }
    // One cookie set per domain: a stale CloudFront-Expires or CloudFront-Hash-Algorithm
    // from an earlier set would make CloudFront read this one as malformed.
    for stale in COOKIE_NAMES.iter().filter(|n| !cookies.pairs.iter().any(|(p, _)| p == *n)) {
        append_cookie(&mut resp, &cookie_header(&app.config, stale, "", 0))?;
    }
    Ok(resp)
}

/// Deletes every CloudFront cookie (`Max-Age=0`), whichever set the caller holds.
pub(crate) fn clear_cookies(app: &App) -> Result<Response<Body>, ApiError> {
    let mut resp = json_response(json!({ "cleared": true }));
    for name in COOKIE_NAMES {
        append_cookie(&mut resp, &cookie_header(&app.config, name, "", 0))?;
    }
    Ok(resp)
}

fn cookie_header(config: &Config, name: &str, value: &str, max_age: u64) -> String {
    let mut cookie = format!("{name}={value}; Path=/; Max-Age={max_age}");
    if let Some(domain) = &config.cookie_domain {
        cookie.push_str(&format!("; Domain={domain}"));
    }
    if config.cookie_secure {
        cookie.push_str("; Secure");
    }
    // Lax: sent with <img> loads and top-level navigation from this site, not with
    // cross-site subrequests.
    cookie.push_str("; HttpOnly; SameSite=Lax");
    cookie
}

fn append_cookie(resp: &mut Response<Body>, cookie: &str) -> Result<(), ApiError> {
    let value = HeaderValue::from_str(cookie).map_err(|e| ApiError::Internal(e.to_string()))?;
    resp.headers_mut().append(header::SET_COOKIE, value);
    Ok(())
}

pub(crate) async fn download_url(
    app: &App,
    id: &Identity,
    input: DownloadUrl,
    now: SystemTime,
) -> Result<Response<Body>, ApiError> {
    if !id.may_read(&input.key) {
        return Err(ApiError::Forbidden(format!("you may not read {:?}", input.key)));
    }
    let ttl = lifetime(app, input.expires_in)?;
    let presigned = app.presigner.get(&input.key, now, ttl).await?;
    Ok(json_response(json!({
        "url": presigned.url,
        "expires": epoch(now).saturating_add(ttl.as_secs()),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_keys_drop_the_size_and_decode_once() {
        assert_eq!(
            original_key("/300x300/private/galleries/g1/a%20b.jpg").unwrap(),
            "private/galleries/g1/a b.jpg"
        );
        assert_eq!(
            original_key("/private/galleries/g1/a.jpg").unwrap(),
            "private/galleries/g1/a.jpg"
        );
        assert_eq!(original_key("/640x/uploads/u/a.jpg").unwrap(), "uploads/u/a.jpg");
        for bad in ["", "/", "private/a.jpg", "/a.jpg?x=1", "/a b.jpg", "/a.jpg#f"] {
            assert!(original_key(bad).is_err(), "{bad}");
        }
    }
}
