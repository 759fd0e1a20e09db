//! Encoded here, decoded by image-webp (the `image` crate's pure-Rust decoder): an
//! implementation independent of libwebp.

use std::io::Cursor;

use image::{codecs::webp::WebPDecoder, AnimationDecoder};

use super::{argb_from_rgba, AnimEncoder, Settings};

const SETTINGS: Settings = Settings { quality: 90.0, method: 4, sns_strength: 50, loop_count: 3 };

/// A `w` x `h` canvas of one RGBA colour, as the encoder takes it.
fn solid(w: u32, h: u32, rgba: [u8; 4]) -> Vec<u32> {
    let mut argb = Vec::new();
    argb_from_rgba(&rgba.repeat((w * h) as usize), &mut argb);
    argb
}

/// Every frame decoded: (RGBA pixels, delay in ms).
fn decode(bytes: &[u8]) -> Vec<(image::RgbaImage, u32)> {
    let decoder = WebPDecoder::new(Cursor::new(bytes)).unwrap();
    decoder
        .into_frames()
        .collect_frames()
        .unwrap()
        .into_iter()
        .map(|f| {
            let (num, den) = f.delay().numer_denom_ms();
            (f.into_buffer(), num / den)
        })
        .collect()
}

/// The ANIM chunk's loop count.
fn loop_count(bytes: &[u8]) -> u16 {
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if &bytes[at..at + 4] == b"ANIM" {
            return u16::from_le_bytes([bytes[at + 12], bytes[at + 13]]);
        }
        at += 8 + len + (len & 1);
    }
    panic!("no ANIM chunk");
}

fn near(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).all(|(&x, &y)| x.abs_diff(y) <= 12)
}

#[test]
fn frames_keep_their_colours_durations_and_the_loop_count() {
    let (w, h) = (32, 16);
    let colours = [[200, 30, 40, 255], [20, 180, 60, 255], [30, 40, 220, 255]];
    let mut encoder = AnimEncoder::new(w, h, SETTINGS).unwrap();
    for (colour, at) in colours.iter().zip([0, 100, 250]) {
        encoder.add(&mut solid(w, h, *colour), at).unwrap();
    }
    let bytes = encoder.finish(400).unwrap();

    let frames = decode(&bytes);
    assert_eq!(frames.iter().map(|f| f.1).collect::<Vec<_>>(), [100, 150, 150]);
    for ((image, _), colour) in frames.iter().zip(colours) {
        assert_eq!(image.dimensions(), (w, h));
        let centre = image.get_pixel(w / 2, h / 2).0;
        assert!(near(&centre, &colour), "{centre:?} vs {colour:?}");
    }
    assert_eq!(loop_count(&bytes), 3);
}

#[test]
fn an_unchanged_frame_lengthens_the_one_before_and_the_total_is_kept() {
    let (w, h) = (16, 16);
    let mut encoder = AnimEncoder::new(w, h, Settings { loop_count: 0, ..SETTINGS }).unwrap();
    encoder.add(&mut solid(w, h, [250, 250, 0, 255]), 0).unwrap();
    encoder.add(&mut solid(w, h, [250, 250, 0, 255]), 70).unwrap();
    encoder.add(&mut solid(w, h, [0, 0, 250, 255]), 140).unwrap();
    let bytes = encoder.finish(200).unwrap();

    let frames = decode(&bytes);
    assert_eq!(frames.iter().map(|f| f.1).collect::<Vec<_>>(), [140, 60]);
    assert_eq!(loop_count(&bytes), 0);
}

#[test]
fn transparent_pixels_stay_transparent() {
    let (w, h) = (16, 16);
    let mut rgba = Vec::new();
    for y in 0..h {
        for _ in 0..w {
            rgba.extend_from_slice(if y < h / 2 { &[0, 0, 0, 0] } else { &[90, 160, 30, 255] });
        }
    }
    let mut argb = Vec::new();
    argb_from_rgba(&rgba, &mut argb);
    let mut encoder = AnimEncoder::new(w, h, SETTINGS).unwrap();
    encoder.add(&mut solid(w, h, [90, 160, 30, 255]), 0).unwrap();
    encoder.add(&mut argb, 50).unwrap();
    let bytes = encoder.finish(100).unwrap();

    let frames = decode(&bytes);
    assert_eq!(frames[0].0.get_pixel(3, 2).0[3], 255);
    assert_eq!(frames[1].0.get_pixel(3, 2).0[3], 0);
    assert_eq!(frames[1].0.get_pixel(3, 12).0[3], 255);
}

