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
