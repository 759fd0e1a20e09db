//! Encodes one PNG raster the way the resizer's encoders would, at the settings given, and
//! prints `{"ms": encode time, "bytes": n}`.
//!
//! Usage: encoder-sweep RASTER.png OUT avif QUALITY SPEED THREADS DEPTH(8|10)
//!        encoder-sweep RASTER.png OUT webp QUALITY METHOD
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
        kind @ ("webp" | "webp-lossless") => {
            let rgba = img.to_rgba8();
            let encoder = webp::Encoder::from_rgba(&rgba, rgba.width(), rgba.height());
            let mut config = webp::WebPConfig::new().unwrap();
            config.lossless = i32::from(kind == "webp-lossless");
            config.alpha_compression = 1;
            config.quality = arg(4);
            config.method = arg(5) as i32;
            encoder.encode_advanced(&config).unwrap().to_vec()
        }
        other => panic!("unknown encoder {other}"),
    };
    let ms = start.elapsed().as_secs_f64() * 1e3;
    std::fs::write(&a[2], &bytes).unwrap();
    println!("{{\"ms\": {ms:.1}, \"bytes\": {}}}", bytes.len());
}
