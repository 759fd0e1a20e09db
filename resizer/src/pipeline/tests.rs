//! The pipeline's tests: whole resizes on real and generated images.

use super::encode::compact_jpeg_header;
use super::*;
use image::{DynamicImage, ImageDecoder, ImageEncoder};
use image::{GenericImageView, Rgba};
use std::io::Cursor;
use std::time::Duration;

pub(super) const PHOTO: &[u8] = include_bytes!("../../../samples/seeding.jpg");
pub(super) const LIMITS: Limits =
    Limits { max_source_bytes: 50_000_000, max_source_pixels: 50_000_000, ..Limits::DEFAULT };

pub(super) fn boxed(width: u32, height: u32) -> Size {
    Size::Box { width, height }
}

/// Decodes a derivative for inspection. JPEG goes through jpeg-decoder: zune-jpeg 0.5.15
/// (image's JPEG decoder) misreads some optimised-Huffman 4:2:0 files that libjpeg and
/// jpeg-decoder read correctly.
pub(super) fn decode(bytes: &[u8]) -> DynamicImage {
    if detect_format(bytes).unwrap() != Format::Jpeg {
        return image::load_from_memory(bytes).expect("derivative decodes");
    }
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    let pixels = d.decode().expect("derivative decodes");
    let info = d.info().unwrap();
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => {
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, pixels).unwrap())
        }
        jpeg_decoder::PixelFormat::L8 => {
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, pixels).unwrap())
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn each_stage_is_timed_within_the_call() {
    let started = std::time::Instant::now();
    let out = resize(PHOTO, boxed(300, 300), &LIMITS).unwrap();
    let wall = started.elapsed();
    let Timings { decode, resize, encode } = out.timings;
    for (stage, took) in [("decode", decode), ("resize", resize), ("encode", encode)] {
        assert!(took > Duration::ZERO, "{stage} was not timed: {:?}", out.timings);
    }
    assert!(decode + resize + encode <= wall, "{:?} in {wall:?}", out.timings);
    assert_eq!((out.source_format, out.format), (Format::Jpeg, Format::Jpeg));
}

#[test]
fn jpeg_output_has_no_jfif_segment_and_keeps_its_colours() {
    let out = resize(&two_colour_jpeg(400, 200), boxed(100, 50), &LIMITS).unwrap();
    assert_eq!(out.bytes[..2], [0xFF, 0xD8]);
    assert!(!out.bytes.windows(5).any(|w| w == b"JFIF\0"), "no JFIF APP0");
    // Read as YCbCr without the JFIF marker: red stays red, blue stays blue, and the
    // boundary's colours are averaged, not taken from one corner pixel.
    let img = decode(&out.bytes).to_rgb8();
    let (red, blue) = (img.get_pixel(10, 25), img.get_pixel(90, 25));
    assert!(red[0] > 200 && red[2] < 60, "{red:?}");
    assert!(blue[2] > 200 && blue[0] < 60, "{blue:?}");
    assert_eq!(image::load_from_memory(&out.bytes).unwrap().dimensions(), (100, 50));
}

/// A segment: marker, big-endian length, payload.
fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    s.extend_from_slice(payload);
    s
}

#[test]
fn jpeg_header_keeps_one_dqt_and_one_dht_and_drops_jfif() {
    let scan = [&segment(0xDA, &[1, 2, 3])[..], &[0x55, 0xFF, 0x00, 0xFF, 0xD9]].concat();
    let input = [
        &[0xFF, 0xD8][..],
        &segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"),
        &segment(0xE2, b"ICC_PROFILE\0\x01\x01abc"),
        &segment(0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]),
        &segment(0xDB, &[0, 10, 11]),
        &segment(0xDB, &[1, 20, 21]),
        &segment(0xC4, &[0x00, 5]),
        &segment(0xC4, &[0x10, 6]),
        &segment(0xC4, &[0x01, 7]),
        &scan,
    ]
    .concat();
    let mut out = input.clone();
    compact_jpeg_header(&mut out);
    let expected = [
        &[0xFF, 0xD8][..],
        &segment(0xE2, b"ICC_PROFILE\0\x01\x01abc"),
        &segment(0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]),
        &segment(0xDB, &[0, 10, 11, 1, 20, 21]),
        &segment(0xC4, &[0x00, 5, 0x10, 6, 0x01, 7]),
        &scan,
    ]
    .concat();
    assert_eq!(out, expected);
    assert_eq!(input.len() - out.len(), 18 + 4 + 2 * 4, "JFIF, one DQT and two DHT headers");
}