#[test]
fn a_frame_of_the_wrong_size_or_an_earlier_timestamp_is_an_error() {
    let mut encoder = AnimEncoder::new(8, 8, SETTINGS).unwrap();
    let short = encoder.add(&mut vec![0; 63], 0).unwrap_err();
    assert!(short.to_string().contains("63 pixels for a 8x8 canvas"), "{short}");
    encoder.add(&mut solid(8, 8, [1, 2, 3, 255]), 100).unwrap();
    let earlier = encoder.add(&mut solid(8, 8, [9, 9, 9, 255]), 50).unwrap_err();
    assert!(earlier.to_string().contains("non-decreasing"), "{earlier}");
}

#[test]
fn settings_libwebp_refuses_are_an_error() {
    for settings in [
        Settings { method: 7, ..SETTINGS },
        Settings { quality: 101.0, ..SETTINGS },
        Settings { sns_strength: 101, ..SETTINGS },
    ] {
        let Err(e) = AnimEncoder::new(8, 8, settings) else { panic!("{settings:?} accepted") };
        assert!(e.to_string().contains("invalid quality, method or SNS strength"), "{e}");
    }
}

#[test]
fn the_sns_strength_reaches_the_encoder() {
    // A textured frame: noise shaping moves bits between its busy and its flat half.
    let (w, h) = (64u32, 64u32);
    let rgba: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            let v = if x < w / 2 { (x * 37 + y * 91) % 251 } else { 128 + (x + y) % 3 };
            [v as u8, (v * 3 % 256) as u8, (255 - v) as u8, 255]
        })
        .collect();
    let encode = |sns_strength| {
        let mut argb = Vec::new();
        argb_from_rgba(&rgba, &mut argb);
        let mut encoder = AnimEncoder::new(w, h, Settings { sns_strength, ..SETTINGS }).unwrap();
        encoder.add(&mut argb.clone(), 0).unwrap();
        encoder.add(&mut argb, 100).unwrap();
        encoder.finish(200).unwrap()
    };
    assert_ne!(encode(0), encode(100));
}

#[test]
fn argb_packs_alpha_high_then_red_green_blue() {
    let mut argb = Vec::new();
    argb_from_rgba(&[0x11, 0x22, 0x33, 0x44, 1, 2, 3, 4], &mut argb);
    assert_eq!(argb, [0x4411_2233, 0x0401_0203]);
}

#[test]
fn opaque_frames_on_a_transparent_canvas_stay_transparent_around_them() {
    // An opaque square on nothing, red then blue: libwebp encodes only the square (opaque)
    // and leaves the canvas around it uncovered, i.e. transparent.
    let (w, h) = (16u32, 16u32);
    let sticker = |colour: [u8; 4]| {
        let rgba: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                if (4..12).contains(&x) && (4..12).contains(&y) {
                    colour
                } else {
                    [0; 4]
                }
            })
            .collect();
        let mut argb = Vec::new();
        argb_from_rgba(&rgba, &mut argb);
        argb
    };
    let mut encoder = AnimEncoder::new(w, h, SETTINGS).unwrap();
    encoder.add(&mut sticker([255, 0, 0, 255]), 0).unwrap();
    encoder.add(&mut sticker([0, 0, 255, 255]), 100).unwrap();
    let bytes = encoder.finish(200).unwrap();
    assert_ne!(bytes[20] & 0x10, 0, "VP8X alpha flag");
    let frames = decode(&bytes);
    assert_eq!(frames.len(), 2);
    for (frame, _) in &frames {
        assert_eq!(frame.get_pixel(0, 0)[3], 0, "corner");
        assert_eq!(frame.get_pixel(8, 8)[3], 255, "centre");
    }
}

#[test]
fn an_opaque_animation_is_marked_opaque() {
    let mut encoder = AnimEncoder::new(8, 8, SETTINGS).unwrap();
    encoder.add(&mut solid(8, 8, [10, 200, 30, 255]), 0).unwrap();
    encoder.add(&mut solid(8, 8, [200, 10, 30, 255]), 100).unwrap();
    let bytes = encoder.finish(200).unwrap();
    assert_eq!(&bytes[12..16], b"VP8X");
    assert_eq!(bytes[20] & 0x10, 0, "alpha flag");
}
