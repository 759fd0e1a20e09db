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

mod animation;
mod av1;
mod avif;
#[cfg(test)]
mod conversions;
mod decode;
mod encode;
#[cfg(test)]
mod format_tests;
#[cfg(test)]
mod hostile;
pub mod jpeg_markers;
#[cfg(test)]
mod tests;
mod webp;

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
    /// Most frames an animated original may have (MAX_SOURCE_FRAMES), counted from its
    /// headers before any frame is decoded.
    pub max_source_frames: u32,
    /// Most pixels an animated original may have over all its frames, frames x width x
    /// height of its canvas (MAX_SOURCE_ANIMATION_PIXELS), from its headers.
    pub max_animation_pixels: u64,
}

impl Limits {
    /// The defaults of MAX_SOURCE_BYTES, MAX_SOURCE_PIXELS, MAX_SOURCE_FRAMES and
    /// MAX_SOURCE_ANIMATION_PIXELS.
    pub const DEFAULT: Limits = Limits {
        max_source_bytes: crate::config::DEFAULT_MAX_SOURCE_BYTES,
        max_source_pixels: crate::config::DEFAULT_MAX_SOURCE_PIXELS,
        max_source_frames: crate::config::DEFAULT_MAX_SOURCE_FRAMES,
        max_animation_pixels: crate::config::DEFAULT_MAX_SOURCE_ANIMATION_PIXELS,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The formats read and written. AVIF is written only: an AVIF original is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// JPEG (baseline or progressive).
    Jpeg,
    /// PNG, alpha kept.
    Png,
    /// WebP: lossy, or lossless for a PNG original when that is smaller; animated when the
    /// original is.
    WebP,
    /// GIF: animated when the original is.
    Gif,
    /// AVIF (AV1 still image), alpha kept; written only.
    Avif,
}

impl Format {
    /// Every format, in the order the key grammar lists them.
    pub const ALL: [Format; 5] =
        [Format::Avif, Format::WebP, Format::Jpeg, Format::Png, Format::Gif];

    /// The format's short name, as logged and as spelt in a key's size segment (`avif`,
    /// `webp`, `jpeg`, `png`, `gif`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::WebP => "webp",
            Format::Gif => "gif",
            Format::Avif => "avif",
        }
    }

    /// The format named `name` exactly as [`Format::name`] spells it (`jpg` is not a name:
    /// one spelling per format keeps one cache key per derivative).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The Content-Type stored with the derivative.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::WebP => "image/webp",
            Format::Gif => "image/gif",
            Format::Avif => "image/avif",
        }
    }

    /// Whether the format can hold transparency (GIF: one transparent colour).
    pub fn has_alpha(self) -> bool {
        !matches!(self, Format::Jpeg)
    }

    /// Whether the format is written animated when the original is.
    pub fn keeps_animation(self) -> bool {
        matches!(self, Format::Gif | Format::WebP)
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::WebP => ImageFormat::WebP,
            Format::Gif => ImageFormat::Gif,
            Format::Avif => ImageFormat::Avif,
        }
    }
}

/// A finished derivative.
#[derive(Debug, Clone)]
pub struct Derivative {
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// Its format.
    pub format: Format,
    /// The original's format, as detected from its bytes.
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
    /// The original has translucent pixels and the format asked for has no alpha channel.
    #[error("{0}")]
    LosesTransparency(String),
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

/// Runs the whole pipeline on an original's bytes, writing the original's format. A refusal
/// carries no timings: a stage that failed is not timed.
pub fn resize(source: &[u8], size: Size, limits: &Limits) -> Result<Derivative, PipelineError> {
    resize_to(source, size, None, limits)
}

/// Runs the whole pipeline, writing `output` (`None`: the original's format).
///
/// What a conversion keeps: an animated GIF or WebP stays animated as GIF or WebP, and
/// becomes its first frame in any other format; transparency is never flattened: an original
/// with any translucent pixel asked as JPEG is refused ([`PipelineError::LosesTransparency`]),
/// an opaque alpha channel is dropped. The ICC profile goes with the pixels into every format.
pub fn resize_to(
    source: &[u8],
    size: Size,
    output: Option<Format>,
    limits: &Limits,
) -> Result<Derivative, PipelineError> {
    let started = Instant::now();
    if source.len() as u64 > limits.max_source_bytes {
        return Err(PipelineError::SourceTooLarge(format!(
            "{} bytes, limit {}",
            source.len(),
            limits.max_source_bytes
        )));
    }
    let format = detect_format(source)?;
    let output = output.unwrap_or(format);
    if output.keeps_animation() {
        if let Some(animation) = animation::probe(source, format, limits)? {
            return animation::resize_animation(source, format, animation, size, output, limits);
        }
    }
    let decoded = match format {
        Format::Jpeg => {
            jpeg_markers::check(source)?;
            decode_jpeg(source, size, limits)?
        }
        other => decode_generic(source, other, limits)?,
    };
    let Decoded { source_size, raster, orientation, icc_profile } = decoded;
    let raster = if output.has_alpha() { raster } else { drop_opaque_alpha(raster, output)? };
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
    let bytes = encode(&oriented, output, format, icc_profile)?;
    let timings = Timings {
        decode: decoded_at - started,
        resize: resized_at - decoded_at,
        encode: resized_at.elapsed(),
    };
    Ok(Derivative {
        bytes,
        format: output,
        source_format: format,
        width: oriented.width,
        height: oriented.height,
        timings,
    })
}

/// For a format without alpha: the raster without its alpha channel when every pixel is
/// opaque, else [`PipelineError::LosesTransparency`].
fn drop_opaque_alpha(r: Raster, output: Format) -> Result<Raster, PipelineError> {
    if r.layout != Layout::Rgba {
        return Ok(r);
    }
    if r.pixels.chunks_exact(4).any(|p| p[3] != u8::MAX) {
        return Err(PipelineError::LosesTransparency(format!(
            "the original has transparent pixels, which {} cannot hold; ask for png, webp or avif",
            output.name()
        )));
    }
    let pixels = r.pixels.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    Ok(Raster { layout: Layout::Rgb, pixels, ..r })
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
