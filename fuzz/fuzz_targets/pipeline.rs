//! The image pipeline on arbitrary bytes: `resizer::pipeline::resize` must answer every
//! input with a derivative or a `PipelineError`, never a panic, and within the limits.
//!
//! Input: 5 bytes of size selector, then the image bytes. The size is a box, a width or a
//! height of 1..=512 pixels (small enough to run fast, large enough to upscale-refuse and
//! crop). The limits are small (4 Mpx, 2 MiB) so a decompression bomb costs little here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resizer::key::Size;
use resizer::pipeline::{detect_format, resize, Limits};

fn limits() -> Limits {
    Limits { max_source_bytes: 2 * 1024 * 1024, max_source_pixels: 4_000_000, max_source_frames: 100, max_animation_pixels: 20_000_000 }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (head, image) = data.split_at(5);
    let w = u32::from(u16::from_le_bytes([head[1], head[2]])) % 512 + 1;
    let h = u32::from(u16::from_le_bytes([head[3], head[4]])) % 512 + 1;
    let size = match head[0] % 3 {
        0 => Size::Box { width: w, height: h },
        1 => Size::Width(w),
        _ => Size::Height(h),
    };
    let detected = detect_format(image);
    if let Ok(out) = resize(image, size, &limits()) {
        // A derivative keeps its source's format and is never empty.
        assert_eq!(Ok(out.format), detected.as_ref().map(|f| *f).map_err(|_| ()), "format");
        assert!(!out.bytes.is_empty());
    }
});
