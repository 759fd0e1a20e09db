//! The image pipeline: bytes in, bytes out, all in memory.
//!
//! detect the real format from the bytes -> check limits from the header -> decode (JPEG at
//! a reduced DCT scale when the target allows) -> SIMD resize with centre crop -> apply the
//! EXIF orientation to the small result -> encode in the source's format, carrying the ICC
//! profile and nothing else (no EXIF, GPS or comments).

use std::io::Cursor;
use std::time::{Duration, Instant};

use fast_image_resize as fr;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageFormat};

use crate::geometry::{output_size, required_source_size};
use crate::key::Size;

/// Quality for lossy output, the same default sharp uses for JPEG and WebP.
pub const LOSSY_QUALITY: u8 = 80;

/// Bounds checked before any full decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest original accepted, in bytes.
    pub max_source_bytes: u64,
    /// Largest original accepted, in pixels (width x height from the header).
    pub max_source_pixels: u64,
}

/// The formats read and written. The output always has the source's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JPEG (baseline or progressive).
    Jpeg,
    /// PNG, alpha kept.
    Png,
    /// WebP; written lossy.
    WebP,
    /// GIF; the first frame only.
    Gif,
}

impl Format {
    /// The format's short name, as logged (`jpeg`, `png`, `webp`, `gif`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::WebP => "webp",
            Format::Gif => "gif",
        }
    }

    /// The Content-Type stored with the derivative.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::WebP => "image/webp",
            Format::Gif => "image/gif",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::WebP => ImageFormat::WebP,
            Format::Gif => ImageFormat::Gif,
        }
    }
}

/// A finished derivative.
#[derive(Debug, Clone)]
pub struct Derivative {
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// Its format (the original's).
    pub format: Format,
    /// The original's format, as detected from its bytes (today always `format`).
    pub source_format: Format,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// How long each stage took.
    pub timings: Timings,
}

/// The wall-clock time of each stage of one [`resize`], for metrics and Server-Timing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Format detection, limit checks and decoding (at a reduced DCT scale for JPEG).
    pub decode: Duration,
    /// Resampling, cropping and applying the EXIF orientation.
    pub resize: Duration,
    /// Encoding the derivative.
    pub encode: Duration,
}

/// Why the pipeline could not produce a derivative.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// The original exceeds MAX_SOURCE_BYTES or MAX_SOURCE_PIXELS.
    #[error("the original is too large: {0}")]
    SourceTooLarge(String),
    /// The bytes are not JPEG, PNG, WebP or GIF.
    #[error("unsupported image format: {0}")]
    Unsupported(String),
    /// The bytes claim a supported format but do not decode.
    #[error("the original could not be decoded: {0}")]
    Undecodable(String),
    /// Encoding the derivative failed (our fault, not the caller's).
    #[error("encoding the derivative failed: {0}")]
    Encode(String),
}

/// Detects the format from the bytes' signature, never from a name.
pub fn detect_format(bytes: &[u8]) -> Result<Format, PipelineError> {
    match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => Ok(Format::Jpeg),
        Ok(ImageFormat::Png) => Ok(Format::Png),
        Ok(ImageFormat::WebP) => Ok(Format::WebP),
        Ok(ImageFormat::Gif) => Ok(Format::Gif),
        Ok(other) => Err(PipelineError::Unsupported(format!("{other:?}"))),
        Err(_) => Err(PipelineError::Unsupported("unrecognised data".into())),
    }
}

/// Decoded pixels, tightly packed, 8 bits per channel.
struct Raster {
    width: u32,
    height: u32,
    layout: Layout,
    pixels: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Luma,
    Rgb,
    Rgba,
}

impl Layout {
    fn pixel_type(self) -> fr::PixelType {
        match self {
            Layout::Luma => fr::PixelType::U8,
            Layout::Rgb => fr::PixelType::U8x3,
            Layout::Rgba => fr::PixelType::U8x4,
        }
    }
}

