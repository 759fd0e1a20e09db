//! The image pipeline: bytes in, bytes out, all in memory.
//!
//! detect the real format from the bytes -> check limits from the header -> decode (JPEG at
//! a reduced DCT scale when the target allows) -> SIMD resize with centre crop -> apply the
//! EXIF orientation to the small result -> encode in the source's format, carrying the ICC
//! profile and nothing else (no EXIF, GPS or comments).

use std::time::{Duration, Instant};

use fast_image_resize as fr;
use image::metadata::Orientation;
use image::{DynamicImage, ImageFormat};

use crate::geometry::output_size;
use crate::key::Size;

mod decode;
mod encode;
#[cfg(test)]
mod hostile;
pub mod jpeg_markers;
#[cfg(test)]
mod tests;

use decode::{decode_generic, decode_jpeg};
use encode::encode;

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
    /// The original would cost more to decode than any real image does (a JPEG with more
    /// scans than [`jpeg_markers::MAX_SCANS`]).
    #[error("the original is too complex to decode: {0}")]
    TooComplex(String),
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
        Format::Jpeg => {
            jpeg_markers::check(source)?;
            decode_jpeg(source, size, limits)?
        }
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
