//! Explicit output formats in the key (`{size}.{fmt}/{original}`) through the whole chain in
//! both delivery modes: each format written and stored with its Content-Type, beside the
//! original-format size; refusals (an unknown spelling, a format outside ALLOWED_FORMATS,
//! transparency asked as JPEG) with their codes and nothing written.

use e2e::{in_both_modes, DeliveryMode, Stack};
use image::ImageFormat;
use reqwest::Method;

const PHOTO: &str = "samples/seeding.jpg";

in_both_modes!(each_named_format_is_written_and_stored_as_asked, each_named_format);
async fn each_named_format(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    let cases = [
        ("200x.avif", ImageFormat::Avif, "image/avif"),
        ("200x.webp", ImageFormat::WebP, "image/webp"),
        ("200x.png", ImageFormat::Png, "image/png"),
        ("200x.gif", ImageFormat::Gif, "image/gif"),
        ("200x.jpeg", ImageFormat::Jpeg, "image/jpeg"),
        ("200x", ImageFormat::Jpeg, "image/jpeg"),
    ];
    for (segment, format, content_type) in cases {
        let path = format!("/{segment}/{PHOTO}");
        let chain = stack.follow(Method::GET, &path).await;
        assert_eq!(chain.statuses(), stack.miss(), "{path}");
        assert_eq!(chain.last().headers["content-type"], content_type, "{path}");
        assert_eq!(image::guess_format(&chain.body).ok(), Some(format), "{path}");
        if format != ImageFormat::Avif {
            let (_, width, _) = e2e::inspect(&chain.body);
            assert_eq!(width, 200, "{path}");
        }
        let key = format!("{segment}/{PHOTO}");
        let (stored, stored_type, _) = stack.get(&key).await.expect("derivative stored");
        assert_eq!(stored_type.as_deref(), Some(content_type), "{key}");
        assert_eq!(stored, chain.body, "{key}: the answer is the stored object");
        // Every later request is a plain hit of the same object.
        let hit = stack.follow(Method::GET, &path).await;
        assert_eq!((hit.statuses(), &hit.body), (vec![200], &chain.body), "{path}");
    }
    let keys = stack.keys().await;
    for (segment, ..) in cases {
        assert!(keys.contains(&format!("{segment}/{PHOTO}")), "{segment} in {keys:?}");
    }
}

in_both_modes!(formats_refused_by_spelling_setting_or_content_write_nothing, refused_formats);
async fn refused_formats(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[("ALLOWED_FORMATS", "webp,png")]).await;
    stack.put("art/translucent.png", translucent_png(), "image/png").await;
    let cases = [
        (format!("/200x.jpg/{PHOTO}"), 400, "invalid-key"),
        (format!("/200x.AVIF/{PHOTO}"), 400, "invalid-key"),
        (format!("/200x.webp.png/{PHOTO}"), 400, "invalid-key"),
        (format!("/200x.avif/{PHOTO}"), 403, "format-not-allowed"),
        ("/200x.png/200x.webp/a.jpg".to_owned(), 400, "invalid-key"),
    ];
    for (path, status, code) in cases {
        let before = stack.keys().await;
        let chain = stack.follow(Method::GET, &path).await;
        let text = String::from_utf8_lossy(&chain.body);
        assert_eq!(chain.last().status, status, "{path}: {text}");
        assert_eq!(chain.json()["code"], code, "{path}: {text}");
        assert_eq!(stack.keys().await, before, "{path} changed the bucket");
    }
    // ALLOWED_FORMATS bounds named formats only: the original's format is always served.
    let chain = stack.follow(Method::GET, &format!("/200x/{PHOTO}")).await;
    assert_eq!(chain.statuses(), stack.miss());

    let stack = Stack::start_in(mode, &[]).await;
    stack.put("art/translucent.png", translucent_png(), "image/png").await;
    let before = stack.keys().await;
    let path = "/40x.jpeg/art/translucent.png";
    let chain = stack.follow(Method::GET, path).await;
    assert_eq!(chain.last().status, 422, "{path}");
    assert_eq!(chain.json()["code"], "format-loses-transparency");
    assert_eq!(chain.last().headers["cache-control"], "max-age=60", "a terminal refusal");
    assert_eq!(stack.keys().await, before);
    // The formats that hold alpha are made, alpha kept.
    for segment in ["40x.png", "40x.webp", "40x"] {
        let chain = stack.follow(Method::GET, &format!("/{segment}/art/translucent.png")).await;
        assert_eq!(chain.statuses(), stack.miss(), "{segment}");
        let img = image::load_from_memory(&chain.body).unwrap().to_rgba8();
        assert_eq!(img.get_pixel(0, 10)[3], 0, "{segment}: the transparent side stays so");
    }
}

/// 80x40: transparent left half, opaque right half.
fn translucent_png() -> Vec<u8> {
    use image::ImageEncoder;
    let pixels: Vec<u8> = (0..80u32 * 40)
        .flat_map(|i| [200, (i / 80 * 6) as u8, 30, if i % 80 < 40 { 0 } else { 255 }])
        .collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&pixels, 80, 40, image::ExtendedColorType::Rgba8)
        .unwrap();
    out
}
