//! Animated originals made from the sample photograph: frames, delays, loop counts, sizes,
//! compositing, and the frame budgets checked before any frame is decoded.

use std::sync::OnceLock;

use image::{AnimationDecoder, RgbaImage};

use super::super::tests::{boxed, LIMITS, PHOTO};
use super::super::{detect_format, resize_to, Derivative};
use super::*;

/// The sample photograph at 320x180, the panorama the fixtures' frames pan across.
fn panorama() -> &'static RgbaImage {
    static PANORAMA: OnceLock<RgbaImage> = OnceLock::new();
    PANORAMA.get_or_init(|| {
        let jpeg = super::super::resize(PHOTO, Size::Width(320), &LIMITS).unwrap();
        image::load_from_memory(&jpeg.bytes).unwrap().to_rgba8()
    })
}

/// `n` frames of `w` x `h`, each the window of the photograph 16 pixels right of the last.
fn pan(n: u32, w: u32, h: u32) -> Vec<RgbaImage> {
    (0..n).map(|i| image::imageops::crop_imm(panorama(), i * 16, i * 4, w, h).to_image()).collect()
}

/// A GIF of full-canvas `frames` shown for `delays_cs` hundredths of a second each, written
/// with the gif crate; `repeat` `Finite(0)` writes no NETSCAPE2.0 block.
fn gif_of(frames: &[RgbaImage], delays_cs: &[u16], repeat: gif::Repeat) -> Vec<u8> {
    let (w, h) = frames[0].dimensions();
    let mut encoder = gif::Encoder::new(Vec::new(), w as u16, h as u16, &[]).unwrap();
    encoder.set_repeat(repeat).unwrap();
    for (frame, &delay) in frames.iter().zip(delays_cs) {
        let mut rgba = frame.as_raw().clone();
        let mut frame = gif::Frame::from_rgba_speed(w as u16, h as u16, &mut rgba, 10);
        frame.delay = delay;
        encoder.write_frame(&frame).unwrap();
    }
    encoder.into_inner().unwrap()
}

/// One frame of a hand-muxed animated WebP: where it goes, for how long, how it blends.
struct WebPFrame {
    x: u32,
    y: u32,
    image: RgbaImage,
    duration_ms: u32,
    blend: bool,
    dispose: bool,
}

/// An animated WebP muxed here from lossless stills (VP8X, ANIM, one ANMF per frame), so
/// the fixtures do not depend on the encoder under test.
fn webp_of(canvas: (u32, u32), frames: &[WebPFrame], loop_count: u16) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, fourcc: &[u8], payload: &[u8]) {
        out.extend_from_slice(fourcc);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(payload);
        if payload.len() % 2 == 1 {
            out.push(0);
        }
    }
    let le24 = |v: u32| v.to_le_bytes()[..3].to_vec();
    let mut body = b"WEBP".to_vec();
    let vp8x = [vec![0x12, 0, 0, 0], le24(canvas.0 - 1), le24(canvas.1 - 1)].concat();
    chunk(&mut body, b"VP8X", &vp8x);
    chunk(&mut body, b"ANIM", &[[0u8; 4].as_slice(), &loop_count.to_le_bytes()].concat());
    for f in frames {
        let (w, h) = f.image.dimensions();
        let still = ::webp::Encoder::from_rgba(f.image.as_raw(), w, h).encode_lossless();
        let flags = u8::from(!f.blend) << 1 | u8::from(f.dispose);
        let anmf = [
            le24(f.x / 2),
            le24(f.y / 2),
            le24(w - 1),
            le24(h - 1),
            le24(f.duration_ms),
            vec![flags],
            still[12..].to_vec(),
        ]
        .concat();
        chunk(&mut body, b"ANMF", &anmf);
    }
    let mut out = Vec::new();
    chunk(&mut out, b"RIFF", &body);
    out
}

/// Full-canvas WebP frames of the pan.
fn webp_pan(n: u32, w: u32, h: u32, durations_ms: &[u32], loop_count: u16) -> Vec<u8> {
    let frames: Vec<WebPFrame> = pan(n, w, h)
        .into_iter()
        .zip(durations_ms)
        .map(|(image, &duration_ms)| WebPFrame {
            x: 0,
            y: 0,
            image,
            duration_ms,
            blend: false,
            dispose: false,
        })
        .collect();
    webp_of((w, h), &frames, loop_count)
}

