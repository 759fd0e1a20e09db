//! The image pipeline: bytes in, bytes out, all in memory.
//!
//! detect the real format from the bytes -> check limits from the header -> decode (JPEG at
//! a reduced DCT scale when the target allows) -> SIMD resize with centre crop -> apply the
//! EXIF orientation to the small result -> encode in the source's format, carrying the ICC
//! profile and nothing else (no EXIF, GPS or comments).

use std::io::Cursor;

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
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
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
    raster: Raster,
    orientation: Orientation,
    icc_profile: Option<Vec<u8>>,
}

/// Runs the whole pipeline on an original's bytes.
pub fn resize(source: &[u8], size: Size, limits: &Limits) -> Result<Derivative, PipelineError> {
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
    let Decoded {
        raster,
        orientation,
        icc_profile,
    } = decoded;

    // Work out the output in display orientation, then resize in the source's orientation
    // and rotate the small result: cheaper than rotating the big decoded image, and the
    // centre crop is symmetric so the two orders give the same picture.
    let transposed = swaps_axes(orientation);
    let (disp_w, disp_h) = if transposed {
        (raster.height, raster.width)
    } else {
        (raster.width, raster.height)
    };
    let (out_w, out_h) = output_size(disp_w, disp_h, size);
    let (target_w, target_h) = if transposed { (out_h, out_w) } else { (out_w, out_h) };
    let crop_to_fill = matches!(size, Size::Box { .. });
    let resized = resize_raster(raster, target_w, target_h, crop_to_fill)?;
    let oriented = orient(resized, orientation);
    let bytes = encode(&oriented, format, icc_profile)?;
    Ok(Derivative {
        bytes,
        format,
        width: oriented.width,
        height: oriented.height,
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

/// JPEG through jpeg-decoder, whose IDCT can scale by 1/2, 1/4 or 1/8 while decoding: a
/// 5312x2988 photo asked at 300x300 is decoded at 664x374 and never exists at full size.
fn decode_jpeg(source: &[u8], size: Size, limits: &Limits) -> Result<Decoded, PipelineError> {
    let undecodable = |e: jpeg_decoder::Error| PipelineError::Undecodable(e.to_string());
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(source));
    decoder.read_info().map_err(undecodable)?;
    let info = decoder
        .info()
        .ok_or_else(|| PipelineError::Undecodable("no frame header".into()))?;
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
    let (need_w, need_h) = if swaps_axes(orientation) { (need_h, need_w) } else { (need_w, need_h) };
    let (scaled_w, scaled_h) = decoder
        .scale(need_w.min(u32::from(u16::MAX)) as u16, need_h.min(u32::from(u16::MAX)) as u16)
        .map_err(undecodable)?;
    let pixels = decoder.decode().map_err(undecodable)?;
    let raster = Raster {
        width: u32::from(scaled_w),
        height: u32::from(scaled_h),
        layout,
        pixels,
    };
    check_raster_len(&raster)?;
    Ok(Decoded {
        raster,
        orientation,
        icc_profile,
    })
}

/// PNG, WebP, GIF (first frame) and unusual JPEGs through the `image` crate.
fn decode_generic(source: &[u8], format: Format, limits: &Limits) -> Result<Decoded, PipelineError> {
    let undecodable = |e: image::ImageError| PipelineError::Undecodable(e.to_string());
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
        Raster {
            width,
            height,
            layout: Layout::Rgba,
            pixels: rgba.into_raw(),
        }
    } else {
        let rgb = image.into_rgb8();
        Raster {
            width,
            height,
            layout: Layout::Rgb,
            pixels: rgb.into_raw(),
        }
    };
    check_raster_len(&raster)?;
    Ok(Decoded {
        raster,
        orientation,
        icc_profile,
    })
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
fn resize_raster(src: Raster, width: u32, height: u32, crop_to_fill: bool) -> Result<Raster, PipelineError> {
    if (src.width, src.height) == (width, height) {
        return Ok(src);
    }
    let pixel_type = src.layout.pixel_type();
    let fail = |e: &dyn std::fmt::Display| PipelineError::Encode(format!("resize: {e}"));
    let src_image = fr::images::Image::from_vec_u8(src.width, src.height, src.pixels, pixel_type)
        .map_err(|e| fail(&e))?;
    let mut dst_image = fr::images::Image::new(width, height, pixel_type);
    let mut options = fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    if crop_to_fill {
        options = options.fit_into_destination(Some((0.5, 0.5)));
    }
    fr::Resizer::new()
        .resize(&src_image, &mut dst_image, &options)
        .map_err(|e| fail(&e))?;
    Ok(Raster {
        width,
        height,
        layout: src.layout,
        pixels: dst_image.into_vec(),
    })
}

fn orient(r: Raster, orientation: Orientation) -> Raster {
    if orientation == Orientation::NoTransforms {
        return r;
    }
    let Raster {
        width,
        height,
        layout,
        pixels,
    } = r;
    // The buffer length was checked against width x height x channels, so from_raw succeeds.
    let mut image = match layout {
        Layout::Luma => image::GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8),
        Layout::Rgb => image::RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8),
        Layout::Rgba => image::RgbaImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgba8),
    }
    .expect("raster length matches its dimensions");
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());
    Raster {
        width,
        height,
        layout,
        pixels: image.into_bytes(),
    }
}

fn encode(r: &Raster, format: Format, icc_profile: Option<Vec<u8>>) -> Result<Vec<u8>, PipelineError> {
    let fail = |e: &dyn std::fmt::Display| PipelineError::Encode(format!("{format:?}: {e}"));
    let mut out = Vec::with_capacity(r.pixels.len() / 8 + 1024);
    match format {
        Format::Jpeg => {
            let mut encoder = jpeg_encoder::Encoder::new(&mut out, LOSSY_QUALITY);
            encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
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
        }
        Format::Png => {
            let mut encoder = image::codecs::png::PngEncoder::new_with_quality(
                &mut out,
                image::codecs::png::CompressionType::Default,
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
            encoder
                .write_image(&r.pixels, r.width, r.height, color)
                .map_err(|e| fail(&e))?;
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
                out = crate::webp_icc::embed_icc_profile(&out, &icc, r.width, r.height).unwrap_or(out);
            }
        }
        Format::Gif => {
            let rgba = match r.layout {
                Layout::Rgba => r.pixels.clone(),
                Layout::Rgb => r.pixels.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect(),
                Layout::Luma => r.pixels.iter().flat_map(|&l| [l, l, l, 255]).collect(),
            };
            let frame = image::RgbaImage::from_raw(r.width, r.height, rgba)
                .ok_or_else(|| fail(&"frame buffer size"))?;
            let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 10);
            encoder
                .encode_frame(image::Frame::new(frame))
                .map_err(|e| fail(&e))?;
        }
    }
    Ok(out)
}
