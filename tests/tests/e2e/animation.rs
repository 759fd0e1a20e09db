//! Animated originals through the whole stack, in both delivery modes: an animated GIF asked
//! as `200x` (GIF) and as `200x.webp` comes back animated, every frame resized in order, the
//! delays and the loop count kept, stored under its key with its Content-Type.

use std::io::Cursor;

use e2e::{in_both_modes, DeliveryMode, Stack};
use image::{AnimationDecoder, RgbaImage};
use reqwest::Method;

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
