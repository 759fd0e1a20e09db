//! Hostile originals through the whole stack, in both delivery modes: each answered with its
//! documented status and code, nothing written, the original untouched; and a refusal is
//! remembered, so asking again within ERROR_CACHE_SECONDS reads and decodes nothing.
//! The files are made by `cargo test -p resizer --lib write_hostile_corpus -- --ignored`.

use e2e::{in_both_modes, DeliveryMode, Stack};
use reqwest::Method;

const HOSTILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/hostile");

fn hostile(name: &str) -> Vec<u8> {
    std::fs::read(format!("{HOSTILE}/{name}")).unwrap()
}

/// The JSON error a chain ended in: status, code, Cache-Control.
fn refusal(chain: &e2e::Chain) -> (u16, String, String) {
    let last = chain.last();
    let code = chain.json()["code"].as_str().unwrap_or_default().to_owned();
    let cache = last.headers.get("cache-control").map(|v| v.to_str().unwrap().to_owned());
    (last.status, code, cache.unwrap_or_default())
}

in_both_modes!(hostile_originals_are_refused_once_and_remembered, refused_and_remembered);
async fn refused_and_remembered(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    let cases = [
        ("scan-bomb.jpg", "image/jpeg", 422, "source-too-complex"),
        ("truncated-progressive.jpg", "image/jpeg", 422, "unsupported-image"),
        ("lying-header.png", "image/png", 422, "unsupported-image"),
        ("huge-dimensions.webp", "image/webp", 413, "source-too-large"),
    ];
    for (name, content_type, _, _) in cases {
        stack.put(&format!("hostile/{name}"), hostile(name), content_type).await;
    }
    let before = stack.keys().await;
    for (name, _, status, code) in cases {
        let original = format!("hostile/{name}");
        let path = format!("/300x300/{original}");
        let chain = stack.follow(Method::GET, &path).await;
        assert_eq!(refusal(&chain), (status, code.to_owned(), "max-age=60".to_owned()), "{path}");
        assert_eq!(stack.server.object_reads(&original), 1, "{path}");
        // Again: the same answer, from the resizer's memory (CloudFront does not cache 413
        // or 422, so the request reaches the resizer), without reading the original.
        let again = stack.follow(Method::GET, &path).await;
        assert_eq!(refusal(&again), refusal(&chain), "{path} again");
        assert_eq!(stack.server.object_reads(&original), 1, "{path} was read again");
        // Another size of it is another key: read and refused in its turn.
        let other = stack.follow(Method::GET, &format!("/200x/{original}")).await;
        assert_eq!(refusal(&other).0, status, "{path} at 200x");
        assert_eq!(stack.server.object_reads(&original), 2, "{path} at 200x");
    }
    assert_eq!(stack.keys().await, before, "nothing was written");
    for (name, _, _, _) in cases {
        let (stored, _, _) = stack.get(&format!("hostile/{name}")).await.unwrap();
        assert_eq!(stored.as_ref(), hostile(name).as_slice(), "{name} untouched");
    }
    // Replaced by a good image within the window: the memory holds for the original it was
    // given for only, so the new one is made at once.
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(40, 30, image::Rgb([9, 99, 199])))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    stack.put("hostile/lying-header.png", png, "image/png").await;
    let chain = stack.follow(Method::GET, "/300x300/hostile/lying-header.png").await;
    assert_eq!(chain.statuses(), stack.miss(), "{:?}", String::from_utf8_lossy(&chain.body));
    assert_eq!(e2e::inspect(&chain.body), (image::ImageFormat::Png, 300, 300));
}

in_both_modes!(hostile_originals_that_can_be_read_safely_are_made, handled);
async fn handled(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    // A PNG whose iCCP chunk inflates to 50 MB, a JPEG whose ICC profile is malformed, and a
    // JPEG whose EXIF IFDs loop: each made, without what was wrong in it.
    for (name, content_type, (w, h)) in [
        ("iccp-bomb.png", "image/png", (4, 4)),
        ("malformed-icc.jpg", "image/jpeg", (8, 8)),
        ("looping-exif.jpg", "image/jpeg", (20, 40)),
    ] {
        let original = format!("hostile/{name}");
        stack.put(&original, hostile(name), content_type).await;
        let size = if name == "looping-exif.jpg" { "20x".to_owned() } else { format!("{w}x{h}") };
        let chain = stack.follow(Method::GET, &format!("/{size}/{original}")).await;
        assert_eq!(
            chain.statuses(),
            stack.miss(),
            "{name}: {:?}",
            String::from_utf8_lossy(&chain.body)
        );
        let (_, width, height) = e2e::inspect(&chain.body);
        assert_eq!((width, height), (w, h), "{name}");
        assert!(
            chain.body.len() < 4096,
            "{name}: {} bytes, nothing carried over",
            chain.body.len()
        );
    }
}

in_both_modes!(a_gif_of_thousands_of_frames_is_refused_animated_and_made_still, many_frames);
async fn many_frames(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    let gif = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/animated/3000-frames.gif"));
    stack.put("hostile/3000-frames.gif", gif.unwrap(), "image/gif").await;
    // Kept animated (as GIF, or as WebP) it is over MAX_SOURCE_FRAMES: refused from its
    // headers.
    for path in ["/1x1/hostile/3000-frames.gif", "/1x1.webp/hostile/3000-frames.gif"] {
        let chain = stack.follow(Method::GET, path).await;
        assert_eq!(
            refusal(&chain),
            (413, "source-too-large".into(), "max-age=60".into()),
            "{path}"
        );
        let message = chain.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains("MAX_SOURCE_FRAMES"), "{path}: {message}");
    }
    // Asked as a still format, its first frame is made.
    let chain = stack.follow(Method::GET, "/1x1.png/hostile/3000-frames.gif").await;
    assert_eq!(chain.statuses(), stack.miss(), "{:?}", String::from_utf8_lossy(&chain.body));
    let png = image::load_from_memory(&chain.body).unwrap().into_rgba8();
    assert_eq!(png.get_pixel(0, 0).0, [0, 0, 0, 255], "the first frame");
}

#[tokio::test]
async fn a_resize_over_its_time_budget_is_refused_and_nothing_is_written() {
    let stack = Stack::start_in(DeliveryMode::Failover, &[("RESIZE_BUDGET_MS", "1")]).await;
    let chain = stack.follow(Method::GET, "/300x300/samples/seeding.jpg").await;
    let (status, code, cache) = refusal(&chain);
    // A 5xx, neither cached nor remembered: an overloaded process slows every resize, so
    // running out of time says nothing for sure about the original.
    assert_eq!((status, code.as_str(), cache.as_str()), (503, "resize-too-slow", "no-store"));
    assert!(chain.json()["message"].as_str().unwrap().contains("RESIZE_BUDGET_MS"));
    // The abandoned resize finishes in the background, and nothing writes its result.
    assert!(stack.get("300x300/samples/seeding.jpg").await.is_none());
}

#[tokio::test]
async fn with_error_caching_off_every_request_reads_again() {
    let stack = Stack::start_in(DeliveryMode::Failover, &[("ERROR_CACHE_SECONDS", "0")]).await;
    stack.put("hostile/lying-header.png", hostile("lying-header.png"), "image/png").await;
    for read in 1..=3 {
        let chain = stack.follow(Method::GET, "/300x300/hostile/lying-header.png").await;
        assert_eq!(refusal(&chain), (422, "unsupported-image".into(), "no-store".into()));
        assert_eq!(stack.server.object_reads("hostile/lying-header.png"), read);
    }
}
