//! Decoding: JPEG through libjpeg-turbo at a reduced DCT scale, everything else through the
//! `image` crate.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder};

use super::{check_pixels, swaps_axes, Decoded, Format, Layout, Limits, PipelineError, Raster};
use crate::geometry::required_source_size;
use crate::key::Size;

/// The DCT scales used: the power-of-two ones, which libjpeg-turbo computes with SIMD (its
/// 3/8, 5/8, 7/8 IDCTs are plain C and slower than decoding at the next power of two).
const DCT_SCALES: [(usize, usize); 4] = [(1, 8), (1, 4), (1, 2), (1, 1)];

/// Below this reduction left after the scaled IDCT, decode at twice the scale (see
/// [`dct_scale`]). Measured in docs/BENCHMARKS.md ("DCT scale"): under it, the sharper
/// raster was worth its bytes in WebP on every photograph tried; at 1.2 on the camera
/// photograph the two broke even; at 1.47 the scaled decode won.
const MIN_LANCZOS_RATIO: f64 = 1.2;

/// The DCT scale to decode a `width` x `height` JPEG at, for a resize that needs `need_w` x
/// `need_h` of it: the smallest whose output still covers that, except where that output would
/// be (nearly) the needed size itself, less than [`MIN_LANCZOS_RATIO`] above it: there the
/// scaled IDCT would make (nearly) the whole reduction, softer than a Lanczos pass (a 2048 px
/// photograph asked at 1024: SSIM 0.9955 at 1/2 against 0.9991 from the full decode), so it
/// decodes at twice that scale. Where Lanczos still has a real reduction to make after the
/// IDCT (20 MP asked at 2048: 1.47x after the 1/2 IDCT), the scaled decode stays: twice the
/// scale there cost a third more time and twice the memory for no SSIM after encoding.
pub(super) fn dct_scale(
    width: usize,
    height: usize,
    need_w: usize,
    need_h: usize,
) -> (usize, usize) {
    let scaled = |len: usize, (num, denom): (usize, usize)| (len * num).div_ceil(denom);
    let covers = |&&scale: &&(usize, usize)| {
        scaled(width, scale) >= need_w && scaled(height, scale) >= need_h
    };
    let (num, denom) = DCT_SCALES.iter().find(covers).copied().unwrap_or((1, 1));
    // The reduction Lanczos has left after the IDCT, on the axis that binds (the smaller).
    let left = |len: usize, need: usize| scaled(len, (num, denom)) as f64 / need.max(1) as f64;
    if denom > 1 && left(width, need_w).min(left(height, need_h)) < MIN_LANCZOS_RATIO {
        (num, denom / 2)
    } else {
        (num, denom)
    }
}

/// JPEG: the headers (EXIF orientation, ICC profile, components) through jpeg-decoder, the
/// pixels through libjpeg-turbo, whose IDCT scales by 1/2, 1/4 or 1/8 while decoding: a
/// 5312x2988 photo asked at 300x300 is decoded at 664x374 and never exists at full size.
pub(super) fn decode_jpeg(
    source: &[u8],
    size: Size,
    limits: &Limits,
) -> Result<Decoded, PipelineError> {
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
    // Also bounded by the marker walk before any decoder runs; kept here so libjpeg-turbo
    // never depends on it.
    decompressor.set_scan_limit(super::jpeg_markers::MAX_SCANS).map_err(turbo)?;
    let header = decompressor.read_header(source).map_err(turbo)?;
    if (header.width, header.height) != (width as usize, height as usize) {
        return Err(PipelineError::Undecodable("inconsistent frame headers".into()));
    }
    let (num, denom) = dct_scale(header.width, header.height, need_w as usize, need_h as usize);
    let factor = turbojpeg::ScalingFactor::new(num, denom);
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
pub(super) fn decode_generic(
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
