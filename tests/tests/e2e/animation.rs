//! Animated originals through the whole stack, in both delivery modes: an animated GIF asked
//! as `200x` (GIF) and as `200x.webp` comes back animated, every frame resized in order, the
//! delays and the loop count kept, stored under its key with its Content-Type. Then the same
//! as Chromium decodes it (its own decoders, through WebCodecs' ImageDecoder): negotiated to WebP
//! or left GIF by the browser's Accept, frames, durations, repetitions and transparency.

use std::io::Cursor;

use e2e::{in_both_modes, DeliveryMode, Stack};
use image::{AnimationDecoder, RgbaImage};
use reqwest::Method;
use serde_json::{json, Value};

/// 6 frames of 240x135 panning across the sample photograph (tests/data/animated/README.md).
const PAN: &[u8] = include_bytes!("../../data/animated/pan.gif");
const DELAYS_MS: [u32; 6] = [80, 120, 160, 200, 240, 280];

/// Every frame of an animated GIF or WebP (the image crate's decoders), with its delay in
/// milliseconds, and whether it loops forever.
fn frames_of(bytes: &[u8]) -> (Vec<(RgbaImage, u32)>, bool) {
    let (frames, forever) = match image::guess_format(bytes).unwrap() {
        image::ImageFormat::Gif => {
            let d = image::codecs::gif::GifDecoder::new(Cursor::new(bytes)).unwrap();
            let forever = matches!(d.loop_count(), image::metadata::LoopCount::Infinite);
            (d.into_frames(), forever)
        }
        image::ImageFormat::WebP => {
            let d = image::codecs::webp::WebPDecoder::new(Cursor::new(bytes)).unwrap();
            assert!(d.has_animation(), "an animated WebP");
            let forever = matches!(d.loop_count(), image::metadata::LoopCount::Infinite);
            (d.into_frames(), forever)
        }
        other => panic!("{other:?} is not animated"),
    };
    let frames = frames
        .map(|f| {
            let f = f.unwrap();
            let (numer, denom) = f.delay().numer_denom_ms();
            (f.into_buffer(), numer / denom)
        })
        .collect();
    (frames, forever)
}

/// Mean absolute difference of the colour channels.
fn mean_diff(a: &RgbaImage, b: &RgbaImage) -> f64 {
    let sum: u64 = a
        .pixels()
        .zip(b.pixels())
        .map(|(p, q)| (0..3).map(|c| u64::from(p[c].abs_diff(q[c]))).sum::<u64>())
        .sum();
    sum as f64 / (u64::from(a.width()) * u64::from(a.height()) * 3) as f64
}

in_both_modes!(an_animated_gif_stays_animated_as_gif_and_as_webp, animated);
async fn animated(mode: DeliveryMode) {
    let stack = Stack::start_in(mode, &[]).await;
    stack.put("anim.gif", PAN.to_vec(), "image/gif").await;
    let (source, _) = frames_of(PAN);
    let want: Vec<RgbaImage> = source
        .iter()
        .map(|(f, _)| image::imageops::resize(f, 200, 113, image::imageops::FilterType::Lanczos3))
        .collect();
    for (key, content_type) in
        [("200x/anim.gif", "image/gif"), ("200x.webp/anim.gif", "image/webp")]
    {
        let chain = stack.follow(Method::GET, &format!("/{key}")).await;
        let text = String::from_utf8_lossy(&chain.body[..chain.body.len().min(300)]).into_owned();
        assert_eq!(chain.statuses(), stack.miss(), "{key}: {text}");
        assert_eq!(chain.last().headers["content-type"], content_type, "{key}");
        let (stored, stored_type, _) = stack.get(key).await.expect("the derivative is stored");
        assert_eq!(stored, chain.body, "{key}: what was served is what was stored");
        assert_eq!(stored_type.as_deref(), Some(content_type), "{key}");

        let (frames, forever) = frames_of(&stored);
        assert!(forever, "{key} loops forever, as the original does");
        let delays: Vec<u32> = frames.iter().map(|(_, ms)| *ms).collect();
        assert_eq!(delays, DELAYS_MS, "{key}");
        for (i, (frame, _)) in frames.iter().enumerate() {
            assert_eq!(frame.dimensions(), (200, 113), "{key} frame {i}");
            // The original's frame i, resized: nearer to it than to the frames either side.
            let own = mean_diff(frame, &want[i]);
            assert!(own < 8.0, "{key} frame {i} is {own:.1} from the original's");
            for j in [i.wrapping_sub(1), i + 1].into_iter().filter(|&j| j < want.len()) {
                let other = mean_diff(frame, &want[j]);
                assert!(own < other, "{key} frame {i}: {own:.1} from its own, {other:.1} from {j}");
            }
        }
    }
}

