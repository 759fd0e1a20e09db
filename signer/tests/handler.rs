//! The signer's handler as the Lambda runs it: API Gateway HTTP API (v2) events parsed by
//! lambda_http, what the edge adds (the origin secret, the viewer's address), and the
//! upload names each delivery mode accepts. Nothing here reaches S3: presigning a PUT is
//! local, and the refusals come before any S3 call.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use signer::cloudfront::{Refusal, SignedRequest, TrustedKeys};
use signer::config::Config;
use signer::handler::{handle_at, App};
use signer::keys::VerifyingKey;
use signer::policy::cf_base64_decode;

const KEY_ID: &str = "K2JCJMDEHXQW5F";
const BASE: &str = "https://cdn.example.com";
const NOW: u64 = 1_900_000_000;

fn data(path: &str) -> String {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An API Gateway v2 event fixture (tests/data/apigw_v2/), as JSON to edit.
fn fixture(name: &str) -> Value {
    serde_json::from_str(&data(&format!("../tests/data/apigw_v2/{name}"))).unwrap()
}

/// Parses an event as the Lambda runtime does.
fn request(event: &Value) -> Request {
    lambda_http::request::from_str(&event.to_string()).expect("the event parses")
}

/// `event` with another JSON body.
fn with_body(mut event: Value, body: Value) -> Value {
    event["body"] = body.to_string().into();
    event["isBase64Encoded"] = false.into();
    event
}

/// `event` sent to another route.
fn at(mut event: Value, route: &str) -> Value {
    event["rawPath"] = route.into();
    event["requestContext"]["http"]["path"] = route.into();
    event
}

/// The JWT-authorized fixture aimed at another route with another body.
fn post(route: &str, body: Value) -> Value {
    at(with_body(fixture("signer_sign_cookies.json"), body), route)
}

async fn build_app(extra: &[(&str, &str)]) -> App {
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("CLOUDFRONT_KEY_PAIR_ID", KEY_ID.to_owned()),
        ("CLOUDFRONT_PRIVATE_KEY", data("tests/data/rsa2048-pkcs1.pem")),
        ("BUCKET", "images".to_owned()),
        ("PUBLIC_BASE_URL", BASE.to_owned()),
    ]);
    for (k, v) in extra {
        vars.insert(k, (*v).to_owned());
    }
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let credentials =
        aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
    // Nothing listens there: a test that reached S3 would fail, not pass by accident.
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            credentials,
        ))
        .build();
    App::build(config, &sdk).await.unwrap()
}

async fn call(app: &App, event: &Value) -> (u16, Value, Response<Body>) {
    let resp = handle_at(app, request(event), UNIX_EPOCH + Duration::from_secs(NOW)).await;
    let json: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    (resp.status().as_u16(), json, resp)
}

fn query_param<'a>(url: &'a str, name: &str) -> &'a str {
    url.split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|p| p.strip_prefix(&format!("{name}="))))
        .unwrap_or_else(|| panic!("{name} in {url}"))
}

fn headers_of(value: &Value) -> HashMap<String, String> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8().unwrap().into_owned()
}

fn base64_decode(text: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(text).unwrap()).unwrap()
}

