//! Encodes one PNG raster the way the resizer's encoders would, at the settings given, and
//! prints `{"ms": encode time, "bytes": n}`.
//!
//! Usage: encoder-sweep RASTER.png OUT avif QUALITY SPEED THREADS DEPTH(8|10)
//!        encoder-sweep RASTER.png OUT rav1e QUALITY SPEED TUNE(psy|psnr) CHROMA(444|420)
//!          (rav1e driven directly, one thread, 8-bit BT.601 full range, ravif's quality scale)
//!        encoder-sweep RASTER.png OUT webp QUALITY METHOD[-snsN][-fN][-shN][-sy]
//!          (-sns: sns_strength, -f: filter_strength, -sh: filter_sharpness, -sy: sharp
//!          YUV conversion; libwebp's defaults otherwise, as the resizer)
//!        encoder-sweep RASTER.png OUT webp-lossless EFFORT METHOD

use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let img = image::open(&a[1]).unwrap();
    let arg = |i: usize| a[i].parse::<f32>().unwrap();
    let start = Instant::now();
    let bytes: Vec<u8> = match a[3].as_str() {
        "avif" => {
            let rgba = img.to_rgba8();
            let (w, h) = (rgba.width() as usize, rgba.height() as usize);
            let pixels: Vec<ravif::RGBA8> =
                rgba.pixels().map(|p| ravif::RGBA8::new(p[0], p[1], p[2], p[3])).collect();
            let depth = if a[7] == "8" { ravif::BitDepth::Eight } else { ravif::BitDepth::Ten };
            ravif::Encoder::new()
                .with_quality(arg(4))
                .with_alpha_quality(arg(4))
                .with_speed(arg(5) as u8)
                .with_num_threads(Some(arg(6) as usize))
                .with_bit_depth(depth)
                .encode_rgba(ravif::Img::new(&pixels[..], w, h))
                .unwrap()
                .avif_file
        }
        "rav1e" => rav1e_direct(&img.to_rgb8(), arg(4), arg(5) as u8, &a[6], &a[7]),
        kind @ ("webp" | "webp-lossless") => {
            let rgba = img.to_rgba8();
            let encoder = webp::Encoder::from_rgba(&rgba, rgba.width(), rgba.height());
            let mut config = webp::WebPConfig::new().unwrap();
            config.lossless = i32::from(kind == "webp-lossless");
            config.alpha_compression = 1;
            config.quality = arg(4);
            let mut opts = a[5].split('-');
            config.method = opts.next().unwrap().parse().unwrap();
            for opt in opts {
                let num = |prefix: &str| opt.strip_prefix(prefix).map(|n| n.parse().unwrap());
                if opt == "sy" {
                    config.use_sharp_yuv = 1;
                } else if let Some(n) = num("sns") {
                    config.sns_strength = n;
                } else if let Some(n) = num("f") {
                    config.filter_strength = n;
                } else if let Some(n) = num("sh") {
                    config.filter_sharpness = n;
                } else {
                    panic!("unknown WebP option {opt}");
                }
            }
            encoder.encode_advanced(&config).unwrap().to_vec()
        }
        other => panic!("unknown encoder {other}"),
    };
    let ms = start.elapsed().as_secs_f64() * 1e3;
    std::fs::write(&a[2], &bytes).unwrap();
    println!("{{\"ms\": {ms:.1}, \"bytes\": {}}}", bytes.len());
}

fn rav1e_direct(rgb: &image::RgbImage, quality: f32, speed: u8, tune: &str, chroma: &str) -> Vec<u8> {
    use rav1e::prelude::*;
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let sub = chroma == "420";
    // ravif's mapping of quality to quantizer.
    let q = quality / 100.;
    let x = if q >= 0.82 { (1. - q) * 2.6 } else if q > 0.25 { q.mul_add(-0.5, 1. - 0.125) } else { 1. - q };
    let quantizer = (x * 255.).round() as usize;
    let mut enc = EncoderConfig::with_speed_preset(speed);
    enc.width = w;
    enc.height = h;
    enc.bit_depth = 8;
    enc.chroma_sampling = if sub { ChromaSampling::Cs420 } else { ChromaSampling::Cs444 };
    enc.chroma_sample_position = ChromaSamplePosition::Unknown;
    enc.pixel_range = PixelRange::Full;
    enc.color_description = Some(ColorDescription {
        transfer_characteristics: TransferCharacteristics::SRGB,
        color_primaries: ColorPrimaries::BT709,
        matrix_coefficients: MatrixCoefficients::BT601,
    });
    enc.still_picture = true;
    enc.quantizer = quantizer;
    enc.min_quantizer = quantizer as u8;
    enc.tune = if tune == "psnr" { Tune::Psnr } else { Tune::Psychovisual };
    let cfg = Config::new().with_encoder_config(enc).with_threads(1);
    let mut ctx: Context<u8> = cfg.new_context().unwrap();
    let mut frame = ctx.new_frame();
    let (mut ys, mut us, mut vs) = (vec![0u8; w * h], vec![0f32; w * h], vec![0f32; w * h]);
    for (i, p) in rgb.pixels().enumerate() {
        let [r, g, b] = p.0.map(f32::from);
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        ys[i] = y.round().clamp(0., 255.) as u8;
        us[i] = (b - y) / 1.772 + 128.;
        vs[i] = (r - y) / 1.402 + 128.;
    }
    let (cw, ch) = if sub { (w.div_ceil(2), h.div_ceil(2)) } else { (w, h) };
    let chroma_plane = |src: &[f32]| -> Vec<u8> {
        let mut out = vec![0u8; cw * ch];
        for cy in 0..ch {
            for cx in 0..cw {
                let (mut sum, mut n) = (0f32, 0f32);
                let step = if sub { 2 } else { 1 };
                for dy in 0..step {
                    for dx in 0..step {
                        let (x, y) = (cx * step + dx, cy * step + dy);
                        if x < w && y < h {
                            sum += src[y * w + x];
                            n += 1.;
                        }
                    }
                }
                out[cy * cw + cx] = (sum / n).round().clamp(0., 255.) as u8;
            }
        }
        out
    };
    let (u, v) = (chroma_plane(&us), chroma_plane(&vs));
    frame.planes[0].copy_from_raw_u8(&ys, w, 1);
    frame.planes[1].copy_from_raw_u8(&u, cw, 1);
    frame.planes[2].copy_from_raw_u8(&v, cw, 1);
    ctx.send_frame(frame).unwrap();
    ctx.flush();
    let mut av1 = Vec::new();
    loop {
        match ctx.receive_packet() {
            Ok(mut p) => av1.append(&mut p.data),
            Err(EncoderStatus::Encoded) => continue,
            Err(EncoderStatus::LimitReached) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    let mut a = avif_serialize::Aviffy::new();
    a.matrix_coefficients(avif_serialize::constants::MatrixCoefficients::Bt601);
    a.full_color_range(true);
    if sub {
        a.set_chroma_subsampling((true, true));
    }
    a.to_vec(&av1, None, w as u32, h as u32, 8)
}
