//! One benchmark job for `scripts/bench`: read SRC, run `pipeline::resize_to` (the function
//! the Lambda calls) to SIZE (a size segment as in a key: `1024x`, `1024x.avif`), write the
//! result; WARMUP untimed runs, then RUNS timed ones, on one thread (an animation on two, as
//! the pipeline makes it). Prints JSON: {"times_ms": [...], "bytes": N, "width": W,
//! "height": H, "last_stages_ms": {"decode": .., "resize": .., "encode": ..}} (the last
//! run's stages; an animation's overlap).
//!
//! Usage: bench_job SRC SIZE OUT RUNS WARMUP
//!        bench_job --decode-only-scaled SRC RUNS WARMUP   (the floor: libjpeg-turbo's
//!        1/8-scale decode of the same file, read from disk, nothing else)

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args[1] == "--decode-only-scaled" {
        let src = &args[2];
        let (runs, warmup): (usize, usize) = (args[3].parse().unwrap(), args[4].parse().unwrap());
        let mut times = Vec::new();
        for i in 0..warmup + runs {
            let start = Instant::now();
            let bytes = std::fs::read(src).unwrap();
            let mut decompressor = turbojpeg::Decompressor::new().unwrap();
            let header = decompressor.read_header(&bytes).unwrap();
            decompressor.set_scaling_factor(turbojpeg::ScalingFactor::ONE_EIGHTH).unwrap();
            let scaled = header.scaled(turbojpeg::ScalingFactor::ONE_EIGHTH);
            let mut pixels = vec![0u8; scaled.width * scaled.height * 3];
            let image = turbojpeg::Image {
                pixels: &mut pixels[..],
                width: scaled.width,
                pitch: scaled.width * 3,
                height: scaled.height,
                format: turbojpeg::PixelFormat::RGB,
            };
            decompressor.decompress(&bytes, image).unwrap();
            std::hint::black_box(pixels);
            if i >= warmup {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        println!("{{\"times_ms\": {times:?}}}");
        return;
    }
    let (src, size, out) = (&args[1], &args[2], &args[3]);
    let (runs, warmup): (usize, usize) = (args[4].parse().unwrap(), args[5].parse().unwrap());
    let settings = resizer::config::ImageSettings::from_lookup(|_| None).unwrap();
    let segment = resizer::key::parse_size_segment(size, settings.max_dimension).unwrap();
    let mut times = Vec::new();
    let mut last = None;
    for i in 0..warmup + runs {
        let start = Instant::now();
        let bytes = std::fs::read(src).unwrap();
        let derivative =
            resizer::pipeline::resize_to(&bytes, segment.size, segment.format, &settings.limits)
                .unwrap();
        std::fs::write(out, &derivative.bytes).unwrap();
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        last = Some(derivative);
    }
    let d = last.unwrap();
    let t = d.timings;
    println!(
        "{{\"times_ms\": {times:?}, \"bytes\": {}, \"width\": {}, \"height\": {}, \
         \"last_stages_ms\": {{\"decode\": {}, \"resize\": {}, \"encode\": {}}}}}",
        d.bytes.len(),
        d.width,
        d.height,
        t.decode.as_secs_f64() * 1e3,
        t.resize.as_secs_f64() * 1e3,
        t.encode.as_secs_f64() * 1e3,
    );
}
