//! A real browser (headless Chromium) opens a page of sized `<img>` tags whose derivatives
//! do not exist yet, follows the redirect chains (or not, in failover mode) and decodes the
//! thumbnails; in redirect mode, under each reading of how S3 writes a key into its
//! redirect, so Chromium itself reads the raw Locations.

use e2e::{in_both_modes, DeliveryMode, LocationEncoding, Stack};
use keyspace::routing::{carried, KeyDecoding};

/// Loads `url` headless and returns the DOM after the load event.
async fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(crate::chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run {} ({e}); install Debian's chromium package", crate::chromium())
        });
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

in_both_modes!(
    a_browser_shows_thumbnails_that_did_not_exist_a_moment_before,
    thumbnails,
    multi_thread
);
async fn thumbnails(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    check_page(&stack, LocationEncoding::Once).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_follows_redirects_whose_key_s3_encoded_twice() {
    let stack = Stack::start_with(&[], |o| o.location_encoding = LocationEncoding::Twice).await;
    check_page(&stack, LocationEncoding::Twice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_follows_redirects_whose_key_s3_appended_raw() {
    let stack = Stack::start_with(&[], |o| o.location_encoding = LocationEncoding::Raw).await;
    check_page(&stack, LocationEncoding::Raw).await;
}

fn tiny_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(160, 120, image::Rgb([30, 140, 90]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .unwrap();
    out
}

async fn check_page(stack: &Stack, encoding: LocationEncoding) {
    stack.put("keys/a b+c&d ảnh 고.jpg", tiny_jpeg(), "image/jpeg").await;
    stack.put("keys/a#b.jpg", tiny_jpeg(), "image/jpeg").await;
    let page =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/browser-check.html")).unwrap();
    stack.put("browser-check.html", page, "text/html; charset=utf-8").await;
    for key in [
        "300x300.avif/samples/seeding.jpg",
        "x120.avif/samples/seeding.jpg",
        "320x.avif/samples/seeding.jpg",
    ] {
        assert!(stack.get(key).await.is_none(), "{key} must not exist before the browser asks");
    }

    let dom = dump_dom(&stack.url("/browser-check.html")).await;
    let result = dom
        .split("<pre id=\"result\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("no result in the DOM:\n{dom}"));
    let lines: Vec<&str> = result.lines().collect();
    let hash_arrives =
        carried("x100/keys/a#b.jpg", stack.delivery(), KeyDecoding::Exactly(encoding), false)
            .is_ok();
    let hash =
        format!("hash=/x100/keys/a%23b.jpg={}", if hash_arrives { "133x100" } else { "0x0" });
    assert_eq!(
        lines,
        [
            "box=/300x300/samples/seeding.jpg=300x300",
            "height only=/x120/samples/seeding.jpg=213x120",
            "srcset=/320x/samples/seeding.jpg=320x180",
            // The chain ends in the resizer's 404 JSON: the browser shows a broken image.
            "missing original=/200x200/samples/missing.jpg=0x0",
            "special=/x100/keys/a%20b%2Bc%26d%20%E1%BA%A3nh%20%EA%B3%A0.jpg=133x100",
            // A raw `#` ends the URL Chromium follows: the one key the raw reading loses.
            hash.as_str(),
        ],
        "{dom}"
    );
    // Chromium's Accept takes AVIF: the edge negotiated each JPEG's sizes into it.
    for key in [
        "300x300.avif/samples/seeding.jpg",
        "x120.avif/samples/seeding.jpg",
        "320x.avif/samples/seeding.jpg",
    ] {
        assert!(stack.get(key).await.is_some(), "{key} was not stored");
    }
}