/// What the decoder learnt besides pixels.
struct Decoded {
    /// The original's stored width and height, before any DCT scaling.
    source_size: (u32, u32),
    raster: Raster,
    orientation: Orientation,
    icc_profile: Option<Vec<u8>>,
}

/// Runs the whole pipeline on an original's bytes. A refusal carries no timings: a stage
/// that failed is not timed.
pub fn resize(source: &[u8], size: Size, limits: &Limits) -> Result<Derivative, PipelineError> {
    let started = Instant::now();
    if source.len() as u64 > limits.max_source_bytes {
        return Err(PipelineError::SourceTooLarge(format!(
            "{} bytes, limit {}",
            source.len(),
            limits.max_source_bytes
        )));
    }
    let format = detect_format(source)?;
    let decoded = match format {
        Format::Jpeg => decode_jpeg(source, size, limits)?,
        other => decode_generic(source, other, limits)?,
    };
    let Decoded { source_size, raster, orientation, icc_profile } = decoded;
    let decoded_at = Instant::now();

    // Work out the output in display orientation, then resize in the source's orientation
    // and rotate the small result: cheaper than rotating the big decoded image, and the
    // centre crop is symmetric so the two orders give the same picture.
    let transposed = swaps_axes(orientation);
    // Sizes come from the original's dimensions, not the DCT-scaled ones, so a derivative
    // is the same whichever scale the decoder picked.
    let (disp_w, disp_h) = if transposed { (source_size.1, source_size.0) } else { source_size };
    let (out_w, out_h) = output_size(disp_w, disp_h, size);
    let (target_w, target_h) = if transposed { (out_h, out_w) } else { (out_w, out_h) };
    let crop_to_fill = matches!(size, Size::Box { .. });
    let resized = resize_raster(raster, target_w, target_h, crop_to_fill)?;
    let oriented = orient(resized, orientation);
    let resized_at = Instant::now();
    let bytes = encode(&oriented, format, icc_profile)?;
    let timings = Timings {
        decode: decoded_at - started,
        resize: resized_at - decoded_at,
        encode: resized_at.elapsed(),
    };
    Ok(Derivative {
        bytes,
        format,
        source_format: format,
        width: oriented.width,
        height: oriented.height,
        timings,
    })
}

fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

fn check_pixels(width: u32, height: u32, limits: &Limits) -> Result<(), PipelineError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_source_pixels {
        return Err(PipelineError::SourceTooLarge(format!(
            "{width}x{height} is {pixels} pixels, limit {}",
            limits.max_source_pixels
        )));
    }
    if width == 0 || height == 0 {
        return Err(PipelineError::Undecodable(format!("{width}x{height} image")));
    }
    Ok(())
}

/// The DCT scales used: the power-of-two ones, which libjpeg-turbo computes with SIMD (its
/// 3/8, 5/8, 7/8 IDCTs are plain C and slower than decoding at the next power of two).
const DCT_SCALES: [(usize, usize); 4] = [(1, 8), (1, 4), (1, 2), (1, 1)];