/// A sticker: a 96x64 canvas, transparent but for one opaque 32x32 square a frame (red,
/// green, blue, left to right, each cleared by the next frame: disposal to background),
/// shown 100, 200 and 300 ms, played three times (its NETSCAPE block says 2 repeats).
fn sticker_gif() -> Vec<u8> {
    let mut encoder = gif::Encoder::new(Vec::new(), 96, 64, &[]).unwrap();
    encoder.set_repeat(gif::Repeat::Finite(2)).unwrap();
    for (i, colour) in STICKER_COLOURS.iter().enumerate() {
        let mut rgba: Vec<u8> =
            (0..32 * 32).flat_map(|_| [colour[0], colour[1], colour[2], 255]).collect();
        let mut frame = gif::Frame::from_rgba_speed(32, 32, &mut rgba, 10);
        frame.left = 32 * i as u16;
        frame.top = 16;
        frame.delay = 10 * (i as u16 + 1);
        frame.dispose = gif::DisposalMethod::Background;
        encoder.write_frame(&frame).unwrap();
    }
    encoder.into_inner().unwrap()
}

const STICKER_COLOURS: [[u8; 3]; 3] = [[230, 30, 30], [30, 200, 30], [30, 30, 230]];

/// The frames ImageDecoder reported for one path.
fn frames(decoded: &Value) -> &[Value] {
    decoded["frames"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Each frame's duration in microseconds.
fn durations(decoded: &Value) -> Vec<u64> {
    frames(decoded).iter().map(|f| f["durationUs"].as_u64().unwrap()).collect()
}

/// Where the sticker's squares are at `48x` (half size): their centres, and a corner no
/// frame covers.
const STICKER_CENTRES: [[u32; 2]; 3] = [[8, 16], [24, 16], [40, 16]];
const CORNER: [u32; 2] = [1, 1];

in_both_modes!(
    chromium_plays_animated_gifs_as_webp_or_gif_by_accept_with_their_frames_timing_and_transparency,
    animated_in_chromium,
    multi_thread
);
async fn animated_in_chromium(mode: DeliveryMode) {
    // The pages' resize budget: Chromium's first visit makes each size on a shared machine.
    let stack = Stack::start_in(mode, &[crate::pages::BUDGET]).await;
    stack.put("anim/pan.gif", PAN.to_vec(), "image/gif").await;
    stack.put("stickers/sticker.gif", sticker_gif(), "image/gif").await;
    let paths = [
        "/anim/pan.gif",
        "/200x/anim/pan.gif",
        "/stickers/sticker.gif",
        "/48x/stickers/sticker.gif",
        "/48x.avif/stickers/sticker.gif",
    ];
    let points: Vec<[u32; 2]> = std::iter::once(CORNER).chain(STICKER_CENTRES).collect();
    // Chromium as it is, and a browser that decodes neither AVIF nor WebP (Safari 13's
    // image Accept).
    let safari_13 = "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";
    let input = json!({
        "paths": paths,
        "points": points,
        "visits": [{ "name": "chromium" }, { "name": "safari13", "accept": safari_13 }],
    });
    let report = crate::pages::browse(&stack, "animations", "animations", input).await;
    for visit in ["chromium", "safari13"] {
        let seen = &report[visit];
        assert_eq!(seen["errors"], json!([]), "{visit}: script errors");
        let decoded = |path: &str| -> &Value {
            let all = seen["decoded"].as_array().unwrap();
            let found = all.iter().find(|d| d["path"] == path);
            let d = found.unwrap_or_else(|| panic!("{visit}: {path} not decoded: {all:?}"));
            assert_eq!(d["status"], 200, "{visit}: {d}");
            // The <img>'s own request ended in the same answer as the refetch.
            let loads = seen["loads"].as_array().unwrap();
            let load = loads.iter().find(|l| l["path"] == path);
            let load =
                load.unwrap_or_else(|| panic!("{visit}: no <img> load of {path}: {loads:?}"));
            let last = load["hops"].as_array().unwrap().last().unwrap();
            assert_eq!(
                (&last["status"], &last["type"]),
                (&200.into(), &d["type"]),
                "{visit}: {load}"
            );
            d
        };
        let accept = seen["accept"].as_str().unwrap_or_default();
        if visit == "chromium" {
            assert!(accept.contains("image/avif") && accept.contains("image/webp"), "{accept}");
        } else {
            assert_eq!(accept, safari_13);
        }
        // The type each negotiated path was answered with: WebP for Chromium (AVIF would
        // lose the animation), the original's GIF for a browser that takes neither.
        let animated_type = if visit == "chromium" { "image/webp" } else { "image/gif" };

        // The pan: every frame at its size, the original's durations, forever, as Chromium
        // reads the original itself.
        let (original, resized) = (decoded("/anim/pan.gif"), decoded("/200x/anim/pan.gif"));
        assert_eq!(resized["type"], animated_type, "{visit}: {resized}");
        assert_eq!(resized["animated"], true, "{visit}: {resized}");
        assert_eq!(resized["frameCount"], 6, "{visit}: {resized}");
        assert_eq!(resized["natural"], json!([200, 113]), "{visit}");
        assert_eq!(original["repetitionCount"], "Infinity", "{visit}: {original}");
        assert_eq!(resized["repetitionCount"], original["repetitionCount"], "{visit}");
        let want: Vec<u64> = DELAYS_MS.iter().map(|ms| u64::from(*ms) * 1000).collect();
        assert_eq!(durations(original), want, "{visit}");
        assert_eq!(durations(resized), want, "{visit}");
        for frame in frames(resized) {
            assert_eq!(frame["size"], json!([200, 113]), "{visit}: {frame}");
        }

        // The sticker: three frames, played as often as Chromium plays the original, each
        // its own square on a canvas that stays transparent around it.
        let (original, resized) =
            (decoded("/stickers/sticker.gif"), decoded("/48x/stickers/sticker.gif"));
        assert_eq!(resized["type"], animated_type, "{visit}: {resized}");
        assert_eq!(
            (&resized["animated"], &resized["frameCount"]),
            (&true.into(), &3.into()),
            "{visit}"
        );
        assert_eq!(resized["natural"], json!([48, 32]), "{visit}");
        assert_eq!(original["repetitionCount"], "2", "{visit}: {original}");
        assert_eq!(resized["repetitionCount"], original["repetitionCount"], "{visit}");
        assert_eq!(durations(resized), [100_000, 200_000, 300_000], "{visit}");
        for (i, frame) in frames(resized).iter().enumerate() {
            assert_eq!(frame["size"], json!([48, 32]), "{visit} frame {i}");
            let rgba = |p: usize| -> [i64; 4] {
                std::array::from_fn(|c| frame["rgba"][p][c].as_i64().unwrap())
            };
            assert_eq!(rgba(0)[3], 0, "{visit} frame {i}: the corner is transparent: {frame}");
            for (j, colour) in STICKER_COLOURS.iter().enumerate() {
                let got = rgba(1 + j);
                if i == j {
                    let near = (0..3).all(|c| (got[c] - i64::from(colour[c])).abs() <= 24);
                    assert!(near && got[3] == 255, "{visit} frame {i}: its square {got:?}");
                } else {
                    assert_eq!(got[3], 0, "{visit} frame {i}: square {j} is cleared: {frame}");
                }
            }
        }
        if visit == "chromium" {
            // Named explicitly, a still format gets the first frame, transparency and all.
            let still = decoded("/48x.avif/stickers/sticker.gif");
            assert_eq!(still["type"], "image/avif", "{still}");
            assert_eq!(still["frameCount"], 1, "{still}");
            assert_eq!(still["natural"], json!([48, 32]), "{still}");
            // AVIF's alpha plane is lossy: within a few levels.
            let alpha = |p: usize| still["frames"][0]["rgba"][p][3].as_i64().unwrap();
            assert!(alpha(0) <= 8 && alpha(1) >= 247, "{still}");
            assert!(alpha(2) <= 8 && alpha(3) <= 8, "{still}");
        }
    }
}
