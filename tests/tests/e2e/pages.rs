//! The demo pages in a real browser: Debian's headless Chromium, driven by playwright-core
//! (`tests/browser/pages.mjs`), against a stack started here. The script reports what the
//! browser saw as JSON; the assertions are made here, on that report and on the bucket.
//! Screenshots of every page go to `target/browser-artifacts/{test}/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use devserver::{PRIVATE_SAMPLE_KEY, SAMPLE_PHOTO};
use e2e::{in_both_modes, DeliveryMode, Stack};
use serde_json::{json, Value};

const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/browser");

/// `target/browser-artifacts/{name}`, emptied.
fn artifacts(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("browser-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

/// Runs one scenario of `pages.mjs` against `stack`; returns its JSON report.
async fn browse(stack: &Stack, scenario: &str, name: &str, input: Value) -> Value {
    assert!(
        Path::new(BROWSER_DIR).join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in tests/browser: run scripts/setup"
    );
    let dir = artifacts(name);
    let run = tokio::process::Command::new("node")
        .arg("pages.mjs")
        .arg(scenario)
        .current_dir(BROWSER_DIR)
        .env("PAGES_URL", &stack.server.website_url)
        .env("ARTIFACTS", &dir)
        .env("CHROMIUM", crate::chromium())
        .env("SCENARIO_INPUT", input.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .unwrap_or_else(|_| panic!("{scenario}: the browser did not finish in 240 s"))
        .unwrap_or_else(|e| panic!("cannot run node ({e}); scripts/setup installs it"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{scenario} failed:\n{stdout}\n{stderr}");
    println!("{scenario}: screenshots in {}", dir.display());
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{scenario}: not JSON ({e}):\n{stdout}"))
}

/// An image's `[width, height]` as the report gives it.
fn dims(value: &Value) -> (u64, u64) {
    (value[0].as_u64().unwrap(), value[1].as_u64().unwrap())
}

/// A PNG original, portrait, wider than the largest width offered (the resizer never
/// upscales `Wx`, so a narrower original would come back narrower than asked).
fn portrait_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(1200, 1600, |x, y| {
        image::Rgb([(x / 5 % 256) as u8, (y / 7 % 256) as u8, 140])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

in_both_modes!(
    public_gallery_loads_every_size_it_asks_for_and_stores_the_derivatives,
    public_gallery,
    multi_thread
);
async fn public_gallery(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    stack.put("photos/portrait.png", portrait_png(), "image/png").await;
    let keys = ["samples/seeding.jpg", "photos/portrait.png"];
    let sizes = ["320x", "640x", "1024x", "200x200"];
    for key in keys {
        for size in sizes {
            assert!(stack.get(&format!("{size}/{key}")).await.is_none());
        }
    }
    // The column is the viewport less 2rem: at these widths `sizes` is exactly 320, 640
    // and 1024 CSS px, so at a device pixel ratio of 1 each width is the one to pick.
    let widths = [(352, 320), (672, 640), (1280, 1024)];
    let report = browse(
        &stack,
        "gallery",
        "public-gallery",
        json!({ "widths": widths.map(|w| w.0), "images": keys }),
    )
    .await;

    let viewports = report["viewports"].as_array().unwrap();
    assert_eq!(viewports.len(), widths.len());
    for (viewport, (width, expected)) in viewports.iter().zip(widths) {
        assert_eq!(viewport["errors"], json!([]), "{width}: script errors");
        let heroes = viewport["heroes"].as_array().unwrap();
        assert_eq!(heroes.len(), keys.len());
        for (hero, key) in heroes.iter().zip(keys) {
            assert_eq!(hero["state"], "loaded", "{width}: {hero}");
            assert_eq!(hero["current"], format!("/{expected}x/{key}"), "{width}: {hero}");
            assert_eq!(dims(&hero["natural"]).0, expected, "{width}: {hero}");
            assert_eq!(dims(&hero["decoded"]).0, expected, "{width}: {hero}");
        }
        let thumbs = viewport["thumbs"].as_array().unwrap();
        assert_eq!(thumbs.len(), keys.len());
        for (thumb, key) in thumbs.iter().zip(keys) {
            assert_eq!(thumb["state"], "loaded", "{width}: {thumb}");
            assert_eq!(thumb["current"], format!("/200x200/{key}"));
            assert_eq!(dims(&thumb["natural"]), (200, 200), "{width}: {thumb}");
            assert_eq!(dims(&thumb["decoded"]), (200, 200), "{width}: {thumb}");
        }
        assert_eq!(viewport["status"], "4 of 4 images loaded");
    }
    // What the browser made exists in the bucket, at the size its name promises.
    for key in keys {
        for size in sizes {
            let stored = format!("{size}/{key}");
            let (body, _, _) = stack.get(&stored).await.unwrap_or_else(|| panic!("{stored}"));
            let (_, w, h) = e2e::inspect(&body);
            let want_w: u32 = size.split('x').next().unwrap().parse().unwrap();
            assert_eq!(w, want_w, "{stored}");
            if size == "200x200" {
                assert_eq!(h, 200, "{stored}");
            }
        }
    }
    // The snippet is absolute, so it works pasted into another site.
    let snippet = report["snippet"].as_str().unwrap();
    let origin = &stack.server.website_url;
    assert!(
        snippet.contains(&format!(
            "srcset=\"{origin}/320x/samples/seeding.jpg 320w, {origin}/640x/samples/seeding.jpg 640w, {origin}/1024x/samples/seeding.jpg 1024w\""
        )),
        "{snippet}"
    );
    let pasted = report["snippetImages"].as_array().unwrap();
    assert_eq!(pasted.len(), 2, "{snippet}");
    assert_eq!(pasted[0]["current"], "/1024x/samples/seeding.jpg", "{pasted:?}");
    // (Another origin may not read the pixels; at a density of 1, naturalWidth is theirs.)
    assert_eq!(dims(&pasted[0]["natural"]).0, 1024);
    assert_eq!(dims(&pasted[1]["natural"]), (200, 200));
}

in_both_modes!(
    private_gallery_images_fail_signed_out_and_load_with_the_signers_cookies,
    private_gallery,
    multi_thread
);
async fn private_gallery(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    let report = browse(&stack, "private", "private-gallery", json!({})).await;
    assert_eq!(report["errors"], json!([]));
    let expect_failed = |phase: &str| {
        let phase = &report[phase];
        let images = phase["images"].as_array().unwrap();
        assert_eq!(images.len(), 2, "{phase}");
        for img in images {
            assert_eq!(img["state"], "failed", "{img}");
            assert_eq!(dims(&img["natural"]), (0, 0), "{img}");
        }
        let message = phase["message"].as_str().unwrap();
        assert!(message.starts_with("Signed out: private images need signed cookies"), "{message}");
    };
    expect_failed("signedOut");

    let signed_in = &report["signedIn"];
    assert_eq!(signed_in["message"], "", "{signed_in}");
    let who = signed_in["who"].as_str().unwrap();
    assert!(
        who.starts_with("Signed in as alice; cookies for ")
            && who.contains(&stack.url("/*private/galleries/demo/*")),
        "{who}"
    );
    let images = signed_in["images"].as_array().unwrap();
    let expected = [("200x200", (200, 200)), ("640x", (640, 360))];
    assert_eq!(images.len(), expected.len());
    for (img, (size, wh)) in images.iter().zip(expected) {
        assert_eq!(img["state"], "loaded", "{img}");
        assert_eq!(img["current"], format!("/{size}/{PRIVATE_SAMPLE_KEY}"));
        assert_eq!(dims(&img["natural"]), wh, "{img}");
        assert_eq!(dims(&img["decoded"]), wh, "{img}");
        assert!(stack.get(&format!("{size}/{PRIVATE_SAMPLE_KEY}")).await.is_some(), "{size}");
    }
    // Signing out deletes the cookies: the store refuses a request that skips the browser's
    // cache, and a visitor without them sees the images fail.
    assert_eq!(report["afterSignOut"], 403);
    expect_failed("signedOutAgain");
}

/// A JPEG under the test's upload limit, wider than 640.
fn small_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(1000, 750, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).unwrap();
    out
}

in_both_modes!(
    uploads_through_the_page_land_under_the_users_prefix_and_refusals_explain_themselves,
    page_uploads,
    multi_thread
);
async fn page_uploads(mode: DeliveryMode) {
    let limit = 1_000_000;
    let stack = Stack::start_with(&[], |o| {
        o.delivery = mode;
        o.signer_env.insert("MAX_UPLOAD_BYTES".into(), limit.to_string());
    })
    .await;
    let files = tempfile::tempdir().unwrap();
    let photo = small_jpeg();
    assert!(photo.len() < limit, "{}", photo.len());
    assert!(SAMPLE_PHOTO.len() > limit);
    let write = |name: &str, body: &[u8]| {
        let path = files.path().join(name);
        std::fs::write(&path, body).unwrap();
        json!({ "name": name, "path": path })
    };
    let input = json!({ "files": [
        write("photo.jpg", &photo),
        write("too-big.jpg", SAMPLE_PHOTO),
        write("notes.txt", b"not an image"),
    ]});
    let report = browse(&stack, "upload", "upload", input).await;
    assert_eq!(report["errors"], json!([]));
    let attempts = report["attempts"].as_array().unwrap();

    let ok = &attempts[0];
    assert_eq!((&ok["outcome"], &ok["message"]), (&json!("uploaded"), &json!("")), "{ok}");
    let key = ok["key"].as_str().unwrap();
    assert!(key.starts_with("uploads/alice/") && key.ends_with(".jpg"), "{key}");
    let (stored, content_type, _) = stack.get(key).await.expect("the upload is in the bucket");
    assert_eq!((&stored[..], content_type.as_deref()), (&photo[..], Some("image/jpeg")));
    // The progress bar moved with the upload's progress events and ended full.
    assert_eq!(dims(&ok["progress"]), (photo.len() as u64, photo.len() as u64), "{ok}");
    assert!(!ok["progressSeen"].as_array().unwrap().is_empty(), "{ok}");
    // Both sizes displayed, from derivatives the uploads cookies opened.
    let images = ok["images"].as_array().unwrap();
    let expected = [("640x", (640, 480)), ("200x200", (200, 200))];
    assert_eq!(images.len(), expected.len(), "{ok}");
    for (img, (size, wh)) in images.iter().zip(expected) {
        assert_eq!(img["state"], "loaded", "{img}");
        assert_eq!(img["current"], format!("/{size}/{key}"));
        assert_eq!(dims(&img["decoded"]), wh, "{img}");
        assert!(stack.get(&format!("{size}/{key}")).await.is_some(), "{size}/{key}");
    }
    // Without cookies the same sizes are refused: the cookies did the opening.
    assert_eq!(stack.follow(reqwest::Method::GET, &format!("/640x/{key}")).await.statuses(), [403]);

    let too_big = &attempts[1];
    assert_eq!(too_big["outcome"], "refused", "{too_big}");
    let message = too_big["message"].as_str().unwrap();
    assert!(
        message.starts_with("Too big: the store refused the file (1.5 MB), it is over the upload form's limit of 1.0 MB"),
        "{message}"
    );
    assert_eq!(too_big["images"], json!([]));

    let wrong = &attempts[2];
    assert_eq!(wrong["outcome"], "refused", "{wrong}");
    let message = wrong["message"].as_str().unwrap();
    assert!(message.starts_with("Wrong type: only JPEG, PNG, WebP and GIF"), "{message}");
    assert!(message.contains("this file is text/plain"), "{message}");

    // Only the accepted upload is in the user's prefix; nothing partial from the refusals.
    let uploads: Vec<String> =
        stack.keys().await.into_iter().filter(|k| k.starts_with("uploads/")).collect();
    assert_eq!(uploads, [key.to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_form_that_expires_before_the_file_arrives_is_refused_with_the_pages_message() {
    let stack = Stack::start_with(&[], |o| {
        o.signer_env.insert("UPLOAD_URL_TTL".into(), "1".into());
    })
    .await;
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("late.jpg");
    std::fs::write(&path, small_jpeg()).unwrap();
    let input = json!({
        "files": [{ "name": "late.jpg", "path": path }],
        "store": stack.server.s3_endpoint,
        "delayStoreMs": 2500,
    });
    let report = browse(&stack, "upload", "upload-expired", input).await;
    let attempt = &report["attempts"][0];
    assert_eq!(attempt["outcome"], "refused", "{attempt}");
    let message = attempt["message"].as_str().unwrap();
    assert!(message.starts_with("Expired: the upload permission ran out"), "{message}");
    assert!(!stack.keys().await.iter().any(|k| k.starts_with("uploads/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_goes_up_in_presigned_parts_and_displays() {
    let part = 5 * 1024 * 1024;
    let stack = Stack::start_with(&[], |o| {
        o.signer_env.insert("MULTIPART_PART_BYTES".into(), part.to_string());
    })
    .await;
    let png = crate::noise_png();
    assert!(png.len() > part);
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("big.png");
    std::fs::write(&path, &png).unwrap();
    let input = json!({
        "files": [{ "name": "big.png", "path": path }],
        "query": format!("?multipart-above={part}"),
    });
    let report = browse(&stack, "upload", "upload-multipart", input).await;
    let attempt = &report["attempts"][0];
    assert_eq!(attempt["outcome"], "uploaded", "{attempt}");
    let key = attempt["key"].as_str().unwrap();
    assert!(key.starts_with("uploads/alice/") && key.ends_with(".png"), "{key}");
    assert_eq!(&stack.get(key).await.unwrap().0[..], &png[..]);
    // Progress counted across both parts.
    let seen: Vec<u64> =
        attempt["progressSeen"].as_array().unwrap().iter().filter_map(Value::as_u64).collect();
    assert!(seen.iter().any(|&v| v >= part as u64 && v < png.len() as u64), "{seen:?}");
    for img in attempt["images"].as_array().unwrap() {
        assert_eq!(img["state"], "loaded", "{img}");
    }
    assert_eq!(dims(&attempt["images"][1]["decoded"]), (200, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_upload_gets_the_pregenerated_sizes_the_page_never_asked_for() {
    let stack = Stack::start(&[("PREGENERATE", "300x300")]).await;
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("photo.jpg");
    std::fs::write(&path, small_jpeg()).unwrap();
    let input = json!({ "files": [{ "name": "photo.jpg", "path": path }] });
    let report = browse(&stack, "upload", "upload-pregenerated", input).await;
    assert_eq!(report["errors"], json!([]));
    let ok = &report["attempts"][0];
    assert_eq!(ok["outcome"], "uploaded", "{ok}");
    let key = ok["key"].as_str().unwrap();
    stack.server.events_settled().await;
    // The page shows 640x and 200x200; 300x300 was made by the upload's S3 event.
    let (made, _, _) = stack.get(&format!("300x300/{key}")).await.expect("pregenerated");
    assert_eq!(e2e::inspect(&made), (image::ImageFormat::Jpeg, 300, 300));
    assert_eq!(stack.server.object_writes(&format!("300x300/{key}")), 1);
}
