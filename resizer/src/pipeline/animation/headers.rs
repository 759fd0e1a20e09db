//! An animated original's headers: frame count, canvas and loop count, read by walking a
//! GIF's blocks or a WebP's RIFF chunks without decoding any pixel.

use super::super::{check_pixels, Format, Limits, PipelineError};
use super::{Animation, Loops};

/// Reads a GIF's or WebP's frame count and canvas from its headers, before decoding any
/// frame, and refuses with [`PipelineError::SourceTooLarge`] one over MAX_SOURCE_FRAMES or
/// MAX_SOURCE_ANIMATION_PIXELS. `None`: a still image (one frame, or another format).
///
/// The pixel budget counts each frame as the larger of the canvas and the frame's own
/// rectangle, since a GIF frame may claim to be larger than its screen and is decoded whole.
pub(in crate::pipeline) fn probe(
    source: &[u8],
    format: Format,
    limits: &Limits,
) -> Result<Option<Animation>, PipelineError> {
    let walk = match format {
        Format::Gif => walk_gif(source, limits),
        Format::WebP => walk_webp(source, limits),
        Format::Jpeg | Format::Png | Format::Avif => return Ok(None),
    };
    let Some(walk) = walk else { return Ok(None) };
    if walk.frames > limits.max_source_frames {
        return Err(PipelineError::SourceTooLarge(format!(
            "the animation has more than {max} frames; MAX_SOURCE_FRAMES is {max}",
            max = limits.max_source_frames
        )));
    }
    if walk.frames < 2 {
        return Ok(None);
    }
    check_pixels(walk.width, walk.height, limits)?;
    if walk.largest_frame > limits.max_source_pixels {
        return Err(PipelineError::SourceTooLarge(format!(
            "a frame of the animation is {} pixels; MAX_SOURCE_PIXELS is {}",
            walk.largest_frame, limits.max_source_pixels
        )));
    }
    if walk.pixels > limits.max_animation_pixels {
        return Err(PipelineError::SourceTooLarge(format!(
            "{} frames of {}x{} are {} pixels; MAX_SOURCE_ANIMATION_PIXELS is {}",
            walk.frames, walk.width, walk.height, walk.pixels, limits.max_animation_pixels
        )));
    }
    Ok(Some(Animation {
        frames: walk.frames,
        width: walk.width,
        height: walk.height,
        loops: walk.loops,
    }))
}

/// What a walk over a file's blocks found. `frames` stops counting one past the limit.
struct Walk {
    frames: u32,
    width: u32,
    height: u32,
    loops: Loops,
    /// Pixels decoded over all frames counted: each the larger of canvas and frame.
    pixels: u64,
    /// The largest frame's rectangle, in pixels.
    largest_frame: u64,
}

impl Walk {
    fn count_frame(&mut self, frame_w: u32, frame_h: u32) {
        self.frames += 1;
        let canvas = u64::from(self.width) * u64::from(self.height);
        let frame = u64::from(frame_w) * u64::from(frame_h);
        self.pixels = self.pixels.saturating_add(canvas.max(frame));
        self.largest_frame = self.largest_frame.max(frame);
    }
}