/// JPEG: the headers (EXIF orientation, ICC profile, components) through jpeg-decoder, the
/// pixels through libjpeg-turbo, whose IDCT scales by 1/2, 1/4 or 1/8 while decoding: a
/// 5312x2988 photo asked at 300x300 is decoded at 664x374 and never exists at full size.
fn decode_jpeg(source: &[u8], size: Size, limits: &Limits) -> Result<Decoded, PipelineError> {
    let undecodable = |e: jpeg_decoder::Error| PipelineError::Undecodable(e.to_string());
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(source));
    decoder.read_info().map_err(undecodable)?;
    let info =
        decoder.info().ok_or_else(|| PipelineError::Undecodable("no frame header".into()))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_pixels(width, height, limits)?;
    let layout = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => Layout::Luma,
        jpeg_decoder::PixelFormat::RGB24 => Layout::Rgb,
        // CMYK and 16-bit lossless JPEGs are rare; the generic decoder converts them.
        jpeg_decoder::PixelFormat::CMYK32 | jpeg_decoder::PixelFormat::L16 => {
            return decode_generic(source, Format::Jpeg, limits);
        }
    };
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let icc_profile = decoder.icc_profile();

    let (disp_w, disp_h) = if swaps_axes(orientation) { (height, width) } else { (width, height) };
    let (need_w, need_h) = required_source_size(disp_w, disp_h, size);
    let (need_w, need_h) =
        if swaps_axes(orientation) { (need_h, need_w) } else { (need_w, need_h) };
    let turbo = |e: turbojpeg::Error| PipelineError::Undecodable(e.to_string());
    let mut decompressor = turbojpeg::Decompressor::new().map_err(turbo)?;
    let header = decompressor.read_header(source).map_err(turbo)?;
    if (header.width, header.height) != (width as usize, height as usize) {
        return Err(PipelineError::Undecodable("inconsistent frame headers".into()));
    }
    // The smallest scale whose output still covers what the resize needs.
    let factor = DCT_SCALES
        .iter()
        .map(|&(num, denom)| turbojpeg::ScalingFactor::new(num, denom))
        .find(|f| {
            f.scale(header.width) >= need_w as usize && f.scale(header.height) >= need_h as usize
        })
        .unwrap_or(turbojpeg::ScalingFactor::ONE);
    decompressor.set_scaling_factor(factor).map_err(turbo)?;
    let scaled = header.scaled(factor);
    let (format, channels) = match layout {
        Layout::Luma => (turbojpeg::PixelFormat::GRAY, 1),
        _ => (turbojpeg::PixelFormat::RGB, 3),
    };
    let mut pixels = vec![0u8; scaled.width * scaled.height * channels];
    let image = turbojpeg::Image {
        pixels: &mut pixels[..],
        width: scaled.width,
        pitch: scaled.width * channels,
        height: scaled.height,
        format,
    };
    decompressor.decompress(source, image).map_err(turbo)?;
    let raster = Raster {
        width: u32::try_from(scaled.width)
            .map_err(|e| PipelineError::Undecodable(e.to_string()))?,
        height: u32::try_from(scaled.height)
            .map_err(|e| PipelineError::Undecodable(e.to_string()))?,
        layout,
        pixels,
    };
    check_raster_len(&raster)?;
    Ok(Decoded { source_size: (width, height), raster, orientation, icc_profile })
}

/// PNG, WebP, GIF (first frame) and unusual JPEGs through the `image` crate.
fn decode_generic(
    source: &[u8],
    format: Format,
    limits: &Limits,
) -> Result<Decoded, PipelineError> {
    let undecodable = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => PipelineError::SourceTooLarge(l.to_string()),
        other => PipelineError::Undecodable(other.to_string()),
    };
    let mut reader = image::ImageReader::new(Cursor::new(source));
    reader.set_format(format.image_format());
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc_profile = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    let raster = if image.color().has_alpha() {
        let rgba = image.into_rgba8();
        Raster { width, height, layout: Layout::Rgba, pixels: rgba.into_raw() }
    } else {
        let rgb = image.into_rgb8();
        Raster { width, height, layout: Layout::Rgb, pixels: rgb.into_raw() }
    };
    check_raster_len(&raster)?;
    Ok(Decoded { source_size: (width, height), raster, orientation, icc_profile })
}

fn check_raster_len(r: &Raster) -> Result<(), PipelineError> {
    let channels = r.layout.pixel_type().size();
    if r.pixels.len() != r.width as usize * r.height as usize * channels {
        return Err(PipelineError::Undecodable("decoder returned a short buffer".into()));
    }
    Ok(())
}

