//! rav1e driven directly for one still picture, and the AVIF container around it
//! (`avif-serialize`). We used `ravif` before: it caps rav1e's partitions at 16x16 for every
//! speed from 1 to 8 and changes other tools by its own presets, which cost 3-14% more bytes
//! at the same SSIM than rav1e's own speed preset on the benchmark's photographs
//! (bench/encoder_sweep/rd.py, docs/BENCHMARKS.md); its colour conversion and container are
//! what this file does.

use rav1e::prelude::{
    ChromaSamplePosition, ChromaSampling, ColorDescription, ColorPrimaries, Config, Context,
    EncoderConfig, EncoderStatus, MatrixCoefficients, PixelRange, SceneDetectionSpeed,
    TransferCharacteristics,
};

/// One image to encode: 8-bit RGB, RGBA or grey pixels, tightly packed.
pub(super) struct Still<'a> {
    pub pixels: &'a [u8],
    pub channels: usize,
    pub width: usize,
    pub height: usize,
}

/// Settings of one encode: rav1e's quantizer (0-255) for colour and alpha, its speed preset.
pub(super) struct Settings {
    pub quantizer: u8,
    pub speed: u8,
}

/// The AVIF file: colour as 4:4:4 YCbCr (BT.601 matrix, full range, sRGB-compatible
/// primaries and curve in the sequence header), and for RGBA an alpha auxiliary image, left
/// out when every pixel is opaque. Grey is encoded with neutral chroma.
pub(super) fn encode(image: &Still<'_>, settings: &Settings) -> Result<Vec<u8>, String> {
    let Planes { y, cb, cr, alpha } = planes(image)?;
    let (w, h) = (image.width, image.height);
    let colour = encode_planes(w, h, &[&y, &cb, &cr], settings)?;
    let alpha = match alpha.filter(|a| a.iter().any(|&v| v != 255)) {
        Some(a) => Some(encode_planes(w, h, &[&a], settings)?),
        None => None,
    };
    let mut container = avif_serialize::Aviffy::new();
    container
        .set_matrix_coefficients(avif_serialize::constants::MatrixCoefficients::Bt601)
        .set_full_color_range(true);
    let (w, h) = (u32::try_from(w), u32::try_from(h));
    let (w, h) = (w.map_err(|e| e.to_string())?, h.map_err(|e| e.to_string())?);
    Ok(container.to_vec(&colour, alpha.as_deref(), w, h, 8))
}

/// The planes rav1e takes: Y, Cb, Cr at full resolution, and alpha for RGBA.
struct Planes {
    y: Vec<u8>,
    cb: Vec<u8>,
    cr: Vec<u8>,
    alpha: Option<Vec<u8>>,
}

fn planes(image: &Still<'_>) -> Result<Planes, String> {
    let (w, h, channels) = (image.width, image.height, image.channels);
    if ![1, 3, 4].contains(&channels) {
        return Err(format!("{channels} channels"));
    }
    let n =
        w.checked_mul(h).filter(|&n| n > 0 && Some(image.pixels.len()) == n.checked_mul(channels));
    let n = n.ok_or("pixel buffer does not match the image's size")?;
    let (mut y, mut cb, mut cr) = (vec![0u8; n], vec![128u8; n], vec![128u8; n]);
    let mut alpha = (channels == 4).then(|| vec![255u8; n]);
    // A fully transparent pixel's colour is never seen: it takes the colour of the visible
    // pixel before it in its row (the first visible one for those that lead the row, the
    // row above's for a row with none), which costs fewer bits than whatever the resize
    // left there and puts no step beside a visible edge for lossy alpha to uncover.
    let mut last = [0u8; 3];
    for (row, pixels) in image.pixels.chunks_exact(w * channels).enumerate() {
        if channels == 4 {
            if let Some(p) = pixels.chunks_exact(4).find(|p| p[3] != 0) {
                last = [p[0], p[1], p[2]];
            }
        }
        for (x, px) in pixels.chunks_exact(channels).enumerate() {
            let i = row * w + x;
            if channels == 1 {
                y[i] = px[0];
                continue;
            }
            let mut rgb = [px[0], px[1], px[2]];
            if let Some(alpha) = alpha.as_mut() {
                alpha[i] = px[3];
                if px[3] == 0 {
                    rgb = last;
                }
            }
            last = rgb;
            [y[i], cb[i], cr[i]] = ycbcr(rgb);
        }
    }
    Ok(Planes { y, cb, cr, alpha })
}

