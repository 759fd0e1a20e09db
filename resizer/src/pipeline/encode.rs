//! Encoding a resized raster in the source's format, with its ICC profile and nothing else.

use image::ImageEncoder;

use super::{Format, Layout, PipelineError, Raster, LOSSY_QUALITY};

/// Whether an ICC profile describes pixels laid out as `layout`: its header names its colour
/// space at bytes 16..20. A CMYK profile on converted RGB pixels, or a grey one on expanded
/// RGB, would make colour-managed viewers render wrong colours, so such profiles are dropped.
fn profile_fits(icc: &[u8], layout: Layout) -> bool {
    well_formed(icc)
        && matches!(
            (icc.get(16..20), layout),
            (Some(b"RGB "), Layout::Rgb | Layout::Rgba) | (Some(b"GRAY"), Layout::Luma)
        )
}

/// Whether `icc` has the shape ICC.1 gives every profile: a 128-byte header whose size field
/// is the profile's length and whose signature is `acsp`, then a tag table whose every tag
/// lies inside the profile. A malformed profile is dropped rather than passed on to every
/// viewer's colour management.
pub(super) fn well_formed(icc: &[u8]) -> bool {
    let be32 =
        |at: usize| icc.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let (Some(size), Some(count)) = (be32(0), be32(128)) else { return false };
    if size as usize != icc.len() || icc.get(36..40) != Some(b"acsp") {
        return false;
    }
    let table_end = (count as usize).checked_mul(12).and_then(|n| n.checked_add(132));
    if table_end.is_none_or(|end| end > icc.len()) {
        return false;
    }
    (0..count as usize).all(|i| {
        let entry = 132 + 12 * i;
        match (be32(entry + 4), be32(entry + 8)) {
            (Some(offset), Some(len)) => u64::from(offset) + u64::from(len) <= icc.len() as u64,
            _ => false,
        }
    })
}

/// Encodes `r` as `format`; `source` is the original's format (a PNG original may be written
/// as lossless WebP).
pub(super) fn encode(
    r: &Raster,
    format: Format,
    source: Format,
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
        Format::WebP => out = super::webp::encode_webp(r, icc_profile.as_deref(), source)?,
        Format::Avif => out = super::avif::encode_avif(r, icc_profile.as_deref())?,
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
pub(super) fn compact_jpeg_header(jpeg: &mut Vec<u8>) {
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
