//! End-to-end tests: real HTTP to the devserver, real S3 protocol (SigV4) to its embedded
//! store, real API Gateway v2 event JSON through lambda_http.

mod animation;
mod browser;
mod concurrency;
mod edge;
mod errors;
mod faults;
mod formats;
mod hostile;
mod keys;
mod lambda_events;
mod lambda_runtime;
mod listing;
mod metrics;
mod negotiation;
mod pages;
mod post_form;
mod private;
mod purge;
mod resize_on_miss;
mod smoke;
mod store;
mod template;
mod uploads;
mod website;

use std::io::Cursor;

/// A PNG with a transparent left half.
pub fn png_with_alpha(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, _| {
        image::Rgba([20, 120, 220, if x < w / 2 { 0 } else { 255 }])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A two-frame GIF: red then blue.
pub fn two_frame_gif(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        let red = image::RgbaImage::from_pixel(w, h, image::Rgba([255, 0, 0, 255]));
        let blue = image::RgbaImage::from_pixel(w, h, image::Rgba([0, 0, 255, 255]));
        enc.encode_frames([image::Frame::new(red), image::Frame::new(blue)]).unwrap();
    }
    out
}

/// A lossless WebP (the image crate's encoder).
pub fn webp(w: u32, h: u32) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::WebP)
        .unwrap();
    out
}

/// A 1400x1400 PNG of noise: incompressible, so bigger than one 5 MiB multipart part.
pub fn noise_png() -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let img = image::RgbImage::from_fn(1400, 1400, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// Chromium's binary: `$CHROMIUM`, else Debian's package.
pub fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}
