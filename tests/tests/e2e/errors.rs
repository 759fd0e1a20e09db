//! Every error status, with its JSON code, and nothing written to the bucket: through the
//! whole chain in both delivery modes (the S3 website's 307 then the resizer's answer, or the
//! failover origin's answer at once), and straight to the resizer's route.

use e2e::{in_both_modes, DeliveryMode, Stack};
use reqwest::Method;

/// Checks a chain ended in the resizer's JSON error with `status` and `code`.
#[track_caller]
fn assert_error(stack: &Stack, chain: &e2e::Chain, status: u16, code: &str, path: &str) {
    let last = chain.last();
    let text = String::from_utf8_lossy(&chain.body);
    let before: Vec<u16> = match stack.delivery() {
        DeliveryMode::Redirect => vec![307, status],
        DeliveryMode::Failover => vec![status],
    };
    assert_eq!(chain.statuses(), before, "{path}: {text}");
    assert_eq!(last.headers["content-type"], "application/json", "{path}: {text}");
    // Terminal refusals may be cached for ERROR_CACHE_SECONDS (default 60); the rest never.
    let terminal = ["original-not-found", "source-too-large", "unsupported-image"];
    let cache_control = if terminal.contains(&code) { "max-age=60" } else { "no-store" };
    assert_eq!(last.headers["cache-control"], cache_control, "{path}");
    let json = chain.json();
    assert_eq!(json["code"], code, "{path}: {json}");
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
}

/// Requests the viewer path `path` and checks the error, and that the bucket did not change.
async fn refuses(stack: &Stack, path: &str, status: u16, code: &str) {
    let before = stack.keys().await;
    let chain = stack.follow(Method::GET, path).await;
    assert_error(stack, &chain, status, code, path);
    assert_eq!(stack.keys().await, before, "{path} changed the bucket");
}

/// Requests the resizer's route `/resize/{key}` directly (redirect mode); returns the
/// status and JSON body.
async fn error_of(stack: &Stack, key: &str) -> (u16, serde_json::Value) {
    let (status, headers, body) = stack.request_raw(Method::GET, &format!("/resize/{key}")).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{key}: {status} {headers:?} {text}"
    );
    assert_eq!(headers["cache-control"], "no-store", "{key}");
    (status, serde_json::from_slice(&body).expect("JSON body"))
}

/// A stack whose resizer and bucket endpoints use `endpoint` as their S3 store.
async fn stack_on(
    mode: DeliveryMode,
    endpoint: String,
    env: &[(&str, &str)],
    secret_key: Option<&str>,
) -> Stack {
    Stack::start_with(env, |o| {
        o.delivery = mode;
        o.s3_endpoint = Some(endpoint);
        o.upload_samples = false;
        if let Some(secret) = secret_key {
            o.secret_key = secret.into();
        }
    })
    .await
}

in_both_modes!(client_errors_have_stable_codes_and_write_nothing, client_errors);
async fn client_errors(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[("MAX_DIMENSION", "2000")]).await;
    stack.put("notes/readme.jpg", b"plain text, not an image".to_vec(), "image/jpeg").await;
    stack.put("truncated.jpg", devserver::SAMPLE_PHOTO[..4000].to_vec(), "image/jpeg").await;

    let cases = [
        ("/photos/cat.jpg", 400, "invalid-key"),
        ("/300x300/300x300/samples/seeding.jpg", 400, "invalid-key"),
        ("/300x300/samples%5Cseeding.jpg", 400, "invalid-key"),
        ("/300x300/samples%0Aseeding.jpg", 400, "invalid-key"),
        ("/0300x300/samples/seeding.jpg", 400, "invalid-key"),
        ("/2001x1/samples/seeding.jpg", 400, "invalid-key"),
        ("/300x300/samples/missing.jpg", 404, "original-not-found"),
        ("/300x300/notes/readme.jpg", 422, "unsupported-image"),
        ("/300x300/truncated.jpg", 422, "unsupported-image"),
    ];
    for (path, status, code) in cases {
        refuses(&stack, path, status, code).await;
    }
    // Keys the grammar refuses however they arrive at the resizer's route (a key over
    // 1024 bytes never gets that far through the bucket: S3 answers KeyTooLongError).
    if mode == DeliveryMode::Redirect {
        let long = format!("10x10/{}", "a".repeat(1020));
        for key in [
            long.as_str(),
            "300x300/%2E%2E/samples/seeding.jpg",
            "300x300/samples/%2E/seeding.jpg",
            "300x300/%2Fsamples/seeding.jpg",
            "300x300/samples/../seeding.jpg",
        ] {
            let (status, json) = error_of(&stack, key).await;
            assert_eq!(
                (status, json["code"].as_str()),
                (400, Some("invalid-key")),
                "{key}: {json}"
            );
        }
    }
    // Methods other than GET and HEAD never reach the resizer: CloudFront's behaviours
    // allow only those.
    for method in [Method::POST, Method::DELETE] {
        let (hop, _) = stack.request(method, &stack.url("/300x300/samples/seeding.jpg")).await;
        assert_eq!(hop.status, 403, "{hop:#?}");
        assert_eq!(hop.headers["x-cache"], "Error from cloudfront");
    }
    assert!(stack.get("300x300/samples/seeding.jpg").await.is_none());
}