/// The frames as browsers show them, with their delays in milliseconds: GIF through the
/// image crate's decoder, WebP through libwebp's animation decoder (Chrome's). Neither is
/// the code under test.
fn composited(bytes: &[u8]) -> Vec<(RgbaImage, u32)> {
    match detect_format(bytes).unwrap() {
        Format::Gif => image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes))
            .unwrap()
            .into_frames()
            .map(|f| {
                let f = f.unwrap();
                let (numer, denom) = f.delay().numer_denom_ms();
                (f.into_buffer(), numer / denom)
            })
            .collect(),
        Format::WebP => {
            let animation = ::webp::AnimDecoder::new(bytes).decode().unwrap();
            let mut shown_until = 0;
            (&animation)
                .into_iter()
                .map(|f| {
                    let (w, h) = (f.width(), f.height());
                    let image = RgbaImage::from_raw(w, h, f.get_image().to_vec()).unwrap();
                    // libwebp gives each frame's end time, an i32 that wraps around past
                    // 2^31 ms.
                    let end = f.get_time_ms();
                    let delay = end.wrapping_sub(std::mem::replace(&mut shown_until, end));
                    (image, delay as u32)
                })
                .collect()
        }
        other => panic!("{other:?} is not animated"),
    }
}

/// A GIF's delays (hundredths) and repeat, read by the gif crate.
fn gif_timing(bytes: &[u8]) -> (Vec<u16>, gif::Repeat) {
    let mut decoder = gif::DecodeOptions::new().read_info(bytes).unwrap();
    let mut delays = Vec::new();
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        delays.push(frame.delay);
    }
    (delays, decoder.repeat())
}

/// A WebP's ANIM loop count, as libwebp reads it (0: forever).
fn webp_loop_count(bytes: &[u8]) -> u32 {
    ::webp::AnimDecoder::new(bytes).decode().unwrap().loop_count
}

/// Mean absolute difference of the colour channels over pixels opaque in both.
fn mean_diff(a: &RgbaImage, b: &RgbaImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let (mut sum, mut n) = (0u64, 0u64);
    for (p, q) in a.pixels().zip(b.pixels()) {
        if p[3] == 255 && q[3] == 255 {
            sum += (0..3).map(|c| u64::from(p[c].abs_diff(q[c]))).sum::<u64>();
            n += 3;
        }
    }
    assert!(n > 0, "no opaque pixels in common");
    sum as f64 / n as f64
}

/// What each output frame should look like: the source's composited frames, centre-cropped
/// to the output's aspect ratio and resized with the image crate's Lanczos3.
fn expected(source: &[u8], (w, h): (u32, u32)) -> Vec<RgbaImage> {
    composited(source)
        .into_iter()
        .map(|(frame, _)| {
            let (sw, sh) = frame.dimensions();
            let (cw, ch) = if u64::from(sw) * u64::from(h) > u64::from(sh) * u64::from(w) {
                ((u64::from(sh) * u64::from(w) / u64::from(h)) as u32, sh)
            } else {
                (sw, (u64::from(sw) * u64::from(h) / u64::from(w)) as u32)
            };
            let crop = image::imageops::crop_imm(&frame, (sw - cw) / 2, (sh - ch) / 2, cw, ch);
            image::imageops::resize(&crop.to_image(), w, h, image::imageops::FilterType::Lanczos3)
        })
        .collect()
}

/// Each output frame is the source's frame at its place: near it, and nearer to it than to
/// the frames either side (the pan moves 16 pixels a frame, so neighbours differ).
#[track_caller]
fn assert_frames_follow(d: &Derivative, source: &[u8], tolerance: f64) {
    let want = expected(source, (d.width, d.height));
    let got = composited(&d.bytes);
    assert_eq!(got.len(), want.len(), "frame count");
    for (i, (frame, _)) in got.iter().enumerate() {
        assert_eq!(frame.dimensions(), (d.width, d.height), "frame {i}");
        let own = mean_diff(frame, &want[i]);
        assert!(own < tolerance, "frame {i} is {own:.1} from the source's");
        for j in [i.wrapping_sub(1), i + 1].into_iter().filter(|&j| j < want.len()) {
            let other = mean_diff(frame, &want[j]);
            assert!(own < other, "frame {i}: {own:.1} from its own, {other:.1} from frame {j}");
        }
    }
}

