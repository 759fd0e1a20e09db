//! WebP encoding through libwebp: lossy at sharp's default quality, and lossless as well for
//! a PNG original with few colours, keeping whichever is smaller.
//!
//! The lossy settings are sharp's `.webp()` defaults (libvips: `WebPConfigPreset(DEFAULT,
//! 80)`, method 4, alpha losslessly compressed at quality 100, no sharp YUV) but for the
//! spatial noise shaping: see [`LOSSY_METHOD`] and [`LOSSY_SNS_STRENGTH`].
//!
//! Lossless is tried only when the resized raster has at most [`LOSSLESS_MAX_COLOURS`]
//! distinct colours. Measured on 9 PNG screenshots, charts and diagrams (docs/BENCHMARKS.md,
//! WebP): at their own size lossless was smaller for 6 of the 7 with at most 1,487 colours
//! and larger for one of 3,937 and one of 8,712; downscaled, it was never smaller (not even at
//! 156 colours), nor on any photograph (16x the bytes); and it costs up to 9x the lossy
//! encode's time. Counting stops at the limit, so a photograph pays for a few thousand
//! pixels' look-ups.

use std::collections::HashSet;

use super::{Format, Layout, PipelineError, Raster, LOSSY_QUALITY};

/// libwebp's method (0 fastest .. 6 smallest) for lossy output: 4, sharp's effort 4. At our
/// fixed quality method 5 writes about 1.3% fewer bytes, but at slightly lower SSIM: with the
/// bytes interpolated at sharp's SSIM over a ladder of qualities (`bench/encoder_sweep/rd.py
/// webp webp-m4 webp-m5`), method 4 needed fewer than method 5 on 5 of the 8 comparable
/// photograph jobs and no more than sharp's on 7 of 10 (method 5: 6), and it encodes 5-8%
/// faster (docs/BENCHMARKS.md).
pub(super) const LOSSY_METHOD: i32 = 4;

/// libwebp's spatial noise shaping for lossy output: 40 instead of its default (and sharp's)
/// 50. Noise shaping takes bits from busy areas, where the eye misses them, for flat ones;
/// SSIM, the measure our targets are in, counts the busy areas' loss. Interpolated at sharp's
/// SSIM (`bench/encoder_sweep/rd.py webp webp-m4 webp-m4-sns40`), 50 needed 0.1-0.5% more
/// bytes than sharp on 3 of the 10 photograph jobs; 40 needs 0.85-0.999 of sharp's bytes on
/// all 8 the ladder spans (the other 2 fewer at every quality tried); 25 and 35 were over
/// sharp on the PNG (docs/BENCHMARKS.md).
pub(super) const LOSSY_SNS_STRENGTH: i32 = 40;

/// The lossy settings for an animation playing `loop_count` times (0: forever): the stills'
/// quality, method and noise shaping, so the two outputs are made alike.
pub(super) fn lossy_animation(loop_count: u16) -> webpanim::Settings {
    webpanim::Settings {
        quality: f32::from(LOSSY_QUALITY),
        method: LOSSY_METHOD,
        sns_strength: LOSSY_SNS_STRENGTH,
        loop_count,
    }
}

/// Most distinct colours a PNG original's resized raster may have for lossless to be tried.
pub(super) const LOSSLESS_MAX_COLOURS: usize = 2048;

/// Encodes `r` as WebP, carrying `icc_profile` (already checked to fit the raster's layout).
/// `source` is the original's format: a PNG original may be written lossless.
pub(super) fn encode_webp(
    r: &Raster,
    icc_profile: Option<&[u8]>,
    source: Format,
) -> Result<Vec<u8>, PipelineError> {
    let fail = |e: &dyn std::fmt::Display| PipelineError::Encode(format!("WebP: {e}"));
    let rgb;
    let encoder = match r.layout {
        Layout::Rgba => ::webp::Encoder::from_rgba(&r.pixels, r.width, r.height),
        Layout::Rgb => ::webp::Encoder::from_rgb(&r.pixels, r.width, r.height),
        Layout::Luma => {
            rgb = r.pixels.iter().flat_map(|&l| [l, l, l]).collect::<Vec<u8>>();
            ::webp::Encoder::from_rgb(&rgb, r.width, r.height)
        }
    };
    let mut config = ::webp::WebPConfig::new().map_err(|()| fail(&"libwebp version mismatch"))?;
    config.quality = f32::from(LOSSY_QUALITY);
    config.method = LOSSY_METHOD;
    config.sns_strength = LOSSY_SNS_STRENGTH;
    config.alpha_compression = 1;
    let lossy = encoder.encode_advanced(&config).map_err(|e| fail(&format!("{e:?}")))?;
    let mut out = lossy.to_vec();
    drop(lossy);
    if source == Format::Png && few_colours(r, LOSSLESS_MAX_COLOURS) {
        let mut config =
            ::webp::WebPConfig::new().map_err(|()| fail(&"libwebp version mismatch"))?;
        config.lossless = 1;
        let lossless = encoder.encode_advanced(&config).map_err(|e| fail(&format!("{e:?}")))?;
        if lossless.len() < out.len() {
            out = lossless.to_vec();
        }
    }
    Ok(match icc_profile {
        Some(icc) => {
            crate::webp_icc::embed_icc_profile(&out, icc, r.width, r.height).unwrap_or(out)
        }
        None => out,
    })
}

/// Whether `r` has at most `limit` distinct colours (alpha included); stops counting at
/// `limit + 1`.
pub(super) fn few_colours(r: &Raster, limit: usize) -> bool {
    let mut seen = HashSet::with_capacity(limit + 1);
    let channels = match r.layout {
        Layout::Luma => 1,
        Layout::Rgb => 3,
        Layout::Rgba => 4,
    };
    for p in r.pixels.chunks_exact(channels) {
        let colour = p.iter().fold(0u32, |acc, &c| acc << 8 | u32::from(c));
        if seen.insert(colour) && seen.len() > limit {
            return false;
        }
    }
    true
}
