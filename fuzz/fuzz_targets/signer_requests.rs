//! The signer's API as the Lambda runs it (`signer::handler::handle_at`): an API Gateway
//! v2 event (tests/data/apigw_v2/signer_sign_cookies.json) with a fuzzed route, JSON body,
//! `galleries` claim, subject and viewer address. Only the routes that never reach S3 are
//! driven (presigning is local; the multipart routes call S3 and are left out).
//!
//! Input: a selector byte (route, method), then `{body}\0{galleries claim}\0{sub}\0{viewer
//! address}`. Invariants: nothing panics; every answer is a status in 200..=599 with a JSON
//! body; a signed URL the API returns verifies under the signer's public key for the viewer
//! who asked, at the time it was signed.
#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use signer::cloudfront::{SignedRequest, TrustedKeys};
use signer::config::Config;
use signer::handler::{handle_at, App};
use signer::keys::SigningKey;

const KEY_ID: &str = "K2JCJMDEHXQW5F";
const NOW: u64 = 1_900_000_000;
const ROUTES: [(&str, &str); 7] = [
    ("POST", "/api/sign-url"),
    ("POST", "/api/sign-cookies"),
    ("POST", "/api/upload-url"),
    ("POST", "/api/upload-form"),
    ("POST", "/api/download-url"),
    ("GET", "/api/whoami"),
    ("POST", "/api/clear-cookies"),
];

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: App,
    trusted: TrustedKeys,
    event: Value,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let pem = include_str!("../../signer/tests/data/rsa2048-pkcs1.pem");
    let vars: HashMap<&str, String> = HashMap::from([
        ("CLOUDFRONT_KEY_PAIR_ID", KEY_ID.to_owned()),
        ("CLOUDFRONT_PRIVATE_KEY", pem.to_owned()),
        ("BUCKET", "images".to_owned()),
        ("PUBLIC_BASE_URL", "https://cdn.example.com".to_owned()),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("the config parses");
    let credentials =
        aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "fuzz");
    // Nothing listens there: a request that reached S3 would fail fast, not hang.
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            credentials,
        ))
        .build();
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let app = runtime.block_on(App::build(config, &sdk)).expect("the app builds");
    let mut trusted = TrustedKeys::new();
    let key = SigningKey::from_pem(pem.as_bytes()).expect("the test key parses");
    trusted.insert(KEY_ID, key.verifying_key().expect("a public key"));
    let event =
        serde_json::from_str(include_str!("../../tests/data/apigw_v2/signer_sign_cookies.json"))
            .expect("the fixture parses");
    Fixture { runtime, app, trusted, event }
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let mut parts = text.splitn(4, '\0');
    let body = parts.next().unwrap_or_default();
    let galleries = parts.next();
    let sub = parts.next();
    let viewer = parts.next();
    let (method, route) = ROUTES[usize::from(selector % 7)];
    let f = &*FIXTURE;

    let mut event = f.event.clone();
    event["rawPath"] = route.into();
    event["routeKey"] = format!("{method} {route}").into();
    event["requestContext"]["http"]["path"] = route.into();
    event["requestContext"]["http"]["method"] = method.into();
    event["body"] = body.into();
    let claims = &mut event["requestContext"]["authorizer"]["jwt"]["claims"];
    if let Some(g) = galleries {
        claims["galleries"] = g.into();
    }
    if let Some(s) = sub {
        claims["sub"] = s.into();
    }
    if let Some(v) = viewer {
        event["headers"]["x-viewer-address"] = v.into();
    }
    let Ok(request) = lambda_http::request::from_str(&event.to_string()) else { return };
    let viewer_ip = request
        .headers()
        .get("x-viewer-address")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let resp =
        f.runtime.block_on(handle_at(&f.app, request, UNIX_EPOCH + Duration::from_secs(NOW)));
    let status = resp.status().as_u16();
    assert!((200..=599).contains(&status), "{status}");
    let json: Value = serde_json::from_slice(resp.body().as_ref()).expect("every answer is JSON");
    if status == 200 && route == "/api/sign-url" {
        let url = json["url"].as_str().expect("a signed URL");
        // Unbound when the viewer's address is unknown: any address then passes.
        let client_ip = viewer_ip.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        let verified =
            f.trusted.verify(&SignedRequest { url, cookie_header: None, client_ip, now: NOW });
        assert!(verified.is_ok(), "{url} for {client_ip}: {verified:?}");
    }
});
