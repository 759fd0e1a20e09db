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