#[test]
fn an_animated_gif_as_gif_keeps_every_frame_its_delay_and_loop_count() {
    let delays = [10, 20, 30, 40, 50, 60];
    let source = gif_of(&pan(6, 160, 90), &delays, gif::Repeat::Finite(3));
    let d = resize_to(&source, Size::Width(80), None, &LIMITS).unwrap();
    assert_eq!((d.format, d.source_format, d.width, d.height), (Format::Gif, Format::Gif, 80, 45));
    assert_eq!(detect_format(&d.bytes).unwrap(), Format::Gif);
    assert_eq!(gif_timing(&d.bytes), (delays.to_vec(), gif::Repeat::Finite(3)));
    assert_frames_follow(&d, &source, 8.0);
    assert!(d.timings.resize > std::time::Duration::ZERO, "{:?}", d.timings);
}

#[test]
fn an_animated_gif_as_webp_is_an_animated_webp_with_the_same_frames_and_delays() {
    let delays = [10, 20, 30, 40, 50, 60];
    let source = gif_of(&pan(6, 160, 90), &delays, gif::Repeat::Infinite);
    let d = resize_to(&source, Size::Width(80), Some(Format::WebP), &LIMITS).unwrap();
    assert_eq!((d.format, d.source_format, d.width, d.height), (Format::WebP, Format::Gif, 80, 45));
    let got: Vec<u32> = composited(&d.bytes).into_iter().map(|(_, ms)| ms).collect();
    assert_eq!(got, [100, 200, 300, 400, 500, 600], "every delay, the last one too");
    assert_eq!(webp_loop_count(&d.bytes), 0, "forever");
    assert_frames_follow(&d, &source, 8.0);
}

#[test]
fn an_animated_webp_as_webp_and_as_gif_keeps_frames_delays_and_loops() {
    let durations = [100, 250, 70, 1000, 40];
    let source = webp_pan(5, 160, 90, &durations, 2);
    let d = resize_to(&source, Size::Width(100), None, &LIMITS).unwrap();
    assert_eq!(
        (d.format, d.source_format, d.width, d.height),
        (Format::WebP, Format::WebP, 100, 56)
    );
    let got: Vec<u32> = composited(&d.bytes).into_iter().map(|(_, ms)| ms).collect();
    assert_eq!(got, durations);
    assert_eq!(webp_loop_count(&d.bytes), 2);
    assert_frames_follow(&d, &source, 8.0);

    let d = resize_to(&source, Size::Width(100), Some(Format::Gif), &LIMITS).unwrap();
    assert_eq!(
        (d.format, d.source_format, d.width, d.height),
        (Format::Gif, Format::WebP, 100, 56)
    );
    // Two plays is one repetition in GIF's count.
    assert_eq!(gif_timing(&d.bytes), (vec![10, 25, 7, 100, 4], gif::Repeat::Finite(1)));
    assert_frames_follow(&d, &source, 8.0);
}

#[test]
fn the_longest_frames_keep_their_durations_past_24_days_in_all() {
    // 130 frames of WebP's longest duration (2^24 - 1 ms) last longer than i32::MAX ms: the
    // encoder's timestamps wrap around, each frame's duration must not.
    let two = pan(2, 32, 16);
    let frames: Vec<WebPFrame> = (0..130)
        .map(|i| WebPFrame {
            x: 0,
            y: 0,
            image: two[i % 2].clone(),
            duration_ms: 0xFF_FFFF,
            blend: false,
            dispose: false,
        })
        .collect();
    let source = webp_of((32, 16), &frames, 0);
    let d = resize_to(&source, Size::Width(16), None, &LIMITS).unwrap();
    let got: Vec<u32> = composited(&d.bytes).into_iter().map(|(_, ms)| ms).collect();
    assert_eq!(got, vec![0xFF_FFFF; 130]);
}

