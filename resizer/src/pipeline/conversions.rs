//! Every source format into every output format: what each conversion keeps (size, alpha,
//! grey, the first frame of an animation) and what it refuses.

use super::tests::{decode, LIMITS, PHOTO};
use super::*;
use image::{GenericImageView, ImageEncoder};

/// The pipeline fuzz target's seeds: 5 bytes of the target's own parameters, then the image.
macro_rules! seed {
    ($name:literal) => {
        include_bytes!(concat!("../../../fuzz/seeds/pipeline/", $name)).split_at(5).1
    };
}

const CMYK_JPEG: &[u8] = seed!("cmyk.jpg");
const GREY_JPEG: &[u8] = seed!("gray.jpg");
const PALETTE_GIF: &[u8] = seed!("palette.gif");
const LOSSY_WEBP: &[u8] = seed!("lossy.webp");
const ANIMATED_GIF: &[u8] = seed!("anim.gif");

fn png(width: u32, height: u32, color: image::ExtendedColorType, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(pixels, width, height, color)
        .unwrap();
    out
}

/// 64x48, a colour gradient whose left half is fully transparent and right half opaque,
/// with a translucent band between.
fn translucent_png() -> Vec<u8> {
    let (w, h) = (64u32, 48u32);
    let pixels: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            let alpha = if x < 24 {
                0
            } else if x < 40 {
                128
            } else {
                255
            };
            [(x * 4) as u8, (y * 5) as u8, 200, alpha]
        })
        .collect();
    png(w, h, image::ExtendedColorType::Rgba8, &pixels)
}

/// 64x48 RGBA whose every pixel is opaque (as many exported PNGs are).
fn opaque_rgba_png() -> Vec<u8> {
    let pixels: Vec<u8> =
        (0..64u32 * 48).flat_map(|i| [(i % 64 * 4) as u8, (i / 64 * 5) as u8, 90, 255]).collect();
    png(64, 48, image::ExtendedColorType::Rgba8, &pixels)
}

fn grey_png() -> Vec<u8> {
    let pixels: Vec<u8> = (0..64u32 * 48).map(|i| (i % 64 * 4) as u8).collect();
    png(64, 48, image::ExtendedColorType::L8, &pixels)
}

struct Source {
    name: &'static str,
    bytes: Vec<u8>,
    translucent: bool,
    /// The width asked: below the original's (the seeds are 8 to 12 px wide, and a
    /// one-sided size never upscales).
    width: u32,
}

fn sources() -> Vec<Source> {
    let source = |name, bytes: &[u8], translucent, width| Source {
        name,
        bytes: bytes.to_vec(),
        translucent,
        width,
    };
    vec![
        source("photo.jpg", PHOTO, false, 16),
        source("cmyk.jpg", CMYK_JPEG, false, 6),
        source("grey.jpg", GREY_JPEG, false, 6),
        source("translucent.png", &translucent_png(), true, 16),
        source("opaque-rgba.png", &opaque_rgba_png(), false, 16),
        source("grey.png", &grey_png(), false, 16),
        source("palette.gif", PALETTE_GIF, false, 6),
        source("lossy.webp", LOSSY_WEBP, false, 6),
        source("animated.gif", ANIMATED_GIF, false, 6),
    ]
}

#[test]
fn every_source_format_converts_to_every_output_format_or_says_why_not() {
    for src in sources() {
        let source_format = detect_format(&src.bytes).unwrap();
        for output in Format::ALL {
            let case = format!("{} as {}", src.name, output.name());
            let result = resize_to(&src.bytes, Size::Width(src.width), Some(output), &LIMITS);
            if src.translucent && !output.has_alpha() {
                assert!(
                    matches!(result, Err(PipelineError::LosesTransparency(_))),
                    "{case}: {result:?}"
                );
                continue;
            }
            let out = result.unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!((out.format, out.source_format), (output, source_format), "{case}");
            assert_eq!(out.width, src.width, "{case}");
            if output == Format::Avif {
                assert_eq!(image::guess_format(&out.bytes).ok(), Some(ImageFormat::Avif), "{case}");
                continue;
            }
            assert_eq!(detect_format(&out.bytes).unwrap(), output, "{case}");
            let img = decode(&out.bytes);
            assert_eq!(img.dimensions(), (out.width, out.height), "{case}");
            if src.translucent {
                // The transparent side stays transparent, the opaque side opaque (within a few
                // levels: Lanczos reaches toward the translucent band).
                let rgba = img.to_rgba8();
                assert!(rgba.get_pixel(0, out.height / 2)[3] < 20, "{case}: left is see-through");
                let right = rgba.get_pixel(out.width - 1, out.height / 2)[3];
                assert!(right >= 250, "{case}: right is opaque, {right}");
            }
        }
    }
}

#[test]
fn an_opaque_alpha_channel_is_dropped_for_jpeg_not_refused() {
    let out = resize_to(&opaque_rgba_png(), Size::Width(32), Some(Format::Jpeg), &LIMITS).unwrap();
    let img = decode(&out.bytes);
    assert_eq!(img.dimensions(), (32, 24));
    assert!(!img.color().has_alpha());
}

#[test]
fn a_translucent_original_asked_as_jpeg_is_refused_with_the_reason() {
    let err =
        resize_to(&translucent_png(), Size::Width(32), Some(Format::Jpeg), &LIMITS).unwrap_err();
    assert!(matches!(&err, PipelineError::LosesTransparency(m) if m.contains("jpeg")), "{err}");
}

#[test]
fn no_format_named_keeps_the_originals() {
    for src in sources() {
        let out = resize_to(&src.bytes, Size::Width(src.width), None, &LIMITS).unwrap();
        assert_eq!(out.format, out.source_format, "{}", src.name);
        assert_eq!(detect_format(&out.bytes).unwrap(), out.format, "{}", src.name);
    }
}

/// Mean absolute difference of two same-sized RGB images.
fn mean_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    let sum: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    sum as f64 / a.as_raw().len() as f64
}

#[test]
fn an_animated_original_asked_as_a_still_format_is_its_first_frame() {
    use image::AnimationDecoder;
    let frames = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(ANIMATED_GIF))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    assert!(frames.len() > 1);
    let frame = |i: usize| DynamicImage::ImageRgba8(frames[i].buffer().clone()).to_rgb8();
    let width = frames[0].buffer().width();
    for output in [Format::Png, Format::Jpeg] {
        let out = resize_to(ANIMATED_GIF, Size::Width(width), Some(output), &LIMITS).unwrap();
        let img = decode(&out.bytes).to_rgb8();
        let (to_first, to_second) = (mean_diff(&img, &frame(0)), mean_diff(&img, &frame(1)));
        assert!(
            to_first < 20.0 && to_first * 3.0 < to_second,
            "{output:?}: {to_first} vs {to_second}"
        );
    }
}
