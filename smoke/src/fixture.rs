//! The photograph the checks upload, made at run time (no file to ship with the binary),
//! and what a derivative turned out to be.

use std::io::Cursor;

use image::{ImageFormat, RgbImage};

/// The original's width and height: wider than the default sizes (320x, 640x), so a
/// derivative's width shows the resize happened.
pub const PHOTO_SIZE: (u32, u32) = (800, 600);

/// A smooth gradient JPEG of [`PHOTO_SIZE`] (a few tens of kilobytes).
pub fn photo() -> Result<Vec<u8>, image::ImageError> {
    let (w, h) = PHOTO_SIZE;
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, ((x + y) % 256) as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)?;
    Ok(out)
}

/// A JPEG of [`PHOTO_SIZE`] in one colour (a replacement nothing like [`photo`]).
pub fn solid(rgb: [u8; 3]) -> Result<Vec<u8>, image::ImageError> {
    let (w, h) = PHOTO_SIZE;
    let mut out = Vec::new();
    RgbImage::from_pixel(w, h, image::Rgb(rgb))
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)?;
    Ok(out)
}

/// The format and dimensions of an image body, if it is one.
pub fn inspect(bytes: &[u8]) -> Option<(ImageFormat, u32, u32)> {
    let format = image::guess_format(bytes).ok()?;
    let img = image::load_from_memory_with_format(bytes, format).ok()?;
    Some((format, img.width(), img.height()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_photo_is_a_jpeg_of_its_size() {
        let bytes = photo().unwrap();
        assert_eq!(inspect(&bytes), Some((ImageFormat::Jpeg, 800, 600)));
        assert!(bytes.len() < 200_000, "{} bytes", bytes.len());
        assert_eq!(inspect(b"<html>"), None);
    }
}