#[test]
fn loop_counts_are_kept_as_the_number_of_plays() {
    // (GIF's repeat, the same animation's WebP loop count): none plays once, NETSCAPE n
    // plays n + 1 times, 0 (Infinite) forever; WebP counts plays, 0 forever.
    let cases = [
        (gif::Repeat::Finite(0), 1),
        (gif::Repeat::Finite(1), 2),
        (gif::Repeat::Finite(7), 8),
        (gif::Repeat::Infinite, 0),
    ];
    let frames = pan(2, 32, 18);
    for (repeat, webp_loops) in cases {
        let gif = gif_of(&frames, &[5, 5], repeat);
        let as_gif = resize_to(&gif, Size::Width(16), None, &LIMITS).unwrap();
        assert_eq!(gif_timing(&as_gif.bytes).1, repeat, "{repeat:?} GIF to GIF");
        let as_webp = resize_to(&gif, Size::Width(16), Some(Format::WebP), &LIMITS).unwrap();
        assert_eq!(webp_loop_count(&as_webp.bytes), webp_loops, "{repeat:?} GIF to WebP");
        let webp = webp_pan(2, 32, 18, &[50, 50], webp_loops as u16);
        let back = resize_to(&webp, Size::Width(16), Some(Format::Gif), &LIMITS).unwrap();
        assert_eq!(gif_timing(&back.bytes).1, repeat, "WebP {webp_loops} to GIF");
        let again = resize_to(&webp, Size::Width(16), None, &LIMITS).unwrap();
        assert_eq!(webp_loop_count(&again.bytes), webp_loops, "WebP {webp_loops} to WebP");
    }
}

#[test]
fn a_box_size_centre_crops_every_frame() {
    let source = gif_of(&pan(4, 160, 90), &[10; 4], gif::Repeat::Infinite);
    for output in [Format::Gif, Format::WebP] {
        let d = resize_to(&source, boxed(40, 40), Some(output), &LIMITS).unwrap();
        assert_eq!((d.width, d.height), (40, 40), "{output:?}");
        assert_eq!(composited(&d.bytes).len(), 4, "{output:?}");
        assert_frames_follow(&d, &source, 8.0);
    }
}

/// A 24x18 patch of one colour, with a transparent 10x10 hole if `hole`: the partial frames
/// of the compositing tests.
fn patch([r, g, b]: [u8; 3], hole: bool) -> RgbaImage {
    RgbaImage::from_fn(24, 18, |x, y| {
        let inside = hole && (10..20).contains(&x) && (4..14).contains(&y);
        image::Rgba(if inside { [0, 0, 0, 0] } else { [r, g, b, 255] })
    })
}

#[test]
fn frames_are_composited_as_browsers_show_them() {
    // A GIF of partial frames on a 64x36 canvas: a full first frame; a red patch kept on top
    // of it; a green patch with a transparent hole (what is under it shows through) that is
    // then cleared to transparent; a blue patch over the cleared canvas.
    let base = pan(1, 64, 36).remove(0);
    let mut encoder = gif::Encoder::new(Vec::new(), 64, 36, &[]).unwrap();
    encoder.set_repeat(gif::Repeat::Infinite).unwrap();
    let frames = [
        (base.clone(), 0, 0, gif::DisposalMethod::Keep),
        (patch([250, 20, 20], false), 4, 4, gif::DisposalMethod::Keep),
        (patch([20, 250, 20], true), 36, 14, gif::DisposalMethod::Background),
        (patch([20, 20, 250], false), 16, 6, gif::DisposalMethod::Keep),
    ];
    for (image, left, top, dispose) in &frames {
        let mut rgba = image.as_raw().clone();
        let (w, h) = image.dimensions();
        let mut frame = gif::Frame::from_rgba_speed(w as u16, h as u16, &mut rgba, 10);
        (frame.left, frame.top, frame.dispose, frame.delay) = (*left, *top, *dispose, 10);
        encoder.write_frame(&frame).unwrap();
    }
    let source = encoder.into_inner().unwrap();
    let want = composited(&source);
    for output in [Format::Gif, Format::WebP] {
        // The same size: no resampling, so pixels can be read back where they were put.
        let d = resize_to(&source, Size::Width(64), Some(output), &LIMITS).unwrap();
        let got = composited(&d.bytes);
        assert_eq!(got.len(), 4, "{output:?}");
        let at = |i: usize, x: u32, y: u32| got[i].0.get_pixel(x, y).0;
        // Lossy WebP and GIF's palettes move colours a little; the colours told apart here
        // (the photograph, pure red, green, blue, transparent) are far apart.
        let near = |a: [u8; 4], b: [u8; 4]| (0..4).all(|c| a[c].abs_diff(b[c]) <= 40);
        for (i, (frame, _)) in want.iter().enumerate() {
            for (x, y) in [(2, 2), (12, 12), (40, 23), (51, 23), (28, 15), (60, 33), (58, 30)] {
                let (g, w) = (at(i, x, y), frame.get_pixel(x, y).0);
                // Transparent is transparent whatever colour it carries.
                let same = if w[3] == 0 { g[3] == 0 } else { near(g, w) };
                assert!(same, "{output:?} frame {i} at {x},{y}: {g:?}, the image crate has {w:?}");
            }
        }
        // Spelt out: frame 1 keeps frame 0 around its red patch; frame 2's hole shows frame 1
        // under it; frame 3 sees frame 2's rectangle cleared around its blue patch.
        assert!(near(at(1, 2, 2), base.get_pixel(2, 2).0), "{output:?}");
        assert!(near(at(1, 12, 12), [250, 20, 20, 255]), "{output:?}");
        assert!(near(at(2, 40, 23), [20, 250, 20, 255]), "{output:?}");
        assert!(near(at(2, 51, 23), base.get_pixel(51, 23).0), "{output:?}: the hole");
        assert!(near(at(3, 28, 15), [20, 20, 250, 255]), "{output:?}");
        for (x, y) in [(51, 23), (58, 30)] {
            assert_eq!(at(3, x, y)[3], 0, "{output:?} {x},{y}: cleared by frame 2's disposal");
        }
        assert!(near(at(3, 60, 33), base.get_pixel(60, 33).0), "{output:?}: outside it");
    }
}

