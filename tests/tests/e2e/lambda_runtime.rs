//! The built Lambda binaries (`bootstrap`s from `cargo lambda build` when
//! LAMBDA_BOOTSTRAP_DIR is set, as in `scripts/test`) run under a Lambda Runtime API and
//! fed the committed API Gateway HTTP API v2 events, against the embedded store.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::runtime_api::{bootstrap, lambda_environment, Function, Outcome, RuntimeApi};
use e2e::{inspect, Stack};
use image::ImageFormat;
use signer::cloudfront::{SignedRequest, TrustedKeys};
use signer::keys::VerifyingKey;

const INVOKE: Duration = Duration::from_secs(60);
const START: Duration = Duration::from_secs(20);

fn fixture(name: &str) -> String {
    let path = format!("{}/data/apigw_v2/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn signer_key(name: &str) -> String {
    let path = format!("{}/../signer/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The variables that point a function at the stack's store.
fn store_env(stack: &Stack) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL_S3", stack.server.s3_endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", devserver::DEFAULT_ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", devserver::DEFAULT_SECRET_KEY),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("BUCKET", stack.server.bucket.as_str()),
        ("PUBLIC_BASE_URL", "https://cdn.example.com"),
        // The fixtures carry the x-origin-verify header CloudFront adds.
        ("ORIGIN_VERIFY_SECRET", "fixture-origin-secret-0123456789abcdef"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    env
}

fn response(outcome: Outcome) -> serde_json::Value {
    match outcome {
        Outcome::Response(value) => value,
        Outcome::Error(error) => panic!("the function reported an invocation error: {error}"),
    }
}

#[tokio::test]
async fn the_resizer_bootstrap_answers_a_miss_event_with_307_and_writes_the_derivative() {
    let stack = Stack::start(&[]).await;
    let api = RuntimeApi::start().await;
    let env = [lambda_environment(&api, "resizer"), store_env(&stack)].concat();
    let function = Function::spawn(&bootstrap("resizer"), &env);

    let miss = response(api.invoke(&fixture("resize_miss.json"), INVOKE).await);
    assert_eq!(miss["statusCode"], 307, "{miss}");
    assert_eq!(miss["headers"]["location"], "/300x300/samples/seeding.jpg");
    assert_eq!(miss["headers"]["cache-control"], "no-store");
    let (stored, content_type, _) = stack.get("300x300/samples/seeding.jpg").await.unwrap();
    assert_eq!(content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(inspect(&stored), (ImageFormat::Jpeg, 300, 300));

    // The same warm process takes the next event: a POST is refused with its JSON code.
    let post = response(api.invoke(&fixture("resize_post.json"), INVOKE).await);
    assert_eq!(post["statusCode"], 405, "{post}");
    let body: serde_json::Value = serde_json::from_str(post["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["code"], "method-not-allowed");

    // A call that did not come through CloudFront (no x-origin-verify) does nothing.
    let direct = response(api.invoke(&fixture("resize_direct_call.json"), INVOKE).await);
    assert_eq!(direct["statusCode"], 403, "{direct}");
    drop(function);
}

#[tokio::test]
async fn the_resizer_bootstrap_in_failover_mode_answers_a_function_url_event_with_the_image() {
    use base64::Engine as _;
    let stack = Stack::start(&[]).await;
    let api = RuntimeApi::start().await;
    let env = with(
        [lambda_environment(&api, "resizer"), store_env(&stack)].concat(),
        &[("DELIVERY_MODE", "failover")],
    );
    let function = Function::spawn(&bootstrap("resizer"), &env);
    let resp = response(api.invoke(&fixture("function_url_miss.json"), INVOKE).await);
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(resp["headers"]["content-type"], "image/jpeg");
    // A binary body travels base64-encoded in the function's answer.
    assert_eq!(resp["isBase64Encoded"], true);
    let body = base64::engine::general_purpose::STANDARD
        .decode(resp["body"].as_str().expect("a body"))
        .expect("base64");
    assert_eq!(inspect(&body), (ImageFormat::Jpeg, 300, 300));
    let (stored, _, _) = stack.get("300x300/samples/seeding.jpg").await.unwrap();
    assert_eq!(&stored[..], &body[..]);
    drop(function);
}

#[tokio::test]
async fn the_signer_bootstrap_returns_gallery_cookies_in_the_cookies_array() {
    let stack = Stack::start(&[]).await;
    let api = RuntimeApi::start().await;
    let pem = signer_key("rsa2048-pkcs1.pem");
    let env = with(
        [lambda_environment(&api, "signer"), store_env(&stack)].concat(),
        &[
            ("CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
            ("CLOUDFRONT_PRIVATE_KEY", &pem),
            ("COOKIE_DOMAIN", "example.com"),
        ],
    );
    let function = Function::spawn(&bootstrap("signer"), &env);

    let resp = response(api.invoke(&fixture("signer_sign_cookies.json"), INVOKE).await);
    assert_eq!(resp["statusCode"], 200, "{resp}");
    // Payload format 2.0: Set-Cookie travels in `cookies`, one entry per cookie.
    let cookies: Vec<&str> = resp["cookies"]
        .as_array()
        .expect("a cookies array")
        .iter()
        .map(|c| c.as_str().unwrap())
        .filter(|c| !c.contains("Max-Age=0"))
        .collect();
    let names: Vec<&str> = cookies.iter().map(|c| c.split('=').next().unwrap()).collect();
    assert_eq!(names, ["CloudFront-Policy", "CloudFront-Signature", "CloudFront-Key-Pair-Id"]);

    // The cookies open the gallery they were asked for, and only it.
    let mut keys = TrustedKeys::new();
    keys.insert(
        "K2JCJMDEHXQW5F",
        VerifyingKey::from_pem(signer_key("rsa2048-public.pem").as_bytes()).unwrap(),
    );
    let cookie_header =
        cookies.iter().map(|c| c.split(';').next().unwrap()).collect::<Vec<_>>().join("; ");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let check = |url: &str| {
        keys.verify(&SignedRequest {
            url,
            cookie_header: Some(&cookie_header),
            client_ip: "203.0.113.7".parse().unwrap(),
            now,
        })
    };
    assert!(check("https://cdn.example.com/300x300/private/galleries/demo/cat.jpg").is_ok());
    assert!(check("https://cdn.example.com/private/galleries/other/cat.jpg").is_err());
    drop(function);
}

#[tokio::test]
async fn a_resizer_without_bucket_exits_at_start_naming_it_before_polling() {
    let api = RuntimeApi::start().await;
    let env = with(lambda_environment(&api, "resizer"), &[("DELIVERY_MODE", "redirect")]);
    let (ok, output) = Function::spawn(&bootstrap("resizer"), &env).exit(START).await;
    assert!(!ok, "{output}");
    assert!(output.contains("BUCKET is required"), "{output}");
    assert_eq!(api.polls(), 0, "it asked for work with a broken configuration");
}

#[tokio::test]
async fn a_signer_with_an_unreadable_key_exits_at_start_naming_the_variable() {
    let api = RuntimeApi::start().await;
    let env = with(
        lambda_environment(&api, "signer"),
        &[
            ("CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
            (
                "CLOUDFRONT_PRIVATE_KEY",
                "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
            ),
            ("BUCKET", "images"),
            ("PUBLIC_BASE_URL", "https://cdn.example.com"),
        ],
    );
    let (ok, output) = Function::spawn(&bootstrap("signer"), &env).exit(START).await;
    assert!(!ok, "{output}");
    assert!(output.contains("CLOUDFRONT_PRIVATE_KEY"), "{output}");
    assert_eq!(api.polls(), 0, "it asked for work with a broken configuration");
}

/// An SQS event as a Lambda event source mapping delivers it: one message per body.
fn sqs_event(bodies: &[(&str, String)]) -> String {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("AQEB{id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795665000123",
                    "SenderId": "AIDAJHIPRHEMV73VRJEBU",
                    "ApproximateFirstReceiveTimestamp": "1795665000140"
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:images-events",
                "awsRegion": "eu-west-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

#[tokio::test]
async fn the_events_bootstrap_purges_a_stale_size_makes_the_pregenerated_ones_and_reports_bad_messages(
) {
    let stack = Stack::start(&[]).await;
    let original = "photos/ảnh mèo+1.jpg";
    stack.put(original, devserver::SAMPLE_PHOTO.to_vec(), "image/jpeg").await;
    // A size made from an older version of the original.
    let store = resizer::store::Store::new(stack.server.client().clone(), &stack.server.bucket);
    let stamp = resizer::store::Stamp {
        content_type: "image/jpeg",
        cache_control: "public, max-age=31536000, immutable",
        source_etag: Some("0123456789abcdef0123456789abcdef"),
    };
    store.put_stamped("300x300/photos/ảnh mèo+1.jpg", vec![1, 2, 3], stamp).await.unwrap();

    let api = RuntimeApi::start().await;
    let env = with(
        [lambda_environment(&api, "events"), store_env(&stack)].concat(),
        &[("ALLOWED_RESOLUTIONS", "200x200,300x300"), ("PREGENERATE", "200x200")],
    );
    let function = Function::spawn(&bootstrap("events"), &env);
    let notification = std::fs::read_to_string(format!(
        "{}/data/s3_sqs/s3_object_created.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let event = sqs_event(&[
        ("0b1d2a3c-0000-4000-8000-000000000001", notification),
        ("0b1d2a3c-0000-4000-8000-000000000002", "{\"not\": \"an S3 event\"}".into()),
    ]);
    let answer = response(api.invoke(&event, INVOKE).await);
    assert_eq!(
        answer,
        serde_json::json!({ "batchItemFailures": [
            { "itemIdentifier": "0b1d2a3c-0000-4000-8000-000000000002" }
        ]})
    );
    assert_eq!(stack.get("300x300/photos/ảnh mèo+1.jpg").await, None, "the stale size is gone");
    let (made, _, _) = stack.get("200x200/photos/ảnh mèo+1.jpg").await.expect("pregenerated");
    assert_eq!(inspect(&made), (ImageFormat::Jpeg, 200, 200));
    assert!(stack.get(original).await.is_some(), "the original stays");
    drop(function);
}
