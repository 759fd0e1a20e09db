//! Every error status, with its JSON code, and nothing written to the bucket.

use e2e::Stack;
use reqwest::Method;

/// Requests `/resize{query}` directly; returns the status and the JSON body after checking
/// the error headers.
async fn error_of(stack: &Stack, method: Method, query: &str) -> (u16, serde_json::Value) {
    let (hop, body) = stack.request(method, &stack.url(&format!("/resize{query}"))).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(hop.headers["content-type"], "application/json", "{query}: {text}");
    assert_eq!(hop.headers["cache-control"], "no-store", "{query}");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{json}");
    (hop.status, json)
}

/// Checks status and code, and that the bucket did not change.
async fn refuses(stack: &Stack, method: Method, query: &str, status: u16, code: &str) {
    let before = stack.keys().await;
    let (got, json) = error_of(stack, method, query).await;
    assert_eq!((got, json["code"].as_str()), (status, Some(code)), "{query}: {json}");
    assert_eq!(stack.keys().await, before, "{query} changed the bucket");
}

/// A stack whose resizer and website use `endpoint` as their S3 store.
async fn stack_on(endpoint: String, env: &[(&str, &str)], secret_key: Option<&str>) -> Stack {
    Stack::start_with(env, |o| {
        o.s3_endpoint = Some(endpoint);
        o.upload_samples = false;
        if let Some(secret) = secret_key {
            o.secret_key = secret.into();
        }
    })
    .await
}

#[tokio::test]
async fn client_errors_have_stable_codes_and_write_nothing() {
    let stack = Stack::start(&[("MAX_DIMENSION", "2000")]).await;
    stack.put("notes/readme.jpg", b"plain text, not an image".to_vec(), "image/jpeg").await;
    stack.put("truncated.jpg", devserver::SAMPLE_PHOTO[..4000].to_vec(), "image/jpeg").await;

    let long = format!("?key=10x10/{}", "a".repeat(1020));
    let cases = [
        (Method::GET, "", 400, "missing-key"),
        (Method::GET, "?key=", 400, "missing-key"),
        (Method::GET, "?other=1", 400, "missing-key"),
        (Method::GET, "?key=photos/cat.jpg", 400, "invalid-key"),
        (Method::GET, "?key=300x300/300x300/samples/seeding.jpg", 400, "invalid-key"),
        (Method::GET, "?key=300x300/../samples/seeding.jpg", 400, "invalid-key"),
        (Method::GET, "?key=300x300/samples/./seeding.jpg", 400, "invalid-key"),
        (Method::GET, "?key=300x300//samples/seeding.jpg", 400, "invalid-key"),
        (Method::GET, "?key=300x300/samples%5Cseeding.jpg", 400, "invalid-key"),
        (Method::GET, "?key=300x300/samples%0Aseeding.jpg", 400, "invalid-key"),
        (Method::GET, "?key=300x300/%FF.jpg", 400, "invalid-key"),
        (Method::GET, "?key=0300x300/samples/seeding.jpg", 400, "invalid-key"),
        (Method::GET, "?key=2001x1/samples/seeding.jpg", 400, "invalid-key"),
        (Method::GET, long.as_str(), 400, "invalid-key"),
        (Method::GET, "?key=300x300/samples/missing.jpg", 404, "original-not-found"),
        (Method::GET, "?key=300x300/notes/readme.jpg", 422, "unsupported-image"),
        (Method::GET, "?key=300x300/truncated.jpg", 422, "unsupported-image"),
        (Method::POST, "?key=300x300/samples/seeding.jpg", 405, "method-not-allowed"),
        (Method::DELETE, "?key=300x300/samples/seeding.jpg", 405, "method-not-allowed"),
    ];
    for (method, query, status, code) in cases {
        refuses(&stack, method, query, status, code).await;
    }
}