#[test]
fn a_sticker_on_a_transparent_canvas_is_transparent_around_it_as_webp() {
    // Opaque frames on a transparent canvas: libwebp encodes each frame as the opaque
    // rectangle it changes and leaves the rest of the canvas uncovered. Decoders that take
    // the VP8X alpha flag as the image's colour type (image-webp here, Pillow) must be told.
    let mut encoder = gif::Encoder::new(Vec::new(), 48, 32, &[]).unwrap();
    encoder.set_repeat(gif::Repeat::Infinite).unwrap();
    for colour in [[250, 20, 20], [20, 20, 250]] {
        let mut rgba = patch(colour, false).into_raw();
        let mut frame = gif::Frame::from_rgba_speed(24, 18, &mut rgba, 10);
        // Even offsets: WebP frame rectangles start on even pixels, so the one libwebp
        // crops to is exactly the sticker, with no transparent row of its own.
        (frame.left, frame.top, frame.delay) = (8, 8, 10);
        encoder.write_frame(&frame).unwrap();
    }
    let source = encoder.into_inner().unwrap();
    let d = resize_to(&source, Size::Width(48), Some(Format::WebP), &LIMITS).unwrap();
    assert_eq!((&d.bytes[12..16], d.bytes[20] & 0x10), (&b"VP8X"[..], 0x10), "VP8X alpha flag");
    let decoder = image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(&d.bytes)).unwrap();
    let frames = decoder.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 2);
    for (i, frame) in frames.iter().enumerate() {
        let frame = frame.buffer();
        assert_eq!(frame.get_pixel(1, 1)[3], 0, "frame {i}: the canvas around it");
        assert_eq!(frame.get_pixel(20, 15)[3], 255, "frame {i}: the sticker");
    }
}