#[test]
fn jpeg_header_it_does_not_understand_is_left_alone() {
    let exif = [&[0xFF, 0xD8][..], &segment(0xE1, b"Exif\0\0"), &[0xFF, 0xD9]].concat();
    let truncated = [&[0xFF, 0xD8][..], &segment(0xDB, &[0, 1, 2])[..5]].concat();
    let no_soi = [&segment(0xDB, &[0, 1]), &segment(0xDB, &[1, 2])[..]].concat();
    for bytes in [exif, truncated, no_soi] {
        let mut out = bytes.clone();
        compact_jpeg_header(&mut out);
        assert_eq!(out, bytes);
    }
}

#[test]
fn compacted_jpeg_decodes_to_the_same_pixels() {
    let img = decode(PHOTO).to_rgb8();
    let mut plain = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut plain, LOSSY_QUALITY);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder.set_optimized_huffman_tables(true);
    let (w, h) = (img.width() as u16, img.height() as u16);
    encoder.encode(img.as_raw(), w, h, jpeg_encoder::ColorType::Rgb).unwrap();
    let mut compact = plain.clone();
    compact_jpeg_header(&mut compact);
    let count = |b: &[u8], m: u8| {
        b.windows(2).take_while(|w| w != &[0xFF, 0xDA]).filter(|w| w == &[0xFF, m]).count()
    };
    assert_eq!((count(&plain, 0xDB), count(&plain, 0xC4)), (2, 4));
    assert_eq!((count(&compact, 0xDB), count(&compact, 0xC4)), (1, 1));
    assert_eq!(plain.len() - compact.len(), 18 + 4 + 12);
    assert_eq!(decode(&compact).to_rgb8(), decode(&plain).to_rgb8());
}