#[tokio::test]
async fn sizes_outside_allowed_resolutions_are_forbidden() {
    let stack = Stack::start(&[("ALLOWED_RESOLUTIONS", "300x300,640x,x200")]).await;
    refuses(&stack, Method::GET, "?key=301x300/samples/seeding.jpg", 403, "resolution-not-allowed")
        .await;
    refuses(&stack, Method::GET, "?key=300x/samples/seeding.jpg", 403, "resolution-not-allowed")
        .await;
    refuses(&stack, Method::GET, "?key=640x640/samples/seeding.jpg", 403, "resolution-not-allowed")
        .await;
    for allowed in
        ["/300x300/samples/seeding.jpg", "/640x/samples/seeding.jpg", "/x200/samples/seeding.jpg"]
    {
        let chain = stack.follow(Method::GET, allowed).await;
        assert_eq!(chain.statuses(), [307, 307, 200], "{allowed}");
    }
    // Through the website, a forbidden size ends in the resizer's 403 JSON.
    let chain = stack.follow(Method::GET, "/123x45/samples/seeding.jpg").await;
    assert_eq!(chain.statuses(), [307, 403]);
    assert_eq!(chain.json()["code"], "resolution-not-allowed");
}

#[tokio::test]
async fn originals_over_the_byte_or_pixel_limit_are_refused() {
    let just_under_the_sample = (devserver::SAMPLE_PHOTO.len() - 1).to_string();
    for limit in [
        ("MAX_SOURCE_BYTES", just_under_the_sample.as_str()),
        ("MAX_SOURCE_PIXELS", "15000000"), // the sample is 5312x2988 = 15.9 MP
    ] {
        let stack = Stack::start(&[limit]).await;
        let query = "?key=300x300/samples/seeding.jpg";
        refuses(&stack, Method::GET, query, 413, "source-too-large").await;
    }
}

#[tokio::test]
async fn boxes_with_more_pixels_than_the_limit_are_refused_before_any_work() {
    let stack = Stack::start(&[("MAX_SOURCE_PIXELS", "1000000")]).await;
    for query in ["?key=1001x1000/samples/seeding.jpg", "?key=1001x1000/samples/missing.jpg"] {
        refuses(&stack, Method::GET, query, 400, "output-too-large").await;
    }
    // Exactly at the limit it is produced: here an upscale of a small original.
    let small = image::RgbImage::from_pixel(100, 80, image::Rgb([10, 90, 200]));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(small)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    stack.put("small.png", png, "image/png").await;
    let chain = stack.follow(Method::GET, "/1000x1000/small.png").await;
    assert_eq!(chain.statuses(), [307, 307, 200]);
    assert_eq!(e2e::inspect(&chain.body), (image::ImageFormat::Png, 1000, 1000));
    assert_eq!(
        stack.server.object_reads("samples/seeding.jpg"),
        0,
        "refused boxes fetched nothing"
    );
}

/// A port with nothing listening.
async fn dead_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test]
async fn unreachable_storage_is_503() {
    let stack = stack_on(dead_endpoint().await, &[], None).await;
    let (status, json) = error_of(&stack, Method::GET, "?key=300x300/a.jpg").await;
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
    let stack = stack_on(endpoint, &[("S3_OPERATION_TIMEOUT_MS", "600")], None).await;
    let (status, json) = error_of(&stack, Method::GET, "?key=300x300/a.jpg").await;
    assert_eq!((status, json["code"].as_str()), (504, Some("storage-timeout")), "{json}");
    hold.abort();
}

#[tokio::test]
async fn storage_refusing_our_signature_is_502() {
    // The embedded store checks SigV4; a resizer holding the wrong secret is refused (403).
    let store = Stack::start(&[]).await;
    let stack = stack_on(store.server.s3_endpoint.clone(), &[], Some("not-the-secret")).await;
    let (status, json) = error_of(&stack, Method::GET, "?key=300x300/samples/seeding.jpg").await;
    assert_eq!((status, json["code"].as_str()), (502, Some("storage-error")), "{json}");
    assert!(store.get("300x300/samples/seeding.jpg").await.is_none());
}