/// Lanczos3 (sharp's default kernel) with the SIMD code fast_image_resize picks for this
/// CPU. `crop_to_fill` centre-crops the source to the target's aspect ratio first.
fn resize_raster(
    src: Raster,
    width: u32,
    height: u32,
    crop_to_fill: bool,
) -> Result<Raster, PipelineError> {
    if (src.width, src.height) == (width, height) {
        return Ok(src);
    }
    let pixel_type = src.layout.pixel_type();
    let fail = |e: &dyn std::fmt::Display| PipelineError::Encode(format!("resize: {e}"));
    let src_image = fr::images::Image::from_vec_u8(src.width, src.height, src.pixels, pixel_type)
        .map_err(|e| fail(&e))?;
    let mut dst_image = fr::images::Image::new(width, height, pixel_type);
    let mut options =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    if crop_to_fill {
        options = options.fit_into_destination(Some((0.5, 0.5)));
    }
    fr::Resizer::new().resize(&src_image, &mut dst_image, &options).map_err(|e| fail(&e))?;
    Ok(Raster { width, height, layout: src.layout, pixels: dst_image.into_vec() })
}

fn orient(r: Raster, orientation: Orientation) -> Raster {
    if orientation == Orientation::NoTransforms {
        return r;
    }
    let Raster { width, height, layout, pixels } = r;
    // The buffer length was checked against width x height x channels, so from_raw succeeds.
    let mut image = match layout {
        Layout::Luma => {
            image::GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8)
        }
        Layout::Rgb => {
            image::RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8)
        }
        Layout::Rgba => {
            image::RgbaImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgba8)
        }
    }
    .expect("raster length matches its dimensions");
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());
    Raster { width, height, layout, pixels: image.into_bytes() }
}

/// Whether an ICC profile describes pixels laid out as `layout`: its header names its colour
/// space at bytes 16..20. A CMYK profile on converted RGB pixels, or a grey one on expanded
/// RGB, would make colour-managed viewers render wrong colours, so such profiles are dropped.
fn profile_fits(icc: &[u8], layout: Layout) -> bool {
    matches!(
        (icc.get(16..20), layout),
        (Some(b"RGB "), Layout::Rgb | Layout::Rgba) | (Some(b"GRAY"), Layout::Luma)
    )
}

fn encode(
    r: &Raster,
    format: Format,
    icc_profile: Option<Vec<u8>>,
) -> Result<Vec<u8>, PipelineError> {
    let icc_profile = icc_profile.filter(|icc| profile_fits(icc, r.layout));
    let fail = |e: &dyn std::fmt::Display| PipelineError::Encode(format!("{format:?}: {e}"));
    let mut out = Vec::with_capacity(r.pixels.len() / 8 + 1024);
    match format {
        Format::Jpeg => {
            let mut encoder = jpeg_encoder::Encoder::new(&mut out, LOSSY_QUALITY);
            encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
            // Chroma averaged over each 2x2 block, as libjpeg does; the crate's default takes
            // the top-left pixel, which aliases colour edges and costs bytes.
            encoder.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Average);
            encoder.set_optimized_huffman_tables(true);
            if let Some(icc) = &icc_profile {
                encoder.add_icc_profile(icc).map_err(|e| fail(&e))?;
            }
            let color = match r.layout {
                Layout::Luma => jpeg_encoder::ColorType::Luma,
                Layout::Rgb => jpeg_encoder::ColorType::Rgb,
                Layout::Rgba => jpeg_encoder::ColorType::Rgba,
            };
            encoder
                .encode(&r.pixels, r.width as u16, r.height as u16, color)
                .map_err(|e| fail(&e))?;
            compact_jpeg_header(&mut out);
        }
        Format::Png => {
            // fdeflate ("Fast") with adaptive filters: on the 4 MP benchmark photograph it was
            // 4.8x faster than zlib level 6 and 6% smaller (docs/BENCHMARKS.md).
            let mut encoder = image::codecs::png::PngEncoder::new_with_quality(
                &mut out,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            );
            if let Some(icc) = icc_profile {
                // A profile the encoder refuses is dropped rather than failing the request.
                let _ = encoder.set_icc_profile(icc);
            }
            let color = match r.layout {
                Layout::Luma => image::ExtendedColorType::L8,
                Layout::Rgb => image::ExtendedColorType::Rgb8,
                Layout::Rgba => image::ExtendedColorType::Rgba8,
            };
            encoder.write_image(&r.pixels, r.width, r.height, color).map_err(|e| fail(&e))?;
        }
        Format::WebP => {
            let rgb;
            let encoder = match r.layout {
                Layout::Rgba => webp::Encoder::from_rgba(&r.pixels, r.width, r.height),
                Layout::Rgb => webp::Encoder::from_rgb(&r.pixels, r.width, r.height),
                Layout::Luma => {
                    rgb = r.pixels.iter().flat_map(|&l| [l, l, l]).collect::<Vec<u8>>();
                    webp::Encoder::from_rgb(&rgb, r.width, r.height)
                }
            };
            let encoded = encoder
                .encode_simple(false, f32::from(LOSSY_QUALITY))
                .map_err(|e| fail(&format!("{e:?}")))?;
            out.extend_from_slice(&encoded);
            if let Some(icc) = icc_profile {
                out = crate::webp_icc::embed_icc_profile(&out, &icc, r.width, r.height)
                    .unwrap_or(out);
            }
        }
        Format::Gif => {
            let rgba = match r.layout {
                Layout::Rgba => r.pixels.clone(),
                Layout::Rgb => {
                    r.pixels.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect()
                }
                Layout::Luma => r.pixels.iter().flat_map(|&l| [l, l, l, 255]).collect(),
            };
            let frame = image::RgbaImage::from_raw(r.width, r.height, rgba)
                .ok_or_else(|| fail(&"frame buffer size"))?;
            let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 10);
            encoder.encode_frame(image::Frame::new(frame)).map_err(|e| fail(&e))?;
        }
    }
    Ok(out)
}