#[test]
fn webp_frames_are_composited_with_offsets_blending_and_disposal() {
    // The same story in WebP's terms: a full frame, a red patch blended on it, a green patch
    // with a transparent hole blended and then disposed to transparent, a blue patch not
    // blended (its own pixels replace the canvas's).
    let base = pan(1, 64, 36).remove(0);
    let frame =
        |x, y, image, blend, dispose| WebPFrame { x, y, image, duration_ms: 100, blend, dispose };
    let source = webp_of(
        (64, 36),
        &[
            frame(0, 0, base.clone(), false, false),
            frame(4, 4, patch([250, 20, 20], false), true, false),
            frame(36, 14, patch([20, 250, 20], true), true, true),
            frame(16, 6, patch([20, 20, 250], false), false, false),
        ],
        0,
    );
    let want = composited(&source);
    for output in [Format::Gif, Format::WebP] {
        let d = resize_to(&source, Size::Width(64), Some(output), &LIMITS).unwrap();
        let got = composited(&d.bytes);
        assert_eq!(got.len(), 4, "{output:?}");
        let near = |a: [u8; 4], b: [u8; 4]| (0..4).all(|c| a[c].abs_diff(b[c]) <= 40);
        for (i, ((g, _), (w, _))) in got.iter().zip(&want).enumerate() {
            for (x, y) in [(2, 2), (12, 12), (40, 23), (51, 23), (28, 15), (60, 33), (58, 30)] {
                let (g, w) = (g.get_pixel(x, y).0, w.get_pixel(x, y).0);
                let same = if w[3] == 0 { g[3] == 0 } else { near(g, w) };
                assert!(same, "{output:?} frame {i} at {x},{y}: {g:?}, the image crate has {w:?}");
            }
        }
        assert!(near(got[2].0.get_pixel(51, 23).0, base.get_pixel(51, 23).0), "{output:?}");
        assert_eq!(got[3].0.get_pixel(58, 30).0[3], 0, "{output:?}: disposed");
    }
}

#[test]
fn a_still_gif_and_still_outputs_take_the_still_path() {
    let still = gif_of(&pan(1, 64, 36), &[0], gif::Repeat::Finite(0));
    assert_eq!(probe(&still, Format::Gif, &LIMITS).unwrap(), None);
    let d = resize_to(&still, Size::Width(32), None, &LIMITS).unwrap();
    assert_eq!((d.format, d.width, d.height, composited(&d.bytes).len()), (Format::Gif, 32, 18, 1));
    // An animated original asked as a still format: its first frame.
    let source = gif_of(&pan(3, 64, 36), &[10; 3], gif::Repeat::Infinite);
    let want = expected(&source, (32, 18));
    let d = resize_to(&source, Size::Width(32), Some(Format::Png), &LIMITS).unwrap();
    let png = image::load_from_memory(&d.bytes).unwrap().to_rgba8();
    assert!(mean_diff(&png, &want[0]) < 8.0);
    assert!(mean_diff(&png, &want[1]) > mean_diff(&png, &want[0]));
}

#[test]
fn probe_reads_frames_canvas_and_loops_from_headers() {
    let gif = gif_of(&pan(5, 48, 30), &[3; 5], gif::Repeat::Finite(4));
    let webp = webp_pan(4, 40, 20, &[30; 4], 0);
    assert_eq!(
        probe(&gif, Format::Gif, &LIMITS).unwrap(),
        Some(Animation { frames: 5, width: 48, height: 30, loops: Loops::Plays(5) })
    );
    assert_eq!(
        probe(&webp, Format::WebP, &LIMITS).unwrap(),
        Some(Animation { frames: 4, width: 40, height: 20, loops: Loops::Forever })
    );
    // Stills and other formats.
    let still_webp = ::webp::Encoder::from_rgb(&[1, 2, 3], 1, 1).encode_lossless().to_vec();
    assert_eq!(probe(&still_webp, Format::WebP, &LIMITS).unwrap(), None);
    assert_eq!(probe(PHOTO, Format::Jpeg, &LIMITS).unwrap(), None);
}

/// Where each image descriptor of a GIF written by the gif crate starts: right after a
/// graphic control extension (8 bytes, `21 F9 04 .. .. .. .. 00`).
fn descriptors(gif: &[u8]) -> Vec<usize> {
    (8..gif.len() - 10)
        .filter(|&i| gif[i] == 0x2C && gif[i - 1] == 0 && gif[i - 8] == 0x21)
        .collect()
}