/// A JPEG of `w` x `h` whose left half is red and right half blue.
fn two_colour_jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut pixels = Vec::with_capacity(usize::from(w) * usize::from(h) * 3);
    for _y in 0..h {
        for x in 0..w {
            pixels.extend_from_slice(if x < w / 2 { &[255, 0, 0] } else { &[0, 0, 255] });
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// Inserts an APP1 EXIF segment (orientation tag only, little-endian TIFF) and a COM
/// comment right after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // IFD0 offset
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    let comment = b"GPS 48.85N 2.35E secret comment";
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&((comment.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(comment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn close(a: &[u8], b: &[u8], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(*y) <= tolerance)
}

#[test]
fn jpeg_box_is_exact_and_jpeg() {
    let d = resize(PHOTO, boxed(300, 300), &LIMITS).unwrap();
    assert_eq!((d.width, d.height, d.format), (300, 300, Format::Jpeg));
    assert_eq!(detect_format(&d.bytes).unwrap(), Format::Jpeg);
    assert_eq!(decode(&d.bytes).dimensions(), (300, 300));
}

#[test]
fn one_sided_sizes_keep_aspect_and_never_upscale() {
    let d = resize(PHOTO, Size::Width(640), &LIMITS).unwrap();
    assert_eq!((d.width, d.height), (640, 360)); // 2988 * 640 / 5312 = 359.99
    let d = resize(PHOTO, Size::Height(200), &LIMITS).unwrap();
    assert_eq!((d.width, d.height), (356, 200)); // 5312 * 200 / 2988 = 355.6
    let small = two_colour_jpeg(64, 32);
    let d = resize(&small, Size::Width(4096), &LIMITS).unwrap();
    assert_eq!((d.width, d.height), (64, 32));
}

#[test]
fn large_jpeg_is_decoded_at_reduced_dct_scale() {
    // 5312x2988 covering 300x300 needs 534x300: 1/8 scale gives 664x374, the smallest
    // IDCT output that still covers it.
    let d = decode_jpeg(PHOTO, boxed(300, 300), &LIMITS).unwrap();
    assert_eq!((d.raster.width, d.raster.height), (664, 374));
    // Asking for nearly full size decodes at full size.
    let d = decode_jpeg(PHOTO, Size::Width(4000), &LIMITS).unwrap();
    assert_eq!((d.raster.width, d.raster.height), (5312, 2988));
    // 1/2 scale when the target is between 1/4 and 1/2, at least 1.2x under 1/2.
    let d = decode_jpeg(PHOTO, Size::Width(2000), &LIMITS).unwrap();
    assert_eq!((d.raster.width, d.raster.height), (2656, 1494));
    // Where the scaled IDCT alone would make the whole reduction (1/8 of 5312 is 664, 1/4
    // is 1328), twice its scale, so that Lanczos makes it instead.
    for (width, decoded) in [(664, (1328, 747)), (1328, (2656, 1494)), (1200, (2656, 1494))] {
        let d = decode_jpeg(PHOTO, Size::Width(width), &LIMITS).unwrap();
        assert_eq!((d.raster.width, d.raster.height), decoded, "{width}");
    }
}

#[test]
fn jpeg_decodes_at_twice_the_dct_scale_only_where_the_idct_would_leave_lanczos_almost_nothing() {
    // (source, needed) -> (num, denom)
    for (src, need, want) in [
        // 2048 px asked at 1024: 1/2 would be the output itself.
        ((2048, 1152), (1024, 576), (1, 1)),
        ((2048, 1152), (860, 484), (1, 1)), // 1024 / 860 = 1.19
        ((2048, 1152), (850, 479), (1, 2)), // 1024 / 850 = 1.205
        ((6028, 3391), (1507, 848), (1, 2)),
        ((6028, 3391), (2048, 1153), (1, 2)), // 3014 / 2048 = 1.47 left to Lanczos
        ((5312, 2988), (534, 300), (1, 8)),   // 664 / 534 = 1.24
        ((5312, 2988), (600, 338), (1, 4)),   // 664 / 600 = 1.11: twice 1/8
        ((100, 100), (50, 50), (1, 1)),
        ((100, 100), (100, 100), (1, 1)),
        ((1, 1), (1, 1), (1, 4)), // 1/8 is 1 px; twice the scale, still 1 px
    ] {
        assert_eq!(
            super::decode::dct_scale(src.0, src.1, need.0, need.1),
            want,
            "{src:?} {need:?}"
        );
    }
}

#[test]
fn box_crop_keeps_the_centre() {
    // Red | blue halves, 200x100 into 50x100: the centre column band straddles the edge.
    // 300x100 with thirds red | green | blue into 100x100 keeps the green third.
    let mut img = image::RgbImage::new(300, 100);
    for (x, _, p) in img.enumerate_pixels_mut() {
        *p = match x {
            0..100 => image::Rgb([255, 0, 0]),
            100..200 => image::Rgb([0, 255, 0]),
            _ => image::Rgb([0, 0, 255]),
        };
    }
    let mut png = Vec::new();
    DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut png), ImageFormat::Png).unwrap();
    let d = resize(&png, boxed(100, 100), &LIMITS).unwrap();
    let out = decode(&d.bytes).into_rgb8();
    assert_eq!(out.dimensions(), (100, 100));
    for x in [5, 50, 94] {
        assert!(
            close(&out.get_pixel(x, 50).0, &[0, 255, 0], 8),
            "x={x}: {:?}",
            out.get_pixel(x, 50)
        );
    }
}

#[test]
fn exif_orientation_is_applied_and_metadata_dropped() {
    // Orientation 6: the stored image is rotated 90 degrees clockwise for display, so the
    // stored left (red) half ends up on top.
    let plain = resize(&two_colour_jpeg(200, 100), Size::Width(50), &LIMITS).unwrap();
    let plain = decode(&plain.bytes).into_rgb8();
    assert!(
        close(&plain.get_pixel(5, 12).0, &[255, 0, 0], 40),
        "plain left {:?}",
        plain.get_pixel(5, 12)
    );
    let src = with_exif_orientation(&two_colour_jpeg(200, 100), 6);
    assert!(src.windows(6).any(|w| w == b"Exif\0\0"));
    let d = resize(&src, Size::Width(50), &LIMITS).unwrap();
    assert_eq!((d.width, d.height), (50, 100));
    let out = decode(&d.bytes).into_rgb8();
    assert!(close(&out.get_pixel(25, 10).0, &[255, 0, 0], 40), "top {:?}", out.get_pixel(25, 10));
    assert!(
        close(&out.get_pixel(25, 90).0, &[0, 0, 255], 40),
        "bottom {:?}",
        out.get_pixel(25, 90)
    );
    assert!(!d.bytes.windows(4).any(|w| w == b"Exif"), "EXIF copied");
    assert!(!d.bytes.windows(6).any(|w| w == b"secret"), "comment copied");
    // Box sizes are in display orientation too.
    let d = resize(&src, boxed(40, 80), &LIMITS).unwrap();
    assert_eq!((d.width, d.height), (40, 80));
}

/// A 16x16 mid-grey JPEG (RGB or one-channel) carrying `profile`.
pub(super) fn jpeg_with_icc(profile: &[u8], color: jpeg_encoder::ColorType) -> Vec<u8> {
    let channels = if color == jpeg_encoder::ColorType::Luma { 1 } else { 3 };
    let mut jpeg = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 90);
    enc.add_icc_profile(profile).unwrap();
    enc.encode(&vec![128; 16 * 16 * channels], 16, 16, color).unwrap();
    jpeg
}

/// The ICC profile a JPEG carries.
pub(super) fn icc_of_jpeg(jpeg: &[u8]) -> Option<Vec<u8>> {
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(jpeg));
    dec.read_info().unwrap();
    dec.icc_profile()
}