#[tokio::test]
async fn uploads_are_signed_with_the_stored_object_headers() {
    let app = build_app(&[("UPLOAD_CACHE_CONTROL", "private, max-age=600")]).await;
    let (status, body, _) =
        call(&app, &post("/api/upload-url", json!({ "content_type": "image/png", "size": 1000 })))
            .await;
    assert_eq!(status, 200, "{body}");
    let headers = headers_of(&body["headers"]);
    for (name, value) in [
        ("cache-control", "private, max-age=600"),
        ("content-disposition", "inline"),
        ("content-encoding", "identity"),
        ("content-type", "image/png"),
        ("if-none-match", "*"),
    ] {
        assert_eq!(headers.get(name).map(String::as_str), Some(value), "{name}: {headers:?}");
    }
    let signed = query_param(body["url"].as_str().unwrap(), "X-Amz-SignedHeaders");
    let signed = percent_decode(signed);
    for name in headers.keys() {
        assert!(signed.split(';').any(|s| s == name), "{name} is not signed: {signed}");
    }

    let (status, body, _) =
        call(&app, &post("/api/upload-form", json!({ "content_type": "image/png" }))).await;
    assert_eq!(status, 200, "{body}");
    let fields: Vec<(String, String)> = serde_json::from_value(body["fields"].clone()).unwrap();
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(field("Cache-Control"), Some("private, max-age=600"));
    assert_eq!(field("Content-Disposition"), Some("inline"));
    let policy = base64_decode(field("policy").unwrap());
    assert!(policy.contains(r#"{"Cache-Control":"private, max-age=600"}"#), "{policy}");
    assert!(policy.contains(r#"{"Content-Disposition":"inline"}"#), "{policy}");
}

/// Where an upload named `name` would go, or the refusal's status and code, from each of the
/// upload routes (they share one rule).
async fn upload_named(app: &App, route: &str, name: &str) -> Result<String, (u16, String)> {
    let body = match route {
        "/api/upload-form" => json!({ "content_type": "image/jpeg", "name": name }),
        _ => json!({ "content_type": "image/jpeg", "size": 1000, "name": name }),
    };
    let (status, body, _) = call(app, &post(route, body)).await;
    match status {
        200 => Ok(body["key"].as_str().unwrap().to_owned()),
        _ => Err((status, body["code"].as_str().unwrap().to_owned())),
    }
}

const USER_PREFIX: &str = "uploads/8f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f/";

#[track_caller]
fn expect_key(got: Result<String, (u16, String)>, name: &str) {
    assert_eq!(got, Ok(format!("{USER_PREFIX}{name}")), "{name:?}");
}

#[track_caller]
fn expect_refusal(got: Result<String, (u16, String)>, code: &str, name: &str) {
    assert_eq!(got, Err((400, code.to_owned())), "{name:?}");
}

/// Names a person gives photos: non-ASCII, spaces, `+`, folders.
const FINE: [&str; 4] = [
    "ảnh đẹp ở Hà Nội.jpg",
    "고양이 사진 1.jpg",
    "cat+dog & friends (2).jpg",
    "trips/2024/Đà Lạt + Seoul/서울 야경.jpg",
];
/// Names that a raw Location (possible when REDIRECT_KEY_ENCODING is auto or raw) would
/// not carry to the resizer: a raw `%` is read as an escape, or makes a path the edge's
/// path guard refuses as malformed.
const NOT_CARRIED: [&str; 6] =
    ["a#b.jpg", "a%20b.jpg", "100% real.jpg", "what?.jpg", "caf%C3%A9.jpg", "trailing.jpg "];
/// Names that are not valid original keys (or could never be served), in any mode.
fn invalid() -> Vec<String> {
    let mut names: Vec<String> = [
        "",
        "/a.jpg",
        "a.jpg/",
        "a//b.jpg",
        ".",
        "..",
        "./a.jpg",
        "a/../b.jpg",
        "a/./b.jpg",
        "a\\b.jpg",
        "a\u{0}b.jpg",
        "a\nb.jpg",
        "a\u{7f}.jpg",
        "a\u{85}.jpg",
        "300x300/a.jpg",
        "640x/a.jpg",
        "x200/a.jpg",
        "x/uploads/bob/a.jpg",
        "my-uploads/a.jpg",
        "albums/private/galleries/demo/a.jpg",
    ]
    .map(str::to_owned)
    .to_vec();
    names.push(format!("{}.jpg", "a".repeat(1024 - USER_PREFIX.len() - 3)));
    names
}

#[tokio::test]
async fn upload_names_follow_the_key_grammar_and_the_delivery_mode() {
    let routes = ["/api/upload-url", "/api/upload-form", "/api/multipart/begin"];
    let redirect = build_app(&[]).await;
    for name in FINE {
        // Only the PUT is signed offline; the form and multipart routes would ask S3.
        expect_key(upload_named(&redirect, "/api/upload-url", name).await, name);
    }
    // The longest name that fits S3's 1024 bytes.
    let longest = format!("{}.jpg", "a".repeat(1024 - USER_PREFIX.len() - 4));
    expect_key(upload_named(&redirect, "/api/upload-url", &longest).await, &longest);
    // Names that look like a size elsewhere than at the start are fine.
    expect_key(
        upload_named(&redirect, "/api/upload-url", "a/300x300/b.jpg").await,
        "a/300x300/b.jpg",
    );
    for route in routes {
        for name in NOT_CARRIED {
            expect_refusal(upload_named(&redirect, route, name).await, "key-not-deliverable", name);
        }
        for name in invalid() {
            expect_refusal(upload_named(&redirect, route, &name).await, "invalid-field", &name);
        }
    }
    let (_, body, _) = call(
        &redirect,
        &post(
            "/api/upload-url",
            json!({ "content_type": "image/jpeg", "size": 1, "name": "a#b.jpg" }),
        ),
    )
    .await;
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("'#' cannot reach the resizer in redirect mode"), "{message}");
    assert!(
        message.ends_with(
            "rename the file, or deploy with DeliveryMode=failover, which carries every key"
        ),
        "{message}"
    );

    // Failover carries every key, and so does a redirect whose encoding is known not to be raw.
    for settings in [
        &[("DELIVERY_MODE", "failover")][..],
        &[("DELIVERY_MODE", "failover"), ("REDIRECT_KEY_ENCODING", "raw")],
        &[("REDIRECT_KEY_ENCODING", "once")],
        &[("REDIRECT_KEY_ENCODING", "twice")],
    ] {
        let app = build_app(settings).await;
        for name in FINE.into_iter().chain(NOT_CARRIED) {
            expect_key(upload_named(&app, "/api/upload-url", name).await, name);
        }
        for name in invalid() {
            expect_refusal(
                upload_named(&app, "/api/upload-url", &name).await,
                "invalid-field",
                &name,
            );
        }
    }
    let raw = build_app(&[("REDIRECT_KEY_ENCODING", "raw")]).await;
    for name in NOT_CARRIED {
        expect_refusal(
            upload_named(&raw, "/api/upload-url", name).await,
            "key-not-deliverable",
            name,
        );
    }

    // Without a name the key is fresh and typed, as before.
    let (status, body, _) = call(
        &redirect,
        &post("/api/upload-url", json!({ "content_type": "image/webp", "size": 9 })),
    )
    .await;
    assert_eq!(status, 200);
    let key = body["key"].as_str().unwrap();
    assert!(key.starts_with(USER_PREFIX) && key.ends_with(".webp"), "{key}");
}

#[tokio::test]
async fn multipart_complete_and_abort_take_only_the_callers_upload_keys() {
    let app = build_app(&[]).await;
    for key in [
        "uploads/someone-else/a.jpg",
        "uploads/8f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f/../bob/a.jpg",
        "uploads/8f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f/",
        "uploads/8f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f//a.jpg",
        "private/galleries/demo/a.jpg",
    ] {
        for (route, body) in [
            ("/api/multipart/abort", json!({ "key": key, "upload_id": "u1" })),
            (
                "/api/multipart/complete",
                json!({ "key": key, "upload_id": "u1", "parts": [{ "part_number": 1, "etag": "e" }] }),
            ),
        ] {
            let (status, body, _) = call(&app, &post(route, body)).await;
            assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{route} {key}");
        }
    }
    // A named key in a folder is the caller's: the request goes on to S3 (unreachable here).
    let key = format!("{USER_PREFIX}trips/2024/서울.jpg");
    let (status, body, _) =
        call(&app, &post("/api/multipart/abort", json!({ "key": key, "upload_id": "u1" }))).await;
    assert_ne!(status, 403, "{body}");
    assert!(status >= 500, "{body}");
}

// What the edge adds: the origin secret and the viewer's address.

/// The secret the fixtures' `x-origin-verify` carries.
const FIXTURE_SECRET: &str = "fixture-origin-secret-0123456789abcdef";
/// The viewer in the fixtures' `x-viewer-address`, and the CloudFront edge in their
/// `requestContext.http.sourceIp`.
const VIEWER: [u8; 4] = [203, 0, 113, 7];
const EDGE: [u8; 4] = [130, 176, 0, 1];

/// `event` with header `name` set to `value`, or removed when `value` is None.
fn with_header(mut event: Value, name: &str, value: Option<&str>) -> Value {
    let headers = event["headers"].as_object_mut().unwrap();
    match value {
        Some(v) => headers.insert(name.to_owned(), v.into()),
        None => headers.remove(name),
    };
    event
}

fn trusted() -> TrustedKeys {
    let mut keys = TrustedKeys::new();
    let public = data("tests/data/rsa2048-public.pem");
    keys.insert(KEY_ID, VerifyingKey::from_pem(public.as_bytes()).unwrap());
    keys
}

#[tokio::test]
async fn bind_to_ip_binds_the_viewer_address_header_not_the_source_ip() {
    let app = build_app(&[]).await;
    let event = fixture("signer_sign_url_bound.json");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "130.176.0.1");
    let (status, body, _) = call(&app, &event).await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap();
    let policy = cf_base64_decode(query_param(url, "Policy")).unwrap();
    let policy = String::from_utf8(policy).unwrap();
    assert!(policy.contains(r#""AWS:SourceIp":"203.0.113.7/32""#), "{policy}");
    assert!(!policy.contains("130.176"), "{policy}");
    // As CloudFront would check it: the viewer gets in, the edge's address does not.
    let check = |ip: [u8; 4]| {
        trusted().verify(&SignedRequest {
            url,
            cookie_header: None,
            client_ip: ip.into(),
            now: NOW,
        })
    };
    assert!(check(VIEWER).is_ok());
    assert_eq!(check(EDGE), Err(Refusal::WrongIp));

    // Cookies bind the same address.
    let event = with_body(
        fixture("signer_sign_url_bound.json"),
        json!({ "gallery": "demo", "bind_to_ip": true }),
    );
    let (status, body, _) = call(&app, &at(event, "/api/sign-cookies")).await;
    assert_eq!(status, 200, "{body}");
    let policy = cf_base64_decode(body["cookies"]["CloudFront-Policy"].as_str().unwrap()).unwrap();
    assert!(String::from_utf8(policy).unwrap().contains("203.0.113.7/32"));
}

#[tokio::test]
async fn bind_to_ip_without_one_viewer_address_is_refused_whatever_the_source_ip() {
    let app = build_app(&[]).await;
    for value in [
        None,
        Some(""),
        Some("203.0.113.7, 198.51.100.1"),
        Some("203.0.113.7:443"),
        Some("[2001:db8::1]"),
        Some("unknown"),
    ] {
        let event = with_header(fixture("signer_sign_url_bound.json"), "x-viewer-address", value);
        let (status, body, _) = call(&app, &event).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("viewer-address-unavailable")),
            "{value:?}: {body}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("did not come through the distribution's viewer-address function"),
            "{message}"
        );
    }
    // Without bind_to_ip the address is not needed.
    let event = with_header(fixture("signer_sign_url_bound.json"), "x-viewer-address", None);
    let event = with_body(event, json!({ "path": "/300x300/private/galleries/demo/cat.jpg" }));
    let (status, body, _) = call(&app, &event).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["url"].as_str().unwrap().contains("Expires="), "canned: {body}");
}

#[tokio::test]
async fn an_ipv6_viewer_cannot_be_bound() {
    let app = build_app(&[]).await;
    // CloudFront's policy IpAddress is IPv4 only: a bound policy could never match.
    for v6 in ["2001:db8::7", "::ffff:203.0.113.7"] {
        let event =
            with_header(fixture("signer_sign_url_bound.json"), "x-viewer-address", Some(v6));
        let (status, body, _) = call(&app, &event).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid-field")), "{v6}: {body}");
        assert!(body["message"].as_str().unwrap().contains("IPv4"), "{body}");
    }
}

#[tokio::test]
async fn with_an_origin_secret_only_requests_carrying_it_are_answered() {
    let app = build_app(&[("ORIGIN_VERIFY_SECRET", FIXTURE_SECRET)]).await;
    let (status, body, _) = call(&app, &fixture("signer_sign_cookies.json")).await;
    assert_eq!(status, 200, "{body}");

    let prefix = &FIXTURE_SECRET[..FIXTURE_SECRET.len() - 1];
    let longer = format!("{FIXTURE_SECRET}x");
    for value in [
        None,
        Some(""),
        Some(prefix),
        Some(longer.as_str()),
        Some("FIXTURE-ORIGIN-SECRET-0123456789ABCDEF"),
    ] {
        for name in [
            "signer_sign_cookies.json",
            "signer_no_authorizer.json",
            "signer_upload_form_base64.json",
        ] {
            let event = with_header(fixture(name), "x-origin-verify", value);
            let (status, body, resp) = call(&app, &event).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (403, Some("origin-not-verified")),
                "{name} {value:?}"
            );
            assert_eq!(
                body["message"],
                "requests are accepted only through the CloudFront distribution"
            );
            // Nothing else happened: no cookies, no route lookup (an unknown route is 403 too).
            assert!(resp.headers().get("set-cookie").is_none());
            assert_eq!(resp.headers()["cache-control"], "no-store");
        }
    }
    let event = with_header(post("/api/nothing", json!({})), "x-origin-verify", None);
    assert_eq!(call(&app, &event).await.1["code"], "origin-not-verified");
    // Without the variable the header is not looked at.
    let open = build_app(&[]).await;
    let event = with_header(fixture("signer_sign_cookies.json"), "x-origin-verify", None);
    assert_eq!(call(&open, &event).await.0, 200);
}