/// A GIF of `n` tiny frames, and the same file with the LZW data of every frame after the
/// first replaced by garbage of the same lengths (the block structure intact).
fn many_frames(n: usize) -> (Vec<u8>, Vec<u8>) {
    let frame = RgbaImage::from_pixel(2, 2, image::Rgba([200, 30, 30, 255]));
    let gif = gif_of(&vec![frame; n], &vec![1; n], gif::Repeat::Infinite);
    let mut garbled = gif.clone();
    let starts = descriptors(&gif);
    assert_eq!(starts.len(), n);
    for &at in &starts[1..] {
        // 10 bytes of descriptor, the local colour table, the code size, one data sub-block.
        let flags = gif[at + 9];
        let table = if flags & 0x80 != 0 { 3 << ((flags & 7) + 1) } else { 0 };
        let len_at = at + 10 + table + 1;
        let len = usize::from(gif[len_at]);
        garbled[len_at + 1..len_at + 1 + len].fill(0xFF);
    }
    (gif, garbled)
}

#[test]
fn too_many_frames_are_refused_from_the_headers_before_any_frame_is_decoded() {
    let (gif, garbled) = many_frames(600);
    let limits = Limits { max_source_frames: 500, ..LIMITS };
    for bytes in [&gif, &garbled] {
        let r = resize_to(bytes, Size::Width(1), None, &limits);
        let Err(PipelineError::SourceTooLarge(message)) = &r else { panic!("{r:?}") };
        assert!(message.contains("MAX_SOURCE_FRAMES"), "{message}");
    }
    // Within the budget, the garbled file fails in decoding: the refusal above came first.
    let limits = Limits { max_source_frames: 600, ..LIMITS };
    assert_eq!(resize_to(&gif, Size::Width(1), None, &limits).unwrap().format, Format::Gif);
    let r = resize_to(&garbled, Size::Width(1), None, &limits);
    assert!(matches!(r, Err(PipelineError::Undecodable(_))), "{r:?}");
    // As a still format the frames are never counted: the first frame is made.
    let d = resize_to(&garbled, Size::Width(1), Some(Format::Png), &LIMITS).unwrap();
    assert_eq!((d.width, d.height), (1, 1));
}

#[test]
fn the_animation_pixel_budget_is_frames_times_canvas() {
    let gif = gif_of(&pan(10, 100, 50), &[5; 10], gif::Repeat::Infinite);
    let webp = webp_pan(10, 100, 50, &[50; 10], 0);
    for (bytes, format) in [(&gif, Format::Gif), (&webp, Format::WebP)] {
        let at = |max_animation_pixels| Limits { max_animation_pixels, ..LIMITS };
        assert!(probe(bytes, format, &at(50_000)).unwrap().is_some(), "{format:?}");
        let r = probe(bytes, format, &at(49_999));
        let Err(PipelineError::SourceTooLarge(message)) = &r else { panic!("{r:?}") };
        assert!(message.contains("MAX_SOURCE_ANIMATION_PIXELS"), "{message}");
        // The canvas answers to MAX_SOURCE_PIXELS as a still's size does.
        let r = probe(bytes, format, &Limits { max_source_pixels: 4_999, ..LIMITS });
        assert!(matches!(r, Err(PipelineError::SourceTooLarge(_))), "{format:?}: {r:?}");
    }
    // And so do the resized frames: 10 frames of a 100x100 box are 100,000 pixels.
    let r =
        resize_to(&gif, boxed(100, 100), None, &Limits { max_animation_pixels: 99_999, ..LIMITS });
    assert!(matches!(r, Err(PipelineError::SourceTooLarge(_))), "{r:?}");
}