/// BT.601, full range, as libavif and ravif convert sRGB for AV1.
fn ycbcr([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
    let y = 0.299f32.mul_add(r, 0.587f32.mul_add(g, 0.114 * b));
    let cb = (b - y).mul_add(0.5 / (1.0 - 0.114), 128.0);
    let cr = (r - y).mul_add(0.5 / (1.0 - 0.299), 128.0);
    // Rounded and clamped to 0..=255, so the casts are exact.
    [y, cb, cr].map(|v| v.round().clamp(0.0, 255.0) as u8)
}

/// One AV1 key frame from one plane (monochrome: alpha) or three (4:4:4).
fn encode_planes(
    width: usize,
    height: usize,
    planes: &[&[u8]],
    settings: &Settings,
) -> Result<Vec<u8>, String> {
    let mut config = EncoderConfig::with_speed_preset(settings.speed);
    config.width = width;
    config.height = height;
    config.bit_depth = 8;
    config.still_picture = true;
    config.quantizer = usize::from(settings.quantizer);
    config.min_quantizer = settings.quantizer;
    config.chroma_sample_position = ChromaSamplePosition::Unknown;
    config.pixel_range = PixelRange::Full;
    if planes.len() == 3 {
        config.chroma_sampling = ChromaSampling::Cs444;
        config.color_description = Some(ColorDescription {
            color_primaries: ColorPrimaries::BT709,
            transfer_characteristics: TransferCharacteristics::SRGB,
            matrix_coefficients: MatrixCoefficients::BT601,
        });
    } else {
        config.chroma_sampling = ChromaSampling::Cs400;
    }
    // A still picture: no lookahead or scene detection to pay for.
    config.speed_settings.rdo_lookahead_frames = 1;
    config.speed_settings.scene_detection_mode = SceneDetectionSpeed::None;
    let mut ctx: Context<u8> = Config::new()
        .with_encoder_config(config)
        .with_threads(1)
        .new_context()
        .map_err(|e| e.to_string())?;
    let mut frame = ctx.new_frame();
    for (dst, src) in frame.planes.iter_mut().zip(planes) {
        dst.copy_from_raw_u8(src, width, 1);
    }
    ctx.send_frame(frame).map_err(|e| e.to_string())?;
    ctx.flush();
    let mut out = Vec::new();
    loop {
        match ctx.receive_packet() {
            Ok(mut packet) => out.append(&mut packet.data),
            Err(EncoderStatus::Encoded) => {}
            Err(EncoderStatus::LimitReached) => return Ok(out),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ycbcr_matches_bt601_full_range_at_the_primaries() {
        assert_eq!(ycbcr([0, 0, 0]), [0, 128, 128]);
        assert_eq!(ycbcr([255, 255, 255]), [255, 128, 128]);
        // Red: Y = 0.299 * 255, Cr at the top of its range.
        assert_eq!(ycbcr([255, 0, 0]), [76, 85, 255]);
        assert_eq!(ycbcr([0, 0, 255]), [29, 255, 107]);
    }

    #[test]
    fn a_pixel_buffer_of_the_wrong_length_or_layout_is_an_error_not_a_panic() {
        let fast = Settings { quantizer: 100, speed: 10 };
        for (pixels, channels, width, height) in [
            (&[0u8; 11][..], 3, 2, 2),
            (&[0; 12], 3, 0, 4),
            (&[0; 8], 2, 2, 2),
            (&[0; 0], 0, 2, 2),
            (&[0; 4], 4, usize::MAX, 2),
        ] {
            let still = Still { pixels, channels, width, height };
            assert!(encode(&still, &fast).is_err(), "{channels} x {width} x {height}");
        }
        let one = Still { pixels: &[10, 20, 30, 0], channels: 4, width: 1, height: 1 };
        assert!(encode(&one, &fast).is_ok());
    }

    #[test]
    fn transparent_pixels_take_the_colour_of_the_visible_pixel_beside_them() {
        // Row 0: two transparent pixels of stray colours, red, a transparent one, blue.
        // Row 1: all transparent: the row above's last colour.
        #[rustfmt::skip]
        let pixels = [
            9, 99, 199, 0,  250, 1, 77, 0,  255, 0, 0, 255,  3, 4, 5, 0,  0, 0, 255, 128,
            1, 2, 3, 0,     4, 5, 6, 0,     7, 8, 9, 0,      1, 1, 1, 0,  2, 2, 2, 0,
        ];
        let p = planes(&Still { pixels: &pixels, channels: 4, width: 5, height: 2 }).unwrap();
        let colours: Vec<[u8; 3]> = (0..10).map(|i| [p.y[i], p.cb[i], p.cr[i]]).collect();
        let (red, blue) = (ycbcr([255, 0, 0]), ycbcr([0, 0, 255]));
        assert_eq!(colours[..5], [red, red, red, red, blue]);
        assert_eq!(colours[5..], [blue; 5]);
        assert_eq!(p.alpha.unwrap(), [0, 0, 255, 0, 128, 0, 0, 0, 0, 0]);
    }
}