in_both_modes!(sizes_outside_allowed_resolutions_are_forbidden, allowed_resolutions);
async fn allowed_resolutions(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[("ALLOWED_RESOLUTIONS", "300x300,640x,x200")]).await;
    for path in [
        "/301x300/samples/seeding.jpg",
        "/300x/samples/seeding.jpg",
        "/640x640/samples/seeding.jpg",
        "/123x45/samples/seeding.jpg",
    ] {
        refuses(&stack, path, 403, "resolution-not-allowed").await;
    }
    for allowed in
        ["/300x300/samples/seeding.jpg", "/640x/samples/seeding.jpg", "/x200/samples/seeding.jpg"]
    {
        let chain = stack.follow(Method::GET, allowed).await;
        assert_eq!(chain.statuses(), stack.miss(), "{allowed}");
    }
}

in_both_modes!(originals_over_the_byte_or_pixel_limit_are_refused, source_limits);
async fn source_limits(mode: DeliveryMode) {
    let just_under_the_sample = (devserver::SAMPLE_PHOTO.len() - 1).to_string();
    for limit in [
        ("MAX_SOURCE_BYTES", just_under_the_sample.as_str()),
        ("MAX_SOURCE_PIXELS", "15000000"), // the sample is 5312x2988 = 15.9 MP
    ] {
        let stack = Stack::start_in(mode, &[limit]).await;
        refuses(&stack, "/300x300/samples/seeding.jpg", 413, "source-too-large").await;
    }
}

in_both_modes!(boxes_with_more_pixels_than_the_limit_are_refused_before_any_work, box_limit);
async fn box_limit(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[("MAX_SOURCE_PIXELS", "1000000")]).await;
    for path in ["/1001x1000/samples/seeding.jpg", "/1001x1000/samples/missing.jpg"] {
        refuses(&stack, path, 400, "output-too-large").await;
    }
    // Exactly at the limit it is produced: here an upscale of a small original.
    let small = image::RgbImage::from_pixel(100, 80, image::Rgb([10, 90, 200]));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(small)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    stack.put("small.png", png, "image/png").await;
    let chain = stack.follow(Method::GET, "/1000x1000/small.png").await;
    assert_eq!(chain.statuses(), stack.miss());
    assert_eq!(e2e::inspect(&chain.body), (image::ImageFormat::Png, 1000, 1000));
    assert_eq!(
        stack.server.object_reads("samples/seeding.jpg"),
        0,
        "refused boxes fetched nothing"
    );
}

/// A port with nothing listening.
/// An endpoint that refuses connections: a port bound but never listened on, held for as
/// long as the socket lives (a port merely closed again could be taken by another test's
/// server in the meantime, which then answers).
fn dead_endpoint() -> (String, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (format!("http://{addr}"), socket)
}

#[tokio::test]
async fn unreachable_storage_is_503() {
    let (endpoint, _held) = dead_endpoint();
    let stack = stack_on(DeliveryMode::Redirect, endpoint, &[], None).await;
    let (status, json) = error_of(&stack, "300x300/a.jpg").await;
    assert_eq!((status, json["code"].as_str()), (503, Some("storage-unavailable")), "{json}");
    assert!(
        !json["message"].as_str().unwrap().contains("127.0.0.1"),
        "5xx bodies carry no internals: {json}"
    );
}

#[tokio::test]
async fn storage_that_does_not_answer_is_504() {
    // Accepts connections and never replies.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let stack =
        stack_on(DeliveryMode::Redirect, endpoint, &[("S3_OPERATION_TIMEOUT_MS", "600")], None)
            .await;
    let (status, json) = error_of(&stack, "300x300/a.jpg").await;
    assert_eq!((status, json["code"].as_str()), (504, Some("storage-timeout")), "{json}");
    hold.abort();
}

#[tokio::test]
async fn storage_refusing_our_signature_is_502() {
    // The embedded store checks SigV4; a resizer holding the wrong secret is refused (403).
    let store = Stack::start(&[]).await;
    let stack = stack_on(
        DeliveryMode::Redirect,
        store.server.s3_endpoint.clone(),
        &[],
        Some("not-the-secret"),
    )
    .await;
    let (status, json) = error_of(&stack, "300x300/samples/seeding.jpg").await;
    assert_eq!((status, json["code"].as_str()), (502, Some("storage-error")), "{json}");
    assert!(store.get("300x300/samples/seeding.jpg").await.is_none());
}

#[tokio::test]
async fn unreachable_storage_behind_the_failover_origin_is_503_from_the_resizer() {
    // The bucket cannot be reached either, so CloudFront fails over to the resizer, whose
    // own read fails in turn.
    let (endpoint, _held) = dead_endpoint();
    let stack = stack_on(DeliveryMode::Failover, endpoint, &[], None).await;
    let chain = stack.follow(Method::GET, "/300x300/a.jpg").await;
    assert_eq!(chain.statuses(), [503], "{chain:#?}");
    assert_eq!(chain.json()["code"], "storage-unavailable");
}