/// A 300-byte stand-in profile whose header names `space` (bytes 16..20): well formed (its
/// size, the `acsp` signature, one tag inside it), its contents otherwise filler.
pub(super) fn profile_for(space: &[u8; 4]) -> Vec<u8> {
    let mut profile: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    profile[0..4].copy_from_slice(&300u32.to_be_bytes());
    profile[16..20].copy_from_slice(space);
    profile[36..40].copy_from_slice(b"acsp");
    profile[128..132].copy_from_slice(&1u32.to_be_bytes());
    profile[132..136].copy_from_slice(b"desc");
    profile[136..140].copy_from_slice(&144u32.to_be_bytes());
    profile[140..144].copy_from_slice(&156u32.to_be_bytes());
    profile
}

#[test]
fn icc_profile_is_carried_into_jpeg_and_webp() {
    let profile = profile_for(b"RGB ");
    let src = jpeg_with_icc(&profile, jpeg_encoder::ColorType::Rgb);
    let d = resize(&src, boxed(8, 8), &LIMITS).unwrap();
    assert_eq!(icc_of_jpeg(&d.bytes), Some(profile.clone()));

    let webp_src = ::webp::Encoder::from_rgb(&[90; 16 * 16 * 3], 16, 16).encode(90.0);
    let with_icc = crate::webp_icc::embed_icc_profile(&webp_src, &profile, 16, 16).unwrap();
    let d = resize(&with_icc, boxed(8, 8), &LIMITS).unwrap();
    assert_eq!(d.format, Format::WebP);
    let mut reader = image::ImageReader::new(Cursor::new(&d.bytes));
    reader.set_format(ImageFormat::WebP);
    let mut decoder = reader.into_decoder().unwrap();
    assert_eq!(decoder.icc_profile().unwrap(), Some(profile));
    assert_eq!(decoder.dimensions(), (8, 8));
}

#[test]
fn icc_profile_is_carried_into_png() {
    let profile = profile_for(b"RGB ");
    let mut png = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut png);
    enc.set_icc_profile(profile.clone()).unwrap();
    enc.write_image(&[60; 16 * 16 * 4], 16, 16, image::ExtendedColorType::Rgba8).unwrap();
    let d = resize(&png, boxed(8, 8), &LIMITS).unwrap();
    let mut reader = image::ImageReader::new(Cursor::new(&d.bytes));
    reader.set_format(ImageFormat::Png);
    let mut decoder = reader.into_decoder().unwrap();
    assert_eq!(decoder.icc_profile().unwrap(), Some(profile));
}

#[test]
fn icc_profile_of_another_colour_space_is_dropped() {
    for space in [b"GRAY", b"CMYK"] {
        let src = jpeg_with_icc(&profile_for(space), jpeg_encoder::ColorType::Rgb);
        let d = resize(&src, boxed(8, 8), &LIMITS).unwrap();
        assert_eq!(icc_of_jpeg(&d.bytes), None, "{space:?} profile on RGB pixels");
    }
    let grey = profile_for(b"GRAY");
    let src = jpeg_with_icc(&grey, jpeg_encoder::ColorType::Luma);
    let d = resize(&src, boxed(8, 8), &LIMITS).unwrap();
    assert_eq!(icc_of_jpeg(&d.bytes), Some(grey), "grey profile on grey pixels kept");
}

