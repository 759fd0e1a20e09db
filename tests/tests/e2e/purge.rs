//! When an original changes: the store's event notifications reach the events function,
//! which purges stale sizes (deleted and invalidated at the edge), rejects uploads that are
//! not images, and makes the PREGENERATE sizes. In both delivery modes where the edge is
//! involved; events handled directly (duplicates, late and out-of-order ones) through the
//! same handler over the real store.

use std::sync::Arc;

use e2e::{in_both_modes, DeliveryMode, Stack};
use image::ImageFormat;
use reqwest::Method;
use resizer::events::{Change, Events, EventsConfig, ObjectEvent};
use serde_json::{json, Value};

const SIZES: &str = "200x200,300x300,640x";

fn settings(pregenerate: &str) -> Vec<(&'static str, String)> {
    vec![("ALLOWED_RESOLUTIONS", SIZES.to_owned()), ("PREGENERATE", pregenerate.to_owned())]
}

async fn start(mode: DeliveryMode, pregenerate: &str) -> Stack {
    let env = settings(pregenerate);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stack = Stack::start_in(mode, &env).await;
    stack.server.events_settled().await;
    stack
}

/// A PNG of one colour.
fn solid_png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_pixel(width, height, image::Rgb(rgb))
        .write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// The colour at the centre of an encoded image.
fn centre(bytes: &[u8]) -> [u8; 3] {
    let image = image::load_from_memory(bytes).expect("decodes").to_rgb8();
    image.get_pixel(image.width() / 2, image.height() / 2).0
}

const RED: [u8; 3] = [220, 20, 20];
const BLUE: [u8; 3] = [20, 20, 220];

/// The stored object's metadata stamp and the original's ETag.
async fn stamp_and_etag(stack: &Stack, derivative: &str, original: &str) -> (String, String) {
    let client = stack.server.client();
    let bucket = &stack.server.bucket;
    let d = client.head_object().bucket(bucket).key(derivative).send().await.unwrap();
    let o = client.head_object().bucket(bucket).key(original).send().await.unwrap();
    let stamp = d.metadata().and_then(|m| m.get("source-etag")).cloned().unwrap_or_default();
    (stamp, o.e_tag().unwrap().trim_matches('"').to_owned())
}

