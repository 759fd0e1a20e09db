//! Real API Gateway HTTP API (v2) events, parsed by lambda_http as the Lambda runtime does,
//! through the resizer's handler against the real store.

use e2e::{inspect, Stack};
use image::ImageFormat;

fn event(name: &str) -> lambda_http::Request {
    let path = format!("{}/data/apigw_v2/{name}", env!("CARGO_MANIFEST_DIR"));
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("{name} parses: {e}"))
}

/// A resizer App on the stack's store whose 307s point at a CloudFront-like base URL.
fn app(stack: &Stack) -> resizer::App {
    let bucket = stack.server.bucket.clone();
    let config = resizer::Config::from_lookup(|k| match k {
        "BUCKET" => Some(bucket.clone()),
        "PUBLIC_BASE_URL" => Some("https://cdn.example.com".into()),
        _ => None,
    })
    .unwrap();
    resizer::App::new(config, stack.server.client().clone())
}

#[tokio::test]
async fn a_miss_event_writes_the_derivative_and_answers_307() {
    let stack = Stack::start(&[]).await;
    let resp = resizer::handle(&app(&stack), event("resize_miss.json")).await;
    assert_eq!(resp.status(), 307);
    assert_eq!(resp.headers()["location"], "https://cdn.example.com/300x300/samples/seeding.jpg");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (stored, content_type, _) = stack.get("300x300/samples/seeding.jpg").await.unwrap();
    assert_eq!(content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(inspect(&stored), (ImageFormat::Jpeg, 300, 300));
}

#[tokio::test]
async fn the_raw_query_string_is_decoded_exactly_once() {
    let stack = Stack::start(&[]).await;
    let original = "samples/my cat+dog 100% ảnh.jpg";
    stack.put(original, devserver::SAMPLE_PHOTO.to_vec(), "image/jpeg").await;
    let resp = resizer::handle(&app(&stack), event("resize_encoded_key.json")).await;
    assert_eq!(resp.status(), 307, "{:?}", resp.body());
    assert_eq!(
        resp.headers()["location"],
        "https://cdn.example.com/300x/samples/my%20cat%2Bdog%20100%25%20%E1%BA%A3nh.jpg"
    );
    assert!(stack.get(&format!("300x/{original}")).await.is_some());
}

#[tokio::test]
async fn head_and_stage_prefixed_events_are_served() {
    let stack = Stack::start(&[]).await;
    let resp = resizer::handle(&app(&stack), event("resize_head.json")).await;
    assert_eq!(resp.status(), 307);
    assert!(stack.get("x200/samples/seeding.jpg").await.is_some());
    let resp = resizer::handle(&app(&stack), event("resize_stage_path.json")).await;
    assert_eq!(resp.status(), 307);
    assert_eq!(resp.headers()["location"], "https://cdn.example.com/640x/samples/seeding.jpg");
}

#[tokio::test]
async fn bad_events_get_json_errors() {
    let stack = Stack::start(&[]).await;
    for (name, status, code) in [
        ("resize_missing_key.json", 400, "missing-key"),
        ("resize_post.json", 405, "method-not-allowed"),
    ] {
        let resp = resizer::handle(&app(&stack), event(name)).await;
        assert_eq!(resp.status(), status, "{name}");
        let lambda_http::Body::Text(body) = resp.body() else { panic!("{name}: text body") };
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["code"], code, "{name}");
    }
}

/// A signer App on the stack's store, with the signer crate's test key, signing for a
/// CloudFront-like base URL.
async fn signer_app(stack: &Stack) -> signer::handler::App {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../signer/tests/data/rsa2048-pkcs1.pem"
    ))
    .unwrap();
    let bucket = stack.server.bucket.clone();
    let config = signer::config::Config::from_lookup(|k| match k {
        "CLOUDFRONT_KEY_PAIR_ID" => Some("K2JCJMDEHXQW5F".into()),
        "CLOUDFRONT_PRIVATE_KEY" => Some(pem.clone()),
        "BUCKET" => Some(bucket.clone()),
        "PUBLIC_BASE_URL" => Some("https://cdn.example.com".into()),
        "COOKIE_DOMAIN" => Some("example.com".into()),
        "S3_FORCE_PATH_STYLE" => Some("true".into()),
        _ => None,
    })
    .unwrap();
    let sdk = devserver::sdk_config(
        &stack.server.s3_endpoint,
        devserver::DEFAULT_ACCESS_KEY,
        devserver::DEFAULT_SECRET_KEY,
    );
    signer::handler::App::build(config, &sdk).await.unwrap()
}

fn json_body(resp: &lambda_http::Response<lambda_http::Body>) -> serde_json::Value {
    serde_json::from_slice(resp.body().as_ref()).unwrap()
}

#[tokio::test]
async fn a_jwt_authorizer_event_gets_gallery_cookies_for_its_claims() {
    let stack = Stack::start(&[]).await;
    let resp =
        signer::handler::handle(&signer_app(&stack).await, event("signer_sign_cookies.json")).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    let cookies: Vec<&str> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .filter(|c| !c.contains("Max-Age=0"))
        .collect();
    assert_eq!(cookies.len(), 3);
    for cookie in &cookies {
        for attribute in
            ["Path=/", "Domain=example.com", "Secure", "HttpOnly", "SameSite=Lax", "Max-Age=3600"]
        {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
    }
    assert_eq!(json_body(&resp)["resource"], "https://cdn.example.com/*private/galleries/demo/*");
}

#[tokio::test]
async fn an_event_without_authorizer_claims_is_401_json() {
    let stack = Stack::start(&[]).await;
    let resp =
        signer::handler::handle(&signer_app(&stack).await, event("signer_no_authorizer.json"))
            .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(json_body(&resp)["code"], "unauthenticated");
    assert!(resp.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn a_base64_body_event_gets_a_post_form_for_the_users_prefix() {
    let stack = Stack::start(&[]).await;
    let resp =
        signer::handler::handle(&signer_app(&stack).await, event("signer_upload_form_base64.json"))
            .await;
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    let body = json_body(&resp);
    let key = body["key"].as_str().unwrap();
    assert!(
        key.starts_with("uploads/8f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f/") && key.ends_with(".png"),
        "{key}"
    );
    assert_eq!(body["max_bytes"], 1_000_000);
    assert_eq!(
        body["url"],
        format!("{}/{}", stack.server.s3_endpoint, stack.server.bucket).as_str()
    );
}