/// Rewrites the header jpeg-encoder writes, before the first scan, the way libjpeg-turbo's
/// smallest output would look: no JFIF APP0 segment (18 bytes of version and density;
/// decoders take three components as YCbCr without it, and libvips' writer leaves it out
/// too), both quantisation tables in one DQT segment and all Huffman tables in one DHT
/// segment (4 and 12 bytes of marker and length saved). Tables only move to where the first of
/// their kind stood, still ahead of the scan that uses them; everything from the first SOS on
/// is untouched. Anything this does not recognise leaves the bytes as they are.
fn compact_jpeg_header(jpeg: &mut Vec<u8>) {
    const SOI: [u8; 2] = [0xFF, 0xD8];
    const DQT: u8 = 0xDB;
    const DHT: u8 = 0xC4;
    const SOS: u8 = 0xDA;
    if jpeg.len() < 4 || jpeg[..2] != SOI {
        return;
    }
    // (marker, payload range) of every segment before the first SOS.
    let mut segments = Vec::new();
    let mut at = 2;
    let scan_start = loop {
        let Some(&[0xFF, marker, hi, lo]) = jpeg.get(at..at + 4) else { return };
        if marker == SOS {
            break at;
        }
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < 2 || at + 2 + len > jpeg.len() {
            return;
        }
        segments.push((marker, at + 4..at + 2 + len));
        at += 2 + len;
    };
    let merged = |kind: u8| -> Vec<u8> {
        segments
            .iter()
            .filter(|(m, _)| *m == kind)
            .flat_map(|(_, r)| &jpeg[r.clone()])
            .copied()
            .collect()
    };
    let (tables_q, tables_h) = (merged(DQT), merged(DHT));
    if tables_q.len() + 2 > usize::from(u16::MAX) || tables_h.len() + 2 > usize::from(u16::MAX) {
        return;
    }
    let mut header = Vec::with_capacity(scan_start);
    header.extend_from_slice(&SOI);
    let mut push = |marker: u8, body: &[u8]| {
        header.extend_from_slice(&[0xFF, marker]);
        header.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        header.extend_from_slice(body);
    };
    let (mut wrote_q, mut wrote_h) = (false, false);
    for (marker, payload) in &segments {
        let body = &jpeg[payload.clone()];
        match *marker {
            0xE0 if body.starts_with(b"JFIF\0") => {}
            DQT if !std::mem::replace(&mut wrote_q, true) => push(DQT, &tables_q),
            DHT if !std::mem::replace(&mut wrote_h, true) => push(DHT, &tables_h),
            DQT | DHT => {}
            other => push(other, body),
        }
    }
    jpeg.splice(..scan_start, header);
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GenericImageView, Rgba};

    const PHOTO: &[u8] = include_bytes!("../../samples/seeding.jpg");
    const LIMITS: Limits = Limits { max_source_bytes: 50_000_000, max_source_pixels: 50_000_000 };

    fn boxed(width: u32, height: u32) -> Size {
        Size::Box { width, height }
    }

    /// Decodes a derivative for inspection. JPEG goes through jpeg-decoder: zune-jpeg 0.5.15
    /// (image's JPEG decoder) misreads some optimised-Huffman 4:2:0 files that libjpeg and
    /// jpeg-decoder read correctly.
    fn decode(bytes: &[u8]) -> DynamicImage {
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
        // 1/2 scale when the target is between 1/4 and 1/2.
        let d = decode_jpeg(PHOTO, Size::Width(2000), &LIMITS).unwrap();
        assert_eq!((d.raster.width, d.raster.height), (2656, 1494));
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
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
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
        assert!(
            close(&out.get_pixel(25, 10).0, &[255, 0, 0], 40),
            "top {:?}",
            out.get_pixel(25, 10)
        );
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
    fn jpeg_with_icc(profile: &[u8], color: jpeg_encoder::ColorType) -> Vec<u8> {
        let channels = if color == jpeg_encoder::ColorType::Luma { 1 } else { 3 };
        let mut jpeg = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 90);
        enc.add_icc_profile(profile).unwrap();
        enc.encode(&vec![128; 16 * 16 * channels], 16, 16, color).unwrap();
        jpeg
    }

    /// The ICC profile a JPEG carries.
    fn icc_of_jpeg(jpeg: &[u8]) -> Option<Vec<u8>> {
        let mut dec = jpeg_decoder::Decoder::new(Cursor::new(jpeg));
        dec.read_info().unwrap();
        dec.icc_profile()
    }

    /// A 300-byte stand-in profile whose header names `space` (bytes 16..20).
    fn profile_for(space: &[u8; 4]) -> Vec<u8> {
        let mut profile: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        profile[16..20].copy_from_slice(space);
        profile
    }

    #[test]
    fn icc_profile_is_carried_into_jpeg_and_webp() {
        let profile = profile_for(b"RGB ");
        let src = jpeg_with_icc(&profile, jpeg_encoder::ColorType::Rgb);
        let d = resize(&src, boxed(8, 8), &LIMITS).unwrap();
        assert_eq!(icc_of_jpeg(&d.bytes), Some(profile.clone()));

        let webp_src = webp::Encoder::from_rgb(&[90; 16 * 16 * 3], 16, 16).encode(90.0);
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
        DynamicImage::ImageRgba8(img)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let d = resize(&png, boxed(32, 32), &LIMITS).unwrap();
        assert_eq!(d.format, Format::Png);
        let out = decode(&d.bytes);
        assert!(out.color().has_alpha());
        let out = out.into_rgba8();
        assert_eq!(out.get_pixel(2, 16).0[3], 0);
        assert!(
            close(&out.get_pixel(29, 16).0, &[10, 200, 30, 255], 3),
            "{:?}",
            out.get_pixel(29, 16)
        );
    }

    #[test]
    fn webp_in_webp_out() {
        let rgba: Vec<u8> = (0..40 * 20).flat_map(|_| [200u8, 100, 50, 255]).collect();
        let src = webp::Encoder::from_rgba(&rgba, 40, 20).encode(90.0);
        let d = resize(&src, Size::Height(10), &LIMITS).unwrap();
        assert_eq!((d.format, d.width, d.height), (Format::WebP, 20, 10));
        assert_eq!(detect_format(&d.bytes).unwrap(), Format::WebP);
        let px = decode(&d.bytes).into_rgb8().get_pixel(10, 5).0;
        assert!(close(&px, &[200, 100, 50], 12), "{px:?}");
    }

    #[test]
    fn gif_keeps_only_the_first_frame() {
        let mut gif = Vec::new();
        {
            let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
            let red = image::RgbaImage::from_pixel(20, 20, Rgba([255, 0, 0, 255]));
            let blue = image::RgbaImage::from_pixel(20, 20, Rgba([0, 0, 255, 255]));
            enc.encode_frames([image::Frame::new(red), image::Frame::new(blue)]).unwrap();
        }
        let d = resize(&gif, boxed(10, 10), &LIMITS).unwrap();
        assert_eq!(d.format, Format::Gif);
        let frames = image::AnimationDecoder::into_frames(
            image::codecs::gif::GifDecoder::new(Cursor::new(&d.bytes)).unwrap(),
        )
        .collect_frames()
        .unwrap();
        assert_eq!(frames.len(), 1);
        let px = frames[0].buffer().get_pixel(5, 5).0;
        assert!(close(&px, &[255, 0, 0, 255], 8), "{px:?}");
    }

    #[test]
    fn format_comes_from_bytes_not_names() {
        assert_eq!(detect_format(PHOTO).unwrap(), Format::Jpeg);
        assert!(matches!(
            detect_format(b"BM\0\0\0\0\0\0\0\0\0\0\0\0"),
            Err(PipelineError::Unsupported(_))
        ));
        assert!(matches!(
            detect_format(b"hello, not an image"),
            Err(PipelineError::Unsupported(_))
        ));
        assert!(matches!(
            resize(b"GIF89a", boxed(1, 1), &LIMITS),
            Err(PipelineError::Undecodable(_))
        ));
        let truncated = &PHOTO[..PHOTO.len() / 3];
        assert!(matches!(
            resize(truncated, boxed(10, 10), &LIMITS),
            Err(PipelineError::Undecodable(_))
        ));
    }

    #[test]
    fn limits_are_checked_from_the_header() {
        let pixels = Limits { max_source_bytes: 50_000_000, max_source_pixels: 5312 * 2988 - 1 };
        assert!(matches!(
            resize(PHOTO, boxed(10, 10), &pixels),
            Err(PipelineError::SourceTooLarge(_))
        ));
        let exact = Limits { max_source_pixels: 5312 * 2988, ..pixels };
        assert!(resize(PHOTO, boxed(10, 10), &exact).is_ok());
        let bytes =
            Limits { max_source_bytes: PHOTO.len() as u64 - 1, max_source_pixels: 50_000_000 };
        assert!(matches!(
            resize(PHOTO, boxed(10, 10), &bytes),
            Err(PipelineError::SourceTooLarge(_))
        ));
        // A PNG header claiming 100000 x 100000 is refused before any allocation.
        let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        bomb.extend_from_slice(&100_000u32.to_be_bytes());
        bomb.extend_from_slice(&100_000u32.to_be_bytes());
        bomb.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32(&bomb[12..]);
        bomb.extend_from_slice(&crc.to_be_bytes());
        // An empty IDAT and IEND, so the file is complete and only its size is wrong.
        for (name, data) in
            [(&b"IDAT"[..], &[0x78u8, 0x9c, 0x03, 0, 0, 0, 0, 1][..]), (b"IEND", b"")]
        {
            bomb.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut chunk = name.to_vec();
            chunk.extend_from_slice(data);
            bomb.extend_from_slice(&chunk);
            bomb.extend_from_slice(&crc32(&chunk).to_be_bytes());
        }
        let r = resize(&bomb, boxed(10, 10), &LIMITS);
        assert!(matches!(r, Err(PipelineError::SourceTooLarge(_))), "{r:?}");
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
