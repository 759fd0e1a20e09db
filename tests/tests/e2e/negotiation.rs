//! Format negotiation at the edge, end to end through the devserver's stack in both
//! delivery modes: the path guard rewrites an un-suffixed sized path by the viewer's Accept
//! before the cache lookup, so an AVIF browser gets AVIF, a WebP browser WebP and any other
//! the original's format, each answer with `Vary: Accept`; the cache and the bucket hold
//! one variant per class, whatever the Accept's exact spelling; explicit formats, GIF
//! originals and private galleries behind signed cookies behave as docs/FORMATS.md says;
//! with FormatNegotiation off nothing is rewritten and nothing varies.

use devserver::edge::functions::Negotiation;
use devserver::PRIVATE_SAMPLE_KEY;
use e2e::{cookie_header, in_both_modes, Chain, DeliveryMode, Hop, Stack};
use image::ImageFormat;
use serde_json::json;

const CHROME: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
const SAFARI_16: &str = "image/webp,image/avif,image/jxl,image/heic,image/x-adobe-dng,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";
const FIREFOX_OLD: &str = "image/webp,*/*";
const JPEG_ONLY: &str = "image/jpeg";

const SAMPLE: &str = "samples/seeding.jpg";

/// AVIF encodes take seconds of CPU, and the tests share two cores: a budget that does not
/// turn a slow machine's encode into a 503 (the budget's own tests are elsewhere).
const SETTINGS: &[(&str, &str)] = &[("RESIZE_BUDGET_MS", "120000")];

/// Follows the redirect chain of `path` as a browser loading an image does: the same
/// `Accept` (and `cookie`) on every hop.
async fn fetch(stack: &Stack, path: &str, accept: &str, cookie: Option<&str>) -> Chain {
    let mut headers = vec![("accept", accept)];
    headers.extend(cookie.map(|c| ("cookie", c)));
    stack.follow_with_headers(reqwest::Method::GET, path, &headers).await
}

fn header<'a>(hop: &'a Hop, name: &str) -> Option<&'a str> {
    hop.headers.get(name).map(|v| v.to_str().unwrap())
}

/// The answer's format, from its bytes (AVIF is recognised, not decoded: the image
/// crate's AVIF decoder is not built here) and its Content-Type.
#[track_caller]
fn assert_image(chain: &Chain, format: ImageFormat, content_type: &str) {
    assert_eq!(chain.last().status, 200, "{chain:#?}");
    assert_eq!(header(chain.last(), "content-type"), Some(content_type), "{chain:#?}");
    assert_eq!(image::guess_format(&chain.body).expect("an image"), format, "{chain:#?}");
    if format != ImageFormat::Avif {
        let img = image::load_from_memory(&chain.body).expect("decodes");
        assert!(img.width() <= 300 && img.height() <= 300, "{}x{}", img.width(), img.height());
    }
}

/// The derivative keys of `original` in the bucket.
async fn sizes_of(stack: &Stack, original: &str) -> Vec<String> {
    stack.keys().await.into_iter().filter(|k| k.ends_with(original) && k != original).collect()
}

in_both_modes!(each_class_of_browser_gets_its_format_with_vary_accept, each_class);
async fn each_class(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, SETTINGS).await;
    let path = format!("/300x300/{SAMPLE}");

    let avif = fetch(&stack, &path, CHROME, None).await;
    assert_eq!(avif.statuses(), stack.miss(), "{avif:#?}");
    assert_image(&avif, ImageFormat::Avif, "image/avif");
    assert_eq!(header(avif.last(), "vary"), Some("Accept"));
    if mode == DeliveryMode::Redirect {
        // The edge asked the website for the negotiated key; its miss went to the resizer
        // for that key; the resizer's 307 back names it, and is not rewritten again.
        assert!(avif.hops[1].url.ends_with(&format!("/resize/300x300.avif/{SAMPLE}")), "{avif:#?}");
        assert!(avif.hops[2].url.ends_with(&format!("/300x300.avif/{SAMPLE}")), "{avif:#?}");
    }

    let webp = fetch(&stack, &path, FIREFOX_OLD, None).await;
    assert_eq!(webp.statuses(), stack.miss(), "{webp:#?}");
    assert_image(&webp, ImageFormat::WebP, "image/webp");
    assert_eq!(header(webp.last(), "vary"), Some("Accept"));

    let jpeg = fetch(&stack, &path, JPEG_ONLY, None).await;
    assert_eq!(jpeg.statuses(), stack.miss(), "{jpeg:#?}");
    assert_image(&jpeg, ImageFormat::Jpeg, "image/jpeg");
    assert_eq!(header(jpeg.last(), "vary"), Some("Accept"));

    // One variant per class in the bucket, and in the cache: every later request is a hit,
    // whatever the Accept's spelling within its class (Accept is not in the cache key).
    let mut keys = sizes_of(&stack, SAMPLE).await;
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("300x300.avif/{SAMPLE}"),
            format!("300x300.webp/{SAMPLE}"),
            format!("300x300/{SAMPLE}")
        ]
    );
    for (accept, format, content_type) in [
        (CHROME, ImageFormat::Avif, "image/avif"),
        (SAFARI_16, ImageFormat::Avif, "image/avif"),
        ("image/avif,image/webp,*/*", ImageFormat::Avif, "image/avif"),
        (FIREFOX_OLD, ImageFormat::WebP, "image/webp"),
        ("image/avif;q=0, image/webp", ImageFormat::WebP, "image/webp"),
        (JPEG_ONLY, ImageFormat::Jpeg, "image/jpeg"),
        ("*/*", ImageFormat::Jpeg, "image/jpeg"),
    ] {
        let hit = fetch(&stack, &path, accept, None).await;
        assert_eq!(hit.statuses(), [200], "{accept}: {hit:#?}");
        assert_eq!(header(hit.last(), "x-cache"), Some("Hit from cloudfront"), "{accept}");
        assert_eq!(header(hit.last(), "vary"), Some("Accept"), "{accept}");
        assert_image(&hit, format, content_type);
    }
    assert_eq!(sizes_of(&stack, SAMPLE).await.len(), 3);
}

