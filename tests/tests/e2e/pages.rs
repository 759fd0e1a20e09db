//! The demo pages in a real browser: Debian's headless Chromium, driven by playwright-core
//! (`tests/browser/pages.mjs`), against a stack started here. The script reports what the
//! browser saw as JSON; the assertions are made here, on that report and on the bucket.
//! Screenshots of every page, and each scenario's report, go to
//! `target/browser-artifacts/{test}-{mode}/`.

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
pub(crate) async fn browse(stack: &Stack, scenario: &str, name: &str, input: Value) -> Value {
    assert!(
        Path::new(BROWSER_DIR).join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in tests/browser: run scripts/setup"
    );
    // One folder per mode too: a test's two modes run at once, and each empties its own.
    let dir = artifacts(&format!("{name}-{}", stack.delivery()));
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
    // Generous: the galleries' first visits make every size as AVIF, which takes minutes
    // when the machine is busy (the script's own waits end sooner, with what was missing).
    let out = tokio::time::timeout(Duration::from_secs(900), run)
        .await
        .unwrap_or_else(|_| panic!("{scenario}: the browser did not finish in 900 s"))
        .unwrap_or_else(|e| panic!("cannot run node ({e}); scripts/setup installs it"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{scenario} failed:\n{stdout}\n{stderr}");
    println!("{scenario}: screenshots in {}", dir.display());
    let last = stdout.lines().last().unwrap_or_default();
    // The report beside the screenshots, to read what the browser saw when a test passes.
    std::fs::write(dir.join(format!("{scenario}.json")), last).unwrap();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{scenario}: not JSON ({e}):\n{stdout}"))
}

/// An image's `[width, height]` as the report gives it.
fn dims(value: &Value) -> (u64, u64) {
    (value[0].as_u64().unwrap(), value[1].as_u64().unwrap())
}

/// The width and height an AVIF file declares (its `ispe` property), if it is one (`ftyp`
/// brand `avif` or `avis`). The test crate's image decoder has no AVIF; the pixels are
/// checked decoded in the browser.
fn avif_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(4..8)? != b"ftyp" || !matches!(bytes.get(8..12)?, b"avif" | b"avis") {
        return None;
    }
    let at = bytes.windows(4).position(|w| w == b"ispe")?;
    // The box type, then version and flags (4 bytes), then width and height (big-endian).
    let field = |from: usize| Some(u32::from_be_bytes(bytes.get(from..from + 4)?.try_into().ok()?));
    Some((field(at + 8)?, field(at + 12)?))
}

/// True when a `Vary` header value names `Accept`.
fn varies_on_accept(vary: &Value) -> bool {
    vary.as_str()
        .is_some_and(|v| v.split(',').any(|name| name.trim().eq_ignore_ascii_case("accept")))
}

/// The resizer's budget per resize for the pages' stacks, raised from 10 s (a Lambda's) to
/// 5 minutes: Chromium's Accept makes every size a page shows an AVIF, a gallery's first
/// visit makes a dozen at once, and one 640 px AVIF alone can take more than 10 s on this
/// machine's two cores, shared with the tests running beside it.
pub(crate) const BUDGET: (&str, &str) = ("RESIZE_BUDGET_MS", "300000");

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

/// The portrait with transparency: its left quarter fully transparent, the next quarter
/// half transparent, the rest opaque (every crop and width the gallery asks keeps all three).
fn translucent_portrait_png() -> Vec<u8> {
    let img = image::RgbaImage::from_fn(1200, 1600, |x, y| {
        let alpha = match x {
            0..300 => 0,
            300..600 => 128,
            _ => 255,
        };
        image::Rgba([(x / 5 % 256) as u8, (y / 7 % 256) as u8, 140, alpha])
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
    let stack = Stack::start_in(mode, &[BUDGET]).await;
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
        // The four above and the AVIF/WebP section's two per original (its own test).
        assert_eq!(viewport["status"], "8 of 8 images loaded");
    }
    // What the browser made exists in the bucket, at the size its name promises, as AVIF:
    // Chromium's Accept names it, so the edge asked for `{size}.avif/{key}` before the
    // cache, and nothing was made in the original's format.
    for key in keys {
        for size in sizes {
            let stored = format!("{size}.avif/{key}");
            let (body, content_type, _) =
                stack.get(&stored).await.unwrap_or_else(|| panic!("{stored}"));
            assert_eq!(content_type.as_deref(), Some("image/avif"), "{stored}");
            let (w, h) = avif_size(&body).unwrap_or_else(|| panic!("{stored} is not AVIF"));
            let want_w: u32 = size.split('x').next().unwrap().parse().unwrap();
            assert_eq!(w, want_w, "{stored}");
            if size == "200x200" {
                assert_eq!(h, 200, "{stored}");
            }
            assert!(stack.get(&format!("{size}/{key}")).await.is_none(), "{size}/{key}");
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
    assert!(
        snippet.contains(&format!(
            "<source type=\"image/avif\"\n          srcset=\"{origin}/320x.avif/samples/seeding.jpg 320w, {origin}/640x.avif/samples/seeding.jpg 640w, {origin}/1024x.avif/samples/seeding.jpg 1024w\""
        )),
        "{snippet}"
    );
    let pasted = report["snippetImages"].as_array().unwrap();
    assert_eq!(pasted.len(), 3, "{snippet}");
    assert_eq!(pasted[0]["current"], "/1024x/samples/seeding.jpg", "{pasted:?}");
    // (Another origin may not read the pixels; at a density of 1, naturalWidth is theirs.)
    assert_eq!(dims(&pasted[0]["natural"]).0, 1024);
    assert_eq!(dims(&pasted[1]["natural"]), (200, 200));
    // The <picture>: Chromium takes the AVIF source's 1024 px width.
    assert_eq!(pasted[2]["current"], "/1024x.avif/samples/seeding.jpg", "{pasted:?}");
    assert_eq!(dims(&pasted[2]["natural"]).0, 1024);
}

in_both_modes!(
    gallery_pictures_get_avif_by_type_plain_imgs_by_accept_and_jpeg_only_browsers_get_jpeg,
    gallery_formats,
    multi_thread
);
async fn gallery_formats(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[BUDGET]).await;
    stack.put("photos/portrait.png", translucent_portrait_png(), "image/png").await;
    // Each original: its type, and its size at `480x` (the sample is 16:9).
    let originals = [
        ("samples/seeding.jpg", "image/jpeg", (480, 270)),
        ("photos/portrait.png", "image/png", (480, 640)),
    ];
    let original = |key: &str| {
        *originals.iter().find(|o| o.0 == key).unwrap_or_else(|| panic!("unexpected key {key}"))
    };
    // The narrowest layout: its heroes are the 320 px width, the cheapest AVIF to make.
    let input = json!({ "images": originals.map(|o| o.0), "width": 352 });
    let report = browse(&stack, "formats", "gallery-formats", input).await;

    // `first`: Chromium, every size new; `again`: a new visitor, every size a hit;
    // `jpegOnly`: a browser whose image requests say `Accept: image/jpeg`.
    for visit in ["first", "again", "jpegOnly"] {
        let seen = &report[visit];
        assert_eq!(seen["errors"], json!([]), "{visit}: script errors");
        assert_eq!(seen["status"], "8 of 8 images loaded", "{visit}");
        let loads = seen["loads"].as_array().unwrap();
        // What the browser sent: Chromium names AVIF and WebP in every image request's
        // Accept (156 sends `image/jxl,image/avif,image/webp,image/apng,...`); the third
        // visit's requests carried only JPEG.
        for load in loads {
            let accept = load["accept"].as_str().unwrap_or_else(|| panic!("{visit}: {load}"));
            if visit == "jpegOnly" {
                assert_eq!(accept, "image/jpeg", "{visit}: {load}");
            } else {
                assert!(
                    accept.contains("image/avif") && accept.contains("image/webp"),
                    "{visit}: {load}"
                );
            }
        }
        let images = seen["images"].as_array().unwrap();
        assert_eq!(images.len(), 8, "{visit}: {images:?}");
        for img in images {
            let role = img["role"].as_str().unwrap();
            let key = img["key"].as_str().unwrap_or_else(|| panic!("{visit}: {img}"));
            let (_, original_type, size) = original(key);
            assert_eq!(img["state"], "loaded", "{visit}: {img}");
            assert_eq!(img["decode"], "resolved", "{visit}: {img}");
            // The path the element loaded, and the pixels it must have (the heroes: the
            // width the 352 px viewport picks; their height follows the original).
            let (path, want) = match role {
                "hero" => (format!("/320x/{key}"), (320, 0)),
                "thumb" => (format!("/200x200/{key}"), (200, 200)),
                "picture" => (format!("/480x.avif/{key}"), size),
                "negotiated" => (format!("/480x/{key}"), size),
                other => panic!("unexpected role {other}"),
            };
            assert_eq!(img["current"], path.as_str(), "{visit}: {img}");
            for pixels in [&img["natural"], &img["bitmap"]] {
                let (w, h) = dims(pixels);
                assert_eq!((w, if want.1 == 0 { 0 } else { h }), want, "{visit}: {img}");
            }
            // How its request ended: the last response of its chain.
            let load = loads
                .iter()
                .find(|l| l["path"] == path.as_str())
                .unwrap_or_else(|| panic!("{visit}: no request for {path}: {loads:?}"));
            let hops = load["hops"].as_array().unwrap();
            let last = hops.last().unwrap();
            assert_eq!(last["status"], 200, "{visit}: {load}");
            // The <picture> gets AVIF because Chromium decodes AVIF, whatever it accepts:
            // an explicit format is never rewritten. The plain paths follow Accept: AVIF
            // for Chromium, the original's own format for the JPEG-only browser.
            let want_type = match (visit, role) {
                (_, "picture") => "image/avif",
                ("jpegOnly", _) => original_type,
                _ => "image/avif",
            };
            assert_eq!(last["type"], want_type, "{visit} {role}: {load}");
            if role == "picture" {
                continue;
            }
            // Every answer to the plain path itself says it depends on Accept.
            for hop in hops.iter().filter(|h| h["path"] == path.as_str() && h["status"] == 200) {
                assert!(varies_on_accept(&hop["vary"]), "{visit} {role}: no Vary: Accept: {load}");
            }
            if visit == "again" {
                // A new visitor's plain path is a hit on the AVIF the first visit made:
                // one answer, no redirect (the edge rewrote before the cache).
                assert_eq!(hops.len(), 1, "{visit} {role}: {load}");
            } else if visit == "first" && hops.len() > 1 {
                // Made on this request (redirect mode): the chain went by the AVIF's key.
                let segment = path.split('/').nth(1).unwrap();
                assert_eq!(last["path"], format!("/{segment}.avif/{key}"), "{visit}: {load}");
            }
        }
        // Its captions say what was chosen.
        let caption = |role: &str| {
            images
                .iter()
                .find(|i| i["role"] == role)
                .and_then(|i| i["caption"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(
            caption("picture").starts_with("The browser chose 480x.avif"),
            "{visit}: {}",
            caption("picture")
        );
        let type_named = if visit == "jpegOnly" { "image/jpeg" } else { "image/avif" };
        assert!(
            caption("negotiated").starts_with(&format!("The edge sent {type_named}")),
            "{visit}: {}",
            caption("negotiated")
        );
    }

    // The AVIF shows the picture the original's format shows: each cell of a 4x4 grid over
    // what Chromium decoded for the first visit (AVIF) is within a few levels of the same
    // image's cell for the JPEG-only browser (JPEG, PNG) in every channel, so the encoder's
    // colour conversion (matrix, range, chroma order) is the one browsers decode, and the
    // portrait's transparent, half-transparent and opaque bands keep their alpha.
    let grids = |visit: &str| -> Vec<(String, String, Vec<[i64; 4]>)> {
        let images = report[visit]["images"].as_array().unwrap();
        let grid = |img: &Value| -> Vec<[i64; 4]> {
            let cells = img["grid"].as_array().unwrap_or_else(|| panic!("{visit}: {img}"));
            cells.iter().map(|c| std::array::from_fn(|i| c[i].as_i64().unwrap())).collect()
        };
        let roles = images.iter().filter(|i| i["role"] != "picture");
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        roles.map(|i| (text(&i["role"]), text(&i["key"]), grid(i))).collect()
    };
    let (avif, plain) = (grids("first"), grids("jpegOnly"));
    assert_eq!(avif.len(), 6, "{avif:?}");
    for (role, key, cells) in &avif {
        let (.., other) = plain
            .iter()
            .find(|(r, k, _)| r == role && k == key)
            .unwrap_or_else(|| panic!("jpegOnly: no {role} {key}"));
        let worst = cells
            .iter()
            .zip(other)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(a, b)| (a - b).abs()))
            .max()
            .unwrap();
        assert!(worst <= 6, "{role} {key}: AVIF {cells:?} vs {other:?}");
    }

    // Every source of the pictures, fetched as a browser that takes its type: the WebP
    // source (Chromium never takes it, AVIF comes first) answers WebP, decoded at its size.
    let sources = report["first"]["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2 * originals.len(), "{sources:?}");
    for source in sources {
        let path = source["path"].as_str().unwrap();
        let key = path.splitn(3, '/').nth(2).unwrap();
        let (_, _, size) = original(key);
        assert_eq!(source["status"], 200, "{source}");
        assert_eq!(source["answered"], source["type"], "{source}");
        assert_eq!(dims(&source["decoded"]), size, "{source}");
    }

    // In the bucket: the AVIF and the WebP the keys name, at their size, and at most three
    // variants of the size per original (AVIF, WebP, the JPEG-only browser's).
    let all = stack.keys().await;
    for (key, _, (w, h)) in originals {
        let size = (w as u32, h as u32);
        let avif = format!("480x.avif/{key}");
        let (body, content_type, _) = stack.get(&avif).await.unwrap_or_else(|| panic!("{avif}"));
        assert_eq!(content_type.as_deref(), Some("image/avif"), "{avif}");
        assert_eq!(avif_size(&body), Some(size), "{avif}");
        let webp = format!("480x.webp/{key}");
        let (body, content_type, _) = stack.get(&webp).await.unwrap_or_else(|| panic!("{webp}"));
        assert_eq!(content_type.as_deref(), Some("image/webp"), "{webp}");
        assert_eq!(e2e::inspect(&body), (image::ImageFormat::WebP, size.0, size.1), "{webp}");
        let variants: Vec<&String> = all
            .iter()
            .filter(|k| k.starts_with("480x") && k.ends_with(&format!("/{key}")))
            .collect();
        assert!(variants.len() <= 3, "{variants:?}");
    }
}

in_both_modes!(
    private_gallery_images_fail_signed_out_and_load_with_the_signers_cookies,
    private_gallery,
    multi_thread
);
async fn private_gallery(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[BUDGET]).await;
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
        // Stored as AVIF: Chromium's Accept had the edge ask for `{size}.avif/`, which the
        // cookies' wildcard covers as it covers the plain path.
        let stored = format!("{size}.avif/{PRIVATE_SAMPLE_KEY}");
        assert!(stack.get(&stored).await.is_some(), "{stored}");
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
    let stack = Stack::start_with(&[BUDGET], |o| {
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
        let stored = format!("{size}.avif/{key}");
        assert!(stack.get(&stored).await.is_some(), "{stored}");
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
    let stack = Stack::start_with(&[BUDGET], |o| {
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
    let stack = Stack::start_with(&[BUDGET], |o| {
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
    let stack = Stack::start(&[("PREGENERATE", "300x300"), BUDGET]).await;
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