#[test]
fn png_alpha_is_kept() {
    let mut img = image::RgbaImage::new(64, 64);
    for (x, _, p) in img.enumerate_pixels_mut() {
        *p = Rgba([10, 200, 30, if x < 32 { 0 } else { 255 }]);
    }
    let mut png = Vec::new();
    DynamicImage::ImageRgba8(img).write_to(&mut Cursor::new(&mut png), ImageFormat::Png).unwrap();
    let d = resize(&png, boxed(32, 32), &LIMITS).unwrap();
    assert_eq!(d.format, Format::Png);
    let out = decode(&d.bytes);
    assert!(out.color().has_alpha());
    let out = out.into_rgba8();
    assert_eq!(out.get_pixel(2, 16).0[3], 0);
    assert!(close(&out.get_pixel(29, 16).0, &[10, 200, 30, 255], 3), "{:?}", out.get_pixel(29, 16));
}

#[test]
fn webp_in_webp_out() {
    let rgba: Vec<u8> = (0..40 * 20).flat_map(|_| [200u8, 100, 50, 255]).collect();
    let src = ::webp::Encoder::from_rgba(&rgba, 40, 20).encode(90.0);
    let d = resize(&src, Size::Height(10), &LIMITS).unwrap();
    assert_eq!((d.format, d.width, d.height), (Format::WebP, 20, 10));
    assert_eq!(detect_format(&d.bytes).unwrap(), Format::WebP);
    let px = decode(&d.bytes).into_rgb8().get_pixel(10, 5).0;
    assert!(close(&px, &[200, 100, 50], 12), "{px:?}");
}

#[test]
fn format_comes_from_bytes_not_names() {
    assert_eq!(detect_format(PHOTO).unwrap(), Format::Jpeg);
    assert!(matches!(
        detect_format(b"BM\0\0\0\0\0\0\0\0\0\0\0\0"),
        Err(PipelineError::Unsupported(_))
    ));
    assert!(matches!(detect_format(b"hello, not an image"), Err(PipelineError::Unsupported(_))));
    assert!(matches!(resize(b"GIF89a", boxed(1, 1), &LIMITS), Err(PipelineError::Undecodable(_))));
    let truncated = &PHOTO[..PHOTO.len() / 3];
    assert!(matches!(
        resize(truncated, boxed(10, 10), &LIMITS),
        Err(PipelineError::Undecodable(_))
    ));
}

#[test]
fn limits_are_checked_from_the_header() {
    let pixels = Limits {
        max_source_bytes: 50_000_000,
        max_source_pixels: 5312 * 2988 - 1,
        ..Limits::default()
    };
    assert!(matches!(resize(PHOTO, boxed(10, 10), &pixels), Err(PipelineError::SourceTooLarge(_))));
    let exact = Limits { max_source_pixels: 5312 * 2988, ..pixels };
    assert!(resize(PHOTO, boxed(10, 10), &exact).is_ok());
    let bytes = Limits {
        max_source_bytes: PHOTO.len() as u64 - 1,
        max_source_pixels: 50_000_000,
        ..Limits::default()
    };
    assert!(matches!(resize(PHOTO, boxed(10, 10), &bytes), Err(PipelineError::SourceTooLarge(_))));
    // A PNG header claiming 100000 x 100000 is refused before any allocation.
    let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bomb.extend_from_slice(&100_000u32.to_be_bytes());
    bomb.extend_from_slice(&100_000u32.to_be_bytes());
    bomb.extend_from_slice(&[8, 2, 0, 0, 0]);
    let crc = crc32(&bomb[12..]);
    bomb.extend_from_slice(&crc.to_be_bytes());
    // An empty IDAT and IEND, so the file is complete and only its size is wrong.
    for (name, data) in [(&b"IDAT"[..], &[0x78u8, 0x9c, 0x03, 0, 0, 0, 0, 1][..]), (b"IEND", b"")] {
        bomb.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut chunk = name.to_vec();
        chunk.extend_from_slice(data);
        bomb.extend_from_slice(&chunk);
        bomb.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    let r = resize(&bomb, boxed(10, 10), &LIMITS);
    assert!(matches!(r, Err(PipelineError::SourceTooLarge(_))), "{r:?}");
}

pub(super) fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