in_both_modes!(explicit_formats_are_never_rewritten, explicit_formats);
async fn explicit_formats(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, SETTINGS).await;
    let path = format!("/300x300.png/{SAMPLE}");
    let chain = fetch(&stack, &path, CHROME, None).await;
    assert_eq!(chain.statuses(), stack.miss(), "{chain:#?}");
    assert!(chain.last().url.ends_with(&path), "{chain:#?}");
    assert_image(&chain, ImageFormat::Png, "image/png");
    assert_eq!(sizes_of(&stack, SAMPLE).await, [format!("300x300.png/{SAMPLE}")]);
    // Originals are not rewritten either.
    let original = fetch(&stack, &format!("/{SAMPLE}"), CHROME, None).await;
    assert_eq!(original.statuses(), [200]);
    assert_eq!(header(original.last(), "content-type"), Some("image/jpeg"));
}

in_both_modes!(a_gif_original_becomes_webp_even_for_an_avif_browser, gif_to_webp);
async fn gif_to_webp(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, SETTINGS).await;
    stack.put("photos/anim.gif", crate::two_frame_gif(64, 48), "image/gif").await;
    let chain = fetch(&stack, "/300x300/photos/anim.gif", CHROME, None).await;
    assert_eq!(chain.statuses(), stack.miss(), "{chain:#?}");
    assert_image(&chain, ImageFormat::WebP, "image/webp");
    assert_eq!(header(chain.last(), "vary"), Some("Accept"));
    assert_eq!(sizes_of(&stack, "photos/anim.gif").await, ["300x300.webp/photos/anim.gif"]);
}

in_both_modes!(a_private_gallery_image_is_negotiated_behind_its_signed_cookies, private_gallery);
async fn private_gallery(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, SETTINGS).await;
    let token = stack.sign_in("alice", &["demo"]).await;
    let (status, headers, body) =
        stack.api("/api/sign-cookies", Some(&token), json!({ "gallery": "demo" })).await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie_header(&headers);
    let path = format!("/300x300/{PRIVATE_SAMPLE_KEY}");

    let chain = fetch(&stack, &path, CHROME, Some(&cookie)).await;
    assert_eq!(chain.statuses(), stack.miss(), "{chain:#?}");
    assert_image(&chain, ImageFormat::Avif, "image/avif");
    let hit = fetch(&stack, &path, CHROME, Some(&cookie)).await;
    assert_eq!(hit.statuses(), [200], "{hit:#?}");
    assert_eq!(header(hit.last(), "x-cache"), Some("Hit from cloudfront"));
    assert_eq!(
        sizes_of(&stack, PRIVATE_SAMPLE_KEY).await,
        [format!("300x300.avif/{PRIVATE_SAMPLE_KEY}")]
    );
    // Still private: without the cookies the negotiated path is refused, and so is the
    // explicit one.
    for path in [path.clone(), format!("/300x300.avif/{PRIVATE_SAMPLE_KEY}")] {
        let refused = fetch(&stack, &path, CHROME, None).await;
        assert_eq!(refused.statuses(), [403], "{path}: {refused:#?}");
    }
}

in_both_modes!(with_negotiation_off_nothing_is_rewritten_and_nothing_varies, negotiation_off);
async fn negotiation_off(mode: DeliveryMode) {
    let stack = Stack::start_with(SETTINGS, |o| {
        o.delivery = mode;
        o.format_negotiation = Negotiation::Off;
    })
    .await;
    let path = format!("/300x300/{SAMPLE}");
    for accept in [CHROME, FIREFOX_OLD, JPEG_ONLY] {
        let chain = fetch(&stack, &path, accept, None).await;
        assert_image(&chain, ImageFormat::Jpeg, "image/jpeg");
        assert_eq!(header(chain.last(), "vary"), None, "{accept}: {chain:#?}");
    }
    assert_eq!(sizes_of(&stack, SAMPLE).await, [format!("300x300/{SAMPLE}")]);
    // An explicit format is still served, without Vary.
    let chain = fetch(&stack, &format!("/300x300.webp/{SAMPLE}"), CHROME, None).await;
    assert_image(&chain, ImageFormat::WebP, "image/webp");
    assert_eq!(header(chain.last(), "vary"), None);
}

in_both_modes!(webp_only_negotiation_never_writes_avif, negotiation_webp);
async fn negotiation_webp(mode: DeliveryMode) {
    let stack = Stack::start_with(SETTINGS, |o| {
        o.delivery = mode;
        o.format_negotiation = Negotiation::Webp;
    })
    .await;
    let chain = fetch(&stack, &format!("/300x300/{SAMPLE}"), CHROME, None).await;
    assert_eq!(chain.statuses(), stack.miss(), "{chain:#?}");
    assert_image(&chain, ImageFormat::WebP, "image/webp");
    assert_eq!(header(chain.last(), "vary"), Some("Accept"));
    assert_eq!(sizes_of(&stack, SAMPLE).await, [format!("300x300.webp/{SAMPLE}")]);
}
