//! The happy path, in both delivery modes: a miss becomes a derivative (through the two
//! redirects, or answered at once by the failover origin), then a plain hit.

use devserver::SAMPLE_PHOTO;
use e2e::{in_both_modes, inspect, DeliveryMode, Stack};
use image::ImageFormat;
use reqwest::Method;

in_both_modes!(
    first_get_of_a_sized_path_makes_and_serves_the_thumbnail_then_hits,
    first_get_of_a_sized_path
);
async fn first_get_of_a_sized_path(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    assert_eq!(
        stack.get("300x300/samples/seeding.jpg").await,
        None,
        "derivative must not exist yet"
    );

    let chain = stack.follow(Method::GET, "/300x300/samples/seeding.jpg").await;
    assert_eq!(chain.statuses(), stack.miss(), "{chain:#?}");
    if mode == DeliveryMode::Redirect {
        // The website's routing rule, then the resizer's redirect back (relative: the host
        // the viewer used).
        assert_eq!(
            chain.hops[0].headers["location"],
            stack.url("/resize/300x300/samples/seeding.jpg").as_str()
        );
        assert_eq!(chain.hops[1].headers["location"], "/300x300/samples/seeding.jpg");
        assert_eq!(chain.hops[1].headers["cache-control"], "no-store");
    }
    assert_eq!(chain.last().headers["content-type"], "image/jpeg");
    assert_eq!(chain.last().headers["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(inspect(&chain.body), (ImageFormat::Jpeg, 300, 300));

    // Stored through S3 with its headers.
    let (stored, content_type, cache_control) =
        stack.get("300x300/samples/seeding.jpg").await.expect("stored");
    assert_eq!(stored, chain.body);
    assert_eq!(content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(cache_control.as_deref(), Some("public, max-age=31536000, immutable"));

    // The second request is a plain hit, served by the edge's cache.
    let chain = stack.follow(Method::GET, "/300x300/samples/seeding.jpg").await;
    assert_eq!(chain.statuses(), [200]);
    assert_eq!(chain.last().headers["x-cache"], "Hit from cloudfront");
    assert_eq!(chain.body, stored);
    assert_eq!(stack.server.object_reads("samples/seeding.jpg"), 1, "one resize");

    // The original is untouched.
    let (original, _, _) = stack.get("samples/seeding.jpg").await.unwrap();
    assert_eq!(&original[..], SAMPLE_PHOTO);
}

in_both_modes!(width_only_and_height_only_keep_the_aspect_ratio, one_sided_sizes);
async fn one_sided_sizes(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    let chain = stack.follow(Method::GET, "/640x/samples/seeding.jpg").await;
    assert_eq!(chain.statuses(), stack.miss());
    assert_eq!(inspect(&chain.body), (ImageFormat::Jpeg, 640, 360));
    let chain = stack.follow(Method::GET, "/x200/samples/seeding.jpg").await;
    assert_eq!(inspect(&chain.body), (ImageFormat::Jpeg, 356, 200));
    // Wider than the original: the original's size, never upscaled.
    let small = e2e_small_jpeg();
    stack.put("small.jpg", small, "image/jpeg").await;
    let chain = stack.follow(Method::GET, "/4000x/small.jpg").await;
    assert_eq!(inspect(&chain.body), (ImageFormat::Jpeg, 120, 80));
}

fn e2e_small_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(120, 80, image::Rgb([200, 40, 40]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

in_both_modes!(output_format_follows_the_bytes_not_the_name, formats);
async fn formats(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    // A PNG stored under a .jpg name and with a wrong Content-Type stays a PNG, alpha kept.
    stack.put("misnamed.jpg", crate::png_with_alpha(80, 40), "image/jpeg").await;
    stack.put("anim.gif", crate::two_frame_gif(40, 40), "image/gif").await;
    stack.put("pic.webp", crate::webp(60, 30), "image/webp").await;

    let chain = stack.follow(Method::GET, "/40x20/misnamed.jpg").await;
    assert_eq!(chain.statuses(), stack.miss());
    assert_eq!(chain.last().headers["content-type"], "image/png");
    assert_eq!(inspect(&chain.body), (ImageFormat::Png, 40, 20));
    let img = image::load_from_memory(&chain.body).unwrap().into_rgba8();
    assert_eq!(img.get_pixel(2, 10).0[3], 0, "transparent half kept");
    assert_eq!(img.get_pixel(37, 10).0[3], 255);

    let chain = stack.follow(Method::GET, "/20x20/anim.gif").await;
    assert_eq!(chain.last().headers["content-type"], "image/gif");
    assert_eq!(inspect(&chain.body), (ImageFormat::Gif, 20, 20));

    let chain = stack.follow(Method::GET, "/x15/pic.webp").await;
    assert_eq!(chain.last().headers["content-type"], "image/webp");
    assert_eq!(inspect(&chain.body), (ImageFormat::WebP, 30, 15));
}

in_both_modes!(keys_with_spaces_plus_percent_and_non_ascii_work_end_to_end, special_keys);
async fn special_keys(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    let original = "samples/my cat+dog 100% ảnh 고양이.jpg";
    stack.put(original, SAMPLE_PHOTO.to_vec(), "image/jpeg").await;
    let path = format!("/x100/{}", keyspace::encode_key_path(original));
    assert!(path.contains("%2B") && path.contains("%25") && path.contains("%20"));
    let chain = stack.follow(Method::GET, &path).await;
    assert_eq!(chain.statuses(), stack.miss(), "{chain:#?}");
    assert_eq!(inspect(&chain.body).2, 100);
    let keys = stack.keys().await;
    assert!(keys.contains(&format!("x100/{original}")), "{keys:?}");
    // Exactly the one derivative was written, under the decoded key.
    assert_eq!(keys.iter().filter(|k| k.starts_with("x100/")).count(), 1, "{keys:?}");
}

in_both_modes!(head_requests_make_the_derivative_too, head_requests);
async fn head_requests(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    let chain = stack.follow(Method::HEAD, "/200x100/samples/seeding.jpg").await;
    assert_eq!(chain.statuses(), stack.miss());
    assert!(chain.body.is_empty());
    assert_eq!(chain.last().headers["content-type"], "image/jpeg");
    let (stored, _, _) = stack.get("200x100/samples/seeding.jpg").await.expect("HEAD created it");
    assert_eq!(inspect(&stored), (ImageFormat::Jpeg, 200, 100));
    assert_eq!(chain.last().headers["content-length"], stored.len().to_string().as_str());
}

in_both_modes!(racing_misses_for_one_new_size_all_succeed_with_one_object, racing_misses);
async fn racing_misses(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    let requests = (0..12).map(|_| stack.follow(Method::GET, "/256x256/samples/seeding.jpg"));
    let chains = futures::future::join_all(requests).await;
    let first = &chains[0].body;
    for chain in &chains {
        assert_eq!(chain.last().status, 200, "{chain:#?}");
        assert_eq!(&chain.body, first, "every client sees the same bytes");
    }
    let keys = stack.keys().await;
    assert_eq!(keys.iter().filter(|k| k.starts_with("256x256/")).count(), 1);
    // One resize: the original was fetched from the store exactly once, and the derivative
    // written exactly once (never overwritten).
    assert_eq!(stack.server.object_reads("samples/seeding.jpg"), 1);
    assert_eq!(stack.server.object_writes("256x256/samples/seeding.jpg"), 1);
    assert_eq!(stack.server.object_writes("samples/seeding.jpg"), 1, "only the start-up upload");
    assert_eq!(&stack.get("samples/seeding.jpg").await.unwrap().0[..], SAMPLE_PHOTO);
}

in_both_modes!(racing_misses_across_two_resizer_instances_share_the_store_safely, two_instances);
async fn two_instances(mode: DeliveryMode) {
    // Two stacks, the second using the first's store as an external endpoint: two resizer
    // processes (as two Lambda instances) racing for the same new derivative.
    let a = Stack::start_in(mode, &[]).await;
    let endpoint = a.server.s3_endpoint.clone();
    let b = Stack::start_with(&[], |o| {
        o.delivery = mode;
        o.s3_endpoint = Some(endpoint);
        o.upload_samples = false;
    })
    .await;
    let path = "/500x500/samples/seeding.jpg";
    let mut tasks = Vec::new();
    for i in 0..8 {
        let stack = if i % 2 == 0 { &a } else { &b };
        tasks.push(async move { stack.follow(Method::GET, path).await });
    }
    for chain in futures::future::join_all(tasks).await {
        assert_eq!(chain.last().status, 200, "{chain:#?}");
    }
    let (stored, _, _) = a.get("500x500/samples/seeding.jpg").await.expect("one derivative");
    assert_eq!(inspect(&stored), (ImageFormat::Jpeg, 500, 500));
    assert_eq!(a.keys().await.iter().filter(|k| k.starts_with("500x500/")).count(), 1);
    // Written once: the other instance's create-only write lost (412) instead of replacing it.
    assert_eq!(a.server.object_writes("500x500/samples/seeding.jpg"), 1);
}

#[tokio::test]
async fn calling_the_resizer_for_a_derivative_that_exists_changes_nothing() {
    let stack = Stack::start(&[]).await;
    // Put there by someone else (say, the `resize` CLI warming sizes before launch).
    let sentinel = crate::noise_png();
    stack.put("300x300/samples/seeding.jpg", sentinel.clone(), "image/png").await;
    let (hop, _) =
        stack.request(Method::GET, &stack.url("/resize/300x300/samples/seeding.jpg")).await;
    assert_eq!(hop.status, 307, "{hop:#?}");
    assert_eq!(hop.headers["location"], "/300x300/samples/seeding.jpg");
    assert_eq!(stack.get("300x300/samples/seeding.jpg").await.unwrap().0[..], sentinel[..]);
    assert_eq!(stack.server.object_writes("300x300/samples/seeding.jpg"), 1, "only ours");
}

#[tokio::test]
async fn repeated_calls_for_a_size_just_made_only_ask_whether_it_exists() {
    let stack = Stack::start(&[]).await;
    let url = stack.url("/resize/120x120/samples/seeding.jpg");
    for _ in 0..4 {
        let (hop, _) = stack.request(Method::GET, &url).await;
        assert_eq!(hop.status, 307, "{hop:#?}");
    }
    // The first call read the original and wrote the derivative; the three after it (as a
    // client whose 404 raced the write would) found it made and read nothing.
    assert_eq!(stack.server.object_reads("samples/seeding.jpg"), 1);
    assert_eq!(stack.server.object_writes("120x120/samples/seeding.jpg"), 1);
    let (stored, _, _) = stack.get("120x120/samples/seeding.jpg").await.unwrap();
    assert_eq!(inspect(&stored), (ImageFormat::Jpeg, 120, 120));
}