/// The GIF's blocks: header, screen, colour table, then extensions and images until the
/// trailer, each image's LZW data skipped by its sub-block lengths. Each step moves forward
/// at least one byte, so the walk is linear in the file; it ends at the trailer, at the first
/// byte that is no block, at the end of the data, or one frame past the limit.
fn walk_gif(gif: &[u8], limits: &Limits) -> Option<Walk> {
    let byte = |at: usize| gif.get(at).copied();
    let le16 = |at: usize| Some(u32::from(u16::from_le_bytes([byte(at)?, byte(at + 1)?])));
    if !gif.starts_with(b"GIF87a") && !gif.starts_with(b"GIF89a") {
        return None;
    }
    let colour_table = |flags: u8| if flags & 0x80 != 0 { 3usize << ((flags & 7) + 1) } else { 0 };
    let mut walk = Walk {
        frames: 0,
        width: le16(6)?,
        height: le16(8)?,
        loops: Loops::Plays(1),
        pixels: 0,
        largest_frame: 0,
    };
    let mut at = 13 + colour_table(byte(10)?);
    // Skips the sub-blocks starting at `at`; returns where the terminator ends.
    let skip_sub_blocks = |mut at: usize| -> Option<usize> {
        loop {
            let len = usize::from(byte(at)?);
            at += 1 + len;
            if len == 0 {
                return Some(at);
            }
        }
    };
    while walk.frames <= limits.max_source_frames {
        match byte(at) {
            Some(0x21) => {
                let label = byte(at + 1);
                let body = at + 2;
                if label == Some(0xFF)
                    && byte(body) == Some(11)
                    && matches!(gif.get(body + 1..body + 12), Some(b"NETSCAPE2.0" | b"ANIMEXTS1.0"))
                    && byte(body + 12) == Some(3)
                    && byte(body + 13) == Some(1)
                {
                    walk.loops = match le16(body + 14) {
                        Some(0) => Loops::Forever,
                        Some(n) => Loops::Plays(n + 1),
                        None => walk.loops,
                    };
                }
                match skip_sub_blocks(body) {
                    Some(next) => at = next,
                    None => break,
                }
            }
            Some(0x2C) => {
                let (Some(w), Some(h), Some(flags)) = (le16(at + 5), le16(at + 7), byte(at + 9))
                else {
                    break;
                };
                walk.count_frame(w, h);
                // The LZW minimum code size byte, then the data's sub-blocks.
                let data = at + 10 + colour_table(flags) + 1;
                match skip_sub_blocks(data) {
                    Some(next) => at = next,
                    None => break,
                }
            }
            _ => break,
        }
    }
    Some(walk)
}

/// The WebP's RIFF chunks: a VP8X chunk first whose animation flag is set (else a still
/// image, `None`), its canvas, ANIM's loop count, and one frame per ANMF chunk. Linear and
/// bounded like [`walk_gif`].
fn walk_webp(webp: &[u8], limits: &Limits) -> Option<Walk> {
    let (width, height, mut chunks) = animated_webp(webp)?;
    let mut walk =
        Walk { frames: 0, width, height, loops: Loops::Forever, pixels: 0, largest_frame: 0 };
    while walk.frames <= limits.max_source_frames {
        let Some((fourcc, payload)) = chunks.next() else { break };
        match &fourcc {
            b"ANIM" => {
                if let Some(&[lo, hi]) = payload.get(4..6) {
                    walk.loops = match u16::from_le_bytes([lo, hi]) {
                        0 => Loops::Forever,
                        n => Loops::Plays(u32::from(n)),
                    };
                }
            }
            b"ANMF" => {
                let (Some(w), Some(h)) = (le24(payload, 6), le24(payload, 9)) else { break };
                walk.count_frame(w + 1, h + 1);
            }
            _ => {}
        }
    }
    Some(walk)
}

/// An animated WebP's canvas, and its chunks after the VP8X chunk; `None` if it is not one.
pub(super) fn animated_webp(webp: &[u8]) -> Option<(u32, u32, Chunks<'_>)> {
    if webp.get(0..4) != Some(b"RIFF") || webp.get(8..12) != Some(b"WEBP") {
        return None;
    }
    // The RIFF size bounds the chunks; trailing bytes after it are not part of the image.
    let end = (le32(webp, 4)? as usize).saturating_add(8).min(webp.len());
    let mut chunks = Chunks { data: &webp[..end], at: 12 };
    let (fourcc, vp8x) = chunks.next()?;
    if &fourcc != b"VP8X" || vp8x.len() < 10 || vp8x[0] & 0x02 == 0 {
        return None;
    }
    Some((le24(vp8x, 4)? + 1, le24(vp8x, 7)? + 1, chunks))
}

/// RIFF chunks in order: (fourcc, payload). A payload cut short by the end of the data is
/// given as far as it goes, and ends the walk.
pub(super) struct Chunks<'a> {
    pub(super) data: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = ([u8; 4], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let fourcc: [u8; 4] = self.data.get(self.at..self.at + 4)?.try_into().ok()?;
        let len = le32(self.data, self.at + 4)? as usize;
        let start = self.at + 8;
        let payload = self.data.get(start..start.saturating_add(len).min(self.data.len()))?;
        self.at = start.saturating_add(len).saturating_add(len & 1);
        Some((fourcc, payload))
    }
}

pub(super) fn le24(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 3).map(|v| u32::from_le_bytes([v[0], v[1], v[2], 0]))
}

pub(super) fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
}
