//! Real API Gateway HTTP API (v2) and function URL events, parsed by lambda_http as the
//! Lambda runtime does, through the resizer's handler against the real store.

use e2e::{inspect, Stack};
use image::ImageFormat;

fn event(name: &str) -> lambda_http::Request {
    let path = format!("{}/data/apigw_v2/{name}", env!("CARGO_MANIFEST_DIR"));
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    lambda_http::request::from_str(&json).unwrap_or_else(|e| panic!("{name} parses: {e}"))
}

/// The secret the fixtures' CloudFront adds as `x-origin-verify`.
const FIXTURE_SECRET: &str = "fixture-origin-secret-0123456789abcdef";

/// A resizer App on the stack's store, configured as the template configures it.
fn app(stack: &Stack, delivery: &str) -> resizer::App {
    let bucket = stack.server.bucket.clone();
    let delivery = delivery.to_owned();
    let config = resizer::Config::from_lookup(|k| match k {
        "BUCKET" => Some(bucket.clone()),
        "DELIVERY_MODE" => Some(delivery.clone()),
        "ORIGIN_VERIFY_SECRET" => Some(FIXTURE_SECRET.into()),
        _ => None,
    })
    .unwrap();
    resizer::App::new(config, stack.server.client().clone())
}

fn json_code(resp: &lambda_http::Response<lambda_http::Body>) -> String {
    let lambda_http::Body::Text(body) = resp.body() else { panic!("text body: {:?}", resp.body()) };
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    json["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_miss_event_writes_the_derivative_and_answers_307() {
    let stack = Stack::start(&[]).await;
    let resp = resizer::handle(&app(&stack, "redirect"), event("resize_miss.json")).await;
    assert_eq!(resp.status(), 307);
    assert_eq!(resp.headers()["location"], "/300x300/samples/seeding.jpg");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (stored, content_type, _) = stack.get("300x300/samples/seeding.jpg").await.unwrap();
    assert_eq!(content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(inspect(&stored), (ImageFormat::Jpeg, 300, 300));
}

#[tokio::test]
async fn the_raw_path_is_read_back_to_the_key() {
    let stack = Stack::start(&[]).await;
    let original = "samples/my cat+dog 100% ảnh.jpg";
    stack.put(original, devserver::SAMPLE_PHOTO.to_vec(), "image/jpeg").await;
    let resp = resizer::handle(&app(&stack, "redirect"), event("resize_encoded_key.json")).await;
    assert_eq!(resp.status(), 307, "{:?}", resp.body());
    assert_eq!(
        resp.headers()["location"],
        "/300x/samples/my%20cat%2Bdog%20100%25%20%E1%BA%A3nh.jpg"
    );
    assert!(stack.get(&format!("300x/{original}")).await.is_some());
}

#[tokio::test]
async fn head_and_stage_prefixed_events_are_served() {
    let stack = Stack::start(&[]).await;
    let resp = resizer::handle(&app(&stack, "redirect"), event("resize_head.json")).await;
    assert_eq!(resp.status(), 307);
    assert!(stack.get("x200/samples/seeding.jpg").await.is_some());
    let resp = resizer::handle(&app(&stack, "redirect"), event("resize_stage_path.json")).await;
    assert_eq!(resp.status(), 307);
    assert_eq!(resp.headers()["location"], "/640x/samples/seeding.jpg");
}

#[tokio::test]
async fn bad_events_get_json_errors() {
    let stack = Stack::start(&[]).await;
    for (name, status, code) in [
        ("resize_missing_key.json", 400, "missing-key"),
        ("resize_post.json", 405, "method-not-allowed"),
    ] {
        let resp = resizer::handle(&app(&stack, "redirect"), event(name)).await;
        assert_eq!(resp.status(), status, "{name}");
        assert_eq!(json_code(&resp), code, "{name}");
    }
}

#[tokio::test]
async fn a_call_to_the_api_that_did_not_come_through_cloudfront_is_refused_before_any_work() {
    let stack = Stack::start(&[]).await;
    let resp = resizer::handle(&app(&stack, "redirect"), event("resize_direct_call.json")).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(json_code(&resp), "origin-not-verified");
    assert_eq!(stack.server.object_reads("samples/seeding.jpg"), 0);
    assert!(stack.get("300x300/samples/seeding.jpg").await.is_none());
}

#[tokio::test]
async fn an_encoded_spelling_of_a_private_key_is_refused_before_any_read() {
    let stack = Stack::start(&[]).await;
    let resp =
        resizer::handle(&app(&stack, "redirect"), event("resize_encoded_private.json")).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(json_code(&resp), "unsigned-private-path");
    let lambda_http::Body::Text(body) = resp.body() else { panic!() };
    assert!(!body.contains("seeding"), "the answer says nothing about the original: {body}");
    assert_eq!(stack.server.object_reads(devserver::PRIVATE_SAMPLE_KEY), 0);
}

#[tokio::test]
async fn a_function_url_event_is_answered_with_the_image() {
    let stack = Stack::start(&[]).await;
    let resp = resizer::handle(&app(&stack, "failover"), event("function_url_miss.json")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(resp.headers()["cache-control"], "public, max-age=31536000, immutable");
    let lambda_http::Body::Binary(bytes) = resp.body() else { panic!("binary body") };
    assert_eq!(inspect(bytes), (ImageFormat::Jpeg, 300, 300));
    let (stored, _, _) = stack.get("300x300/samples/seeding.jpg").await.unwrap();
    assert_eq!(&stored[..], &bytes[..], "the answer is what was stored");
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

#[tokio::test]
async fn a_function_url_event_for_a_size_made_meanwhile_answers_with_the_stored_object() {
    // CloudFront's 404 came before another writer (or the `resize` CLI) stored the size:
    // the function answers with what is stored, under its own headers.
    let stack = Stack::start(&[]).await;
    let sentinel = crate::png_with_alpha(30, 20);
    stack
        .server
        .client()
        .put_object()
        .bucket(&stack.server.bucket)
        .key("300x300/samples/seeding.jpg")
        .content_type("image/png")
        .cache_control("public, max-age=600")
        .body(aws_sdk_s3::primitives::ByteStream::from(sentinel.clone()))
        .send()
        .await
        .unwrap();
    let resp = resizer::handle(&app(&stack, "failover"), event("function_url_miss.json")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.headers()["cache-control"], "public, max-age=600");
    let lambda_http::Body::Binary(bytes) = resp.body() else { panic!("binary body") };
    assert_eq!(&bytes[..], &sentinel[..]);
    // Nothing made or written over (the original's read, sent with the existence check,
    // was dropped).
    assert_eq!(stack.server.object_writes("300x300/samples/seeding.jpg"), 1, "only ours");
    assert_eq!(stack.get("300x300/samples/seeding.jpg").await.unwrap().0[..], sentinel[..]);
}