async fn delete(stack: &Stack, key: &str) {
    stack
        .server
        .client()
        .delete_object()
        .bucket(&stack.server.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
}

in_both_modes!(
    replacing_an_original_purges_every_old_size_and_the_next_request_makes_the_new_one,
    replacing_an_original
);
async fn replacing_an_original(mode: DeliveryMode) {
    let stack = start(mode, "").await;
    let original = "photos/colour.png";
    stack.put(original, solid_png(400, 300, RED), "image/png").await;
    stack.server.events_settled().await;
    // Every format of a size goes too, as asked by name or by the edge's negotiation.
    for path in
        ["/300x300/photos/colour.png", "/300x300.webp/photos/colour.png", "/640x/photos/colour.png"]
    {
        let chain = stack.follow(Method::GET, path).await;
        assert_eq!(chain.statuses(), stack.miss(), "{chain:#?}");
        // Within a lossy encoder's rounding (WebP).
        let got = centre(&chain.body);
        assert!(got.iter().zip(RED).all(|(g, r)| g.abs_diff(r) <= 4), "{path}: {got:?}");
        // Cached at the edge.
        let chain = stack.follow(Method::GET, path).await;
        assert_eq!(chain.last().headers["x-cache"], "Hit from cloudfront");
    }
    // A miss stamps the derivative with the ETag of the original it read.
    let (stamp, etag) = stamp_and_etag(&stack, "300x300/photos/colour.png", original).await;
    assert_eq!(stamp, etag);

    stack.put(original, solid_png(400, 300, BLUE), "image/png").await;
    stack.server.events_settled().await;
    assert_eq!(stack.get("300x300/photos/colour.png").await, None, "stale size deleted");
    assert_eq!(stack.get("300x300.webp/photos/colour.png").await, None, "stale format deleted");
    assert_eq!(stack.get("640x/photos/colour.png").await, None, "stale size deleted");
    let invalidated: Vec<String> =
        stack.server.invalidations().into_iter().flat_map(|i| i.paths).collect();
    assert_eq!(
        invalidated,
        [
            "/300x300/photos/colour.png",
            "/300x300.webp/photos/colour.png",
            "/640x/photos/colour.png"
        ]
    );

    // The edge forgot them: the next request makes the new size, from the new original.
    let chain = stack.follow(Method::GET, "/300x300/photos/colour.png").await;
    assert_eq!(chain.statuses(), stack.miss(), "{chain:#?}");
    assert_eq!(centre(&chain.body), BLUE);
    let (stamp, etag) = stamp_and_etag(&stack, "300x300/photos/colour.png", original).await;
    assert_eq!(stamp, etag);
    // The original is never touched by a purge.
    assert_eq!(centre(&stack.get(original).await.unwrap().0), BLUE);
}

#[tokio::test]
async fn deleting_an_original_empties_its_sizes_and_invalidates_each_path() {
    let stack = start(DeliveryMode::Redirect, "").await;
    let original = "photos/ảnh mèo+1.png";
    stack.put(original, solid_png(400, 300, RED), "image/png").await;
    for path in [
        "/200x200/photos/%E1%BA%A3nh%20m%C3%A8o%2B1.png",
        "/640x/photos/%E1%BA%A3nh%20m%C3%A8o%2B1.png",
    ] {
        assert_eq!(stack.follow(Method::GET, path).await.statuses(), stack.miss());
    }
    // A size that was never made is not invalidated (CloudFront bills per path).
    delete(&stack, original).await;
    stack.server.events_settled().await;
    assert!(stack.keys().await.iter().all(|k| !k.contains("mèo")), "{:?}", stack.keys().await);
    let invalidations = stack.server.invalidations();
    assert_eq!(invalidations.len(), 1, "one invalidation per event: {invalidations:?}");
    assert_eq!(
        invalidations[0].paths,
        [
            "/200x200/photos/%E1%BA%A3nh%20m%C3%A8o%2B1.png",
            "/640x/photos/%E1%BA%A3nh%20m%C3%A8o%2B1.png"
        ]
    );
    // The debug route lists the same.
    let listed = stack
        .http
        .get(format!("{}/_devserver/invalidations", stack.server.idp_url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let listed: Value = serde_json::from_slice(&listed).unwrap();
    assert_eq!(listed[0]["paths"], json!(invalidations[0].paths));
    // Gone at the edge too: the size's path is a miss again, and the original is missing.
    let chain = stack.follow(Method::GET, "/200x200/photos/%E1%BA%A3nh%20m%C3%A8o%2B1.png").await;
    assert_eq!(chain.last().status, 404, "{chain:#?}");
}

/// Uploads `body` as a JPEG through the signer's presigned PUT, sent with exactly its signed
/// headers, as the pages do; returns the key.
async fn upload_through_signer(stack: &Stack, token: &str, body: Vec<u8>) -> String {
    let form = stack
        .granted(
            "/api/upload-url",
            Some(token),
            json!({ "content_type": "image/jpeg", "size": body.len() }),
        )
        .await;
    let mut put = stack.http.put(form["url"].as_str().unwrap()).body(body);
    for (name, value) in form["headers"].as_object().unwrap() {
        if name != "content-length" {
            put = put.header(name, value.as_str().unwrap());
        }
    }
    assert_eq!(put.send().await.unwrap().status(), 200);
    form["key"].as_str().unwrap().to_owned()
}

in_both_modes!(
    uploads_through_the_signer_get_their_pregenerated_sizes_and_private_ones_open_signed,
    pregenerated_on_upload
);
async fn pregenerated_on_upload(mode: DeliveryMode) {
    let stack = start(mode, "200x200,640x").await;
    let token = stack.sign_in("alice", &[]).await;
    let key = upload_through_signer(&stack, &token, devserver::SAMPLE_PHOTO.to_vec()).await;
    stack.server.events_settled().await;
    for size in ["200x200", "640x"] {
        let derivative = format!("{size}/{key}");
        assert!(stack.get(&derivative).await.is_some(), "{derivative} made on upload");
        let (stamp, etag) = stamp_and_etag(&stack, &derivative, &key).await;
        assert_eq!(stamp, etag);
        assert_eq!(stack.server.object_writes(&derivative), 1);
    }
    assert_eq!(stack.get(&format!("300x300/{key}")).await, None, "not in PREGENERATE");
    // A private upload's size opens at once with the uploads cookies, with no resize.
    let reads = stack.server.object_reads(&key);
    let (status, headers, value) =
        stack.api("/api/sign-cookies", Some(&token), json!({ "uploads": true })).await;
    assert_eq!(status, 200, "{value}");
    let cookie = e2e::cookie_header(&headers);
    let path = format!("/200x200/{}", keyspace::encode_key_path(&key));
    let chain = stack.follow_with(Method::GET, &path, Some(&cookie)).await;
    assert_eq!(chain.statuses(), [200], "{chain:#?}");
    assert_eq!(e2e::inspect(&chain.body), (ImageFormat::Jpeg, 200, 200));
    assert_eq!(stack.server.object_reads(&key), reads, "served, not made");
}

#[tokio::test]
async fn an_upload_that_is_not_an_image_is_deleted_and_gets_no_sizes() {
    let stack = start(DeliveryMode::Redirect, "200x200").await;
    let token = stack.sign_in("alice", &[]).await;
    let text = b"<html><script>alert(1)</script></html>".to_vec();
    let key = upload_through_signer(&stack, &token, text).await;
    stack.server.events_settled().await;
    assert_eq!(stack.get(&key).await, None, "rejected upload deleted");
    assert_eq!(stack.get(&format!("200x200/{key}")).await, None);
    // An original outside uploads/ is the bucket owner's: never deleted, whatever it is.
    stack.put("docs/readme.jpg", b"not an image".to_vec(), "image/jpeg").await;
    stack.server.events_settled().await;
    assert!(stack.get("docs/readme.jpg").await.is_some());
}

/// The events function's handler over the stack's bucket, with no invalidations.
fn handler(stack: &Stack, pregenerate: &str) -> Events {
    let env = settings(pregenerate);
    let lookup = |k: &str| {
        env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()).or_else(|| match k {
            "BUCKET" => Some(stack.server.bucket.clone()),
            "S3_FORCE_PATH_STYLE" => Some("true".into()),
            _ => None,
        })
    };
    let config = resizer::Config::from_lookup(lookup).unwrap();
    let events =
        EventsConfig::from_lookup(lookup, &config.allowed, &config.formats, config.max_dimension)
            .unwrap();
    let app = resizer::App::new(config, stack.server.client().clone());
    Events::new(app, events, None)
}

fn event(key: &str, change: Change, sequencer: &str) -> ObjectEvent {
    ObjectEvent { key: key.to_owned(), change, sequencer: sequencer.to_owned() }
}

#[tokio::test]
async fn duplicate_late_and_out_of_order_events_change_nothing() {
    let stack = start(DeliveryMode::Redirect, "200x200").await;
    let events = handler(&stack, "200x200");
    let original = "photos/order.png";
    stack.put(original, solid_png(300, 300, RED), "image/png").await;
    let created_red = event(original, Change::Created, "01");
    stack.put(original, solid_png(300, 300, BLUE), "image/png").await;
    stack.server.events_settled().await;
    let fresh = stack.get("200x200/photos/order.png").await.unwrap().0;
    assert_eq!(centre(&fresh), BLUE);

    // The first version's create, delivered late and again: the size made from the current
    // version stays, nothing is made from the old one.
    for _ in 0..2 {
        let done = events.reconcile(&created_red, false).await.unwrap();
        assert!(done.purged.is_empty() && done.pregenerated.is_empty(), "{done:?}");
    }
    assert_eq!(stack.get("200x200/photos/order.png").await.unwrap().0, fresh);

    // A size made from an older version (a stamp that is not the original's ETag) is stale
    // under any event for the original.
    delete(&stack, "200x200/photos/order.png").await;
    stack.server.events_settled().await;
    let store = resizer::store::Store::new(stack.server.client().clone(), &stack.server.bucket);
    let stamp = resizer::store::Stamp {
        content_type: "image/png",
        cache_control: "public, max-age=31536000, immutable",
        source_etag: Some("0123456789abcdef0123456789abcdef"),
    };
    store.put_stamped("200x200/photos/order.png", solid_png(200, 200, RED), stamp).await.unwrap();
    let done = events.reconcile(&created_red, false).await.unwrap();
    assert_eq!(done.purged, ["200x200/photos/order.png"]);
    assert_eq!(done.pregenerated, ["200x200/photos/order.png"]);
    assert_eq!(centre(&stack.get("200x200/photos/order.png").await.unwrap().0), BLUE);

    // A removal delivered after the original came back purges nothing fresh.
    let removed = event(original, Change::Removed, "02");
    let done = events.reconcile(&removed, false).await.unwrap();
    assert!(done.purged.is_empty(), "{done:?}");
    // Once it is really gone, the same removal (delivered twice) purges once.
    delete(&stack, original).await;
    stack.server.events_settled().await;
    stack.put("200x200/photos/order.png", solid_png(200, 200, RED), "image/png").await;
    let first = events.reconcile(&removed, false).await.unwrap();
    let second = events.reconcile(&removed, false).await.unwrap();
    assert_eq!((first.purged.len(), second.purged.len()), (1, 0));
    // And a create for an original that is gone makes nothing.
    let done = events.reconcile(&created_red, false).await.unwrap();
    assert!(done.pregenerated.is_empty(), "{done:?}");
    assert_eq!(stack.get("200x200/photos/order.png").await, None);
}

#[tokio::test]
async fn events_for_derivative_keys_are_ignored_so_nothing_loops() {
    let stack = start(DeliveryMode::Redirect, "200x200").await;
    let events = handler(&stack, "200x200");
    stack.put("200x200/photos/x.png", solid_png(200, 200, RED), "image/png").await;
    let done = events.reconcile(&event("200x200/photos/x.png", Change::Created, ""), false).await;
    let done = done.unwrap();
    assert!(done.ignored, "{done:?}");
    assert!(stack.get("200x200/photos/x.png").await.is_some());
    assert_eq!(stack.get("200x200/200x200/photos/x.png").await, None);
}

#[tokio::test]
async fn with_any_size_allowed_nothing_is_purged_as_the_role_could_not_delete_it() {
    let stack = Stack::start(&[]).await;
    let original = "photos/any.png";
    stack.put(original, solid_png(400, 300, RED), "image/png").await;
    assert_eq!(stack.follow(Method::GET, "/123x45/photos/any.png").await.statuses(), stack.miss());
    delete(&stack, original).await;
    stack.server.events_settled().await;
    // template.yaml grants no delete without a list of sizes: the devserver does no more.
    assert!(stack.get("123x45/photos/any.png").await.is_some());
    assert_eq!(stack.server.invalidations(), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_never_writes_a_size_of_an_original_replaced_while_it_was_resized() {
    let stack = Arc::new(start(DeliveryMode::Redirect, "").await);
    let original = "photos/race.png";
    // Big enough that the resize takes a while after the original was read.
    stack.put(original, solid_png(4000, 3000, RED), "image/png").await;
    stack.server.events_settled().await;
    // Encoded before the race, so the replacement lands while the first version resizes.
    let replacement = solid_png(4000, 3000, BLUE);
    let reads = stack.server.object_reads(original);
    let miss = {
        let stack = Arc::clone(&stack);
        tokio::spawn(async move { stack.follow(Method::GET, "/640x/photos/race.png").await })
    };
    let read = async {
        while stack.server.object_reads(original) == reads {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), read).await.expect("the miss reads");
    // Replaced while the miss resizes the first version; its event is handled at once.
    stack.put(original, replacement, "image/png").await;
    stack.server.events_settled().await;
    let chain = miss.await.unwrap();
    assert_eq!(chain.last().status, 200, "{chain:#?}");
    stack.server.events_settled().await;
    let (stored, _, _) = stack.get("640x/photos/race.png").await.expect("made");
    assert_eq!(centre(&stored), BLUE, "made from the replacement, not the version read first");
    let (stamp, etag) = stamp_and_etag(&stack, "640x/photos/race.png", original).await;
    assert_eq!(stamp, etag);
}

/// Not a test (nothing timed is asserted): prints how long after an upload its PREGENERATE
/// sizes exist on the devserver. `cargo test -p e2e --test e2e -- --ignored
/// pregeneration_latency --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn pregeneration_latency() {
    let stack = start(DeliveryMode::Redirect, "200x200,640x").await;
    for i in 0..7 {
        let key = format!("photos/m{i}.jpg");
        let t0 = std::time::Instant::now();
        stack.put(&key, devserver::SAMPLE_PHOTO.to_vec(), "image/jpeg").await;
        loop {
            let a = stack.get(&format!("200x200/{key}")).await.is_some();
            let b = stack.get(&format!("640x/{key}")).await.is_some();
            if a && b {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let took = t0.elapsed().as_secs_f64() * 1000.0;
        eprintln!("{key}: 200x200 and 640x stored {took:.0} ms after the PUT began");
    }
}