#[test]
fn truncated_and_lying_files_are_walked_without_panics_or_overcounting() {
    let gif = gif_of(&pan(3, 24, 12), &[5; 3], gif::Repeat::Infinite);
    let webp = webp_pan(3, 24, 12, &[50; 3], 0);
    for (bytes, format) in [(&gif, Format::Gif), (&webp, Format::WebP)] {
        for end in 0..bytes.len() {
            let cut = &bytes[..end];
            let frames = probe(cut, format, &LIMITS).unwrap().map_or(0, |a| a.frames);
            assert!(frames <= 3, "{format:?} cut at {end}: {frames}");
            if end % 17 == 0 {
                // Whatever it is, it is answered without a panic, and never with more frames.
                if let Ok(d) = resize_to(cut, Size::Width(12), None, &LIMITS) {
                    assert!(composited(&d.bytes).len() <= 3, "{format:?} cut at {end}");
                }
            }
        }
    }
    // A chunk claiming 4 GiB and a RIFF size larger than the file: the walk stops at the end.
    let mut lying = webp.clone();
    let first_anmf = lying.windows(4).position(|w| w == b"ANMF").unwrap();
    lying[first_anmf + 4..first_anmf + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    lying[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(probe(&lying, Format::WebP, &LIMITS).unwrap(), None);
    // A GIF frame claiming 65535x65535 on a small screen is refused, not decoded.
    let mut huge = gif.clone();
    let second = descriptors(&gif)[1];
    huge[second + 5..second + 9].copy_from_slice(&[0xFF; 4]);
    let r = resize_to(&huge, Size::Width(12), None, &LIMITS);
    assert!(matches!(r, Err(PipelineError::SourceTooLarge(_))), "{r:?}");
}

#[test]
fn a_bad_frame_late_in_the_file_fails_the_whole_animation_in_either_output() {
    // More frames than wait between the decoding thread and the encoder, so the error comes
    // while the encoder is busy with earlier ones.
    let gif = gif_of(&pan(8, 24, 12), &[5; 8], gif::Repeat::Infinite);
    // The seventh frame's LZW minimum code size made impossible: its headers still walk
    // (the probe passes it), its pixels do not decode.
    let mut bad = gif.clone();
    let seventh = descriptors(&gif)[6];
    let packed = gif[seventh + 9];
    let palette = if packed & 0x80 != 0 { 3 << ((packed & 7) + 1) } else { 0 };
    bad[seventh + 10 + palette] = 0x0F;
    assert_eq!(probe(&bad, Format::Gif, &LIMITS).unwrap().map(|a| a.frames), Some(8));
    for output in [None, Some(Format::WebP)] {
        assert!(resize_to(&gif, Size::Width(12), output, &LIMITS).is_ok());
        let r = resize_to(&bad, Size::Width(12), output, &LIMITS);
        assert!(matches!(r, Err(PipelineError::Undecodable(_))), "{output:?}: {r:?}");
    }
}

/// Writes tests/data/animated/pan.gif, the end-to-end tests' animated original (6 frames of
/// 240x135 panning across the sample photograph), 3000-frames.gif, and with ANIMATED_BENCH_GIF=PATH the
/// benchmark's 100 frames of 480x270 at 25 frames a second:
/// `cargo test -p resizer --lib write_animated_fixtures -- --ignored`.
#[test]
#[ignore = "writes the committed fixture; run by hand when it changes"]
fn write_animated_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/animated");
    std::fs::create_dir_all(&dir).unwrap();
    let frames: Vec<RgbaImage> = (0..6)
        .map(|i| image::imageops::crop_imm(panorama(), i * 12, i * 6, 240, 135).to_image())
        .collect();
    let gif = gif_of(&frames, &[8, 12, 16, 20, 24, 28], gif::Repeat::Infinite);
    std::fs::write(dir.join("pan.gif"), gif).unwrap();
    // The hostile one: 3,000 frames of 1x1 on a global palette of 256 reds (frame i is red
    // i % 256), over the default MAX_SOURCE_FRAMES.
    let palette: Vec<u8> = (0..=255u8).flat_map(|r| [r, 0, 0]).collect();
    let mut encoder = gif::Encoder::new(Vec::new(), 1, 1, &palette).unwrap();
    encoder.set_repeat(gif::Repeat::Infinite).unwrap();
    for i in 0..3000 {
        let pixel = [(i % 256) as u8];
        let frame = gif::Frame {
            width: 1,
            height: 1,
            delay: 2,
            buffer: pixel[..].into(),
            ..Default::default()
        };
        encoder.write_frame(&frame).unwrap();
    }
    std::fs::write(dir.join("3000-frames.gif"), encoder.into_inner().unwrap()).unwrap();
    if let Ok(path) = std::env::var("ANIMATED_BENCH_GIF") {
        let jpeg = super::super::resize(PHOTO, Size::Width(1280), &LIMITS).unwrap();
        let wide = image::load_from_memory(&jpeg.bytes).unwrap().to_rgba8();
        let frames: Vec<RgbaImage> = (0..100)
            .map(|i| image::imageops::crop_imm(&wide, i * 8, i * 2, 480, 270).to_image())
            .collect();
        std::fs::write(path, gif_of(&frames, &[4; 100], gif::Repeat::Infinite)).unwrap();
    }
}
