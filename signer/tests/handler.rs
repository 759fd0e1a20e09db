//! The signer's handler as the Lambda runs it: API Gateway HTTP API (v2) events parsed by
//! lambda_http. Nothing here reaches S3: presigning a PUT is local.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use signer::config::Config;
use signer::handler::{handle_at, App};

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
