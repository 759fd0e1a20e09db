//! Animated GIF and WebP originals: every frame resized, delays and loop count kept.
//!
//! [`probe`] walks the file's blocks (GIF) or chunks (WebP) to count frames and read the
//! canvas and loop count, decoding no pixel, so the frame budgets refuse an original before
//! any work is spent on it. [`resize_animation`] then decodes one frame at a time onto a
//! full canvas (each frame composited as browsers show it: disposal, blending, offsets),
//! resizes that canvas and hands it to the encoder, so at most one full-size frame exists at
//! once. Decoding and resizing run on a second thread while the encoder works on the frames
//! before (at most [`FRAMES_IN_FLIGHT`] resized frames wait between them); both GIF and
//! WebP output are encoded frame by frame (libwebp's animation encoder through the
//! `webpanim` crate), so only the encoded file grows with the frame count. (The devserver
//! admits one resize per CPU, so while an animation is being made its second thread shares
//! a CPU with another resize.)
//!
//! Loop counts are kept as the number of times the animation plays, the way browsers read
//! them and libwebp's gif2webp converts them: a GIF without a NETSCAPE2.0 block plays once,
//! one whose block says `n` plays `n + 1` times (0: forever); a WebP's ANIM loop count is the
//! number of plays (0: forever). So a GIF's "none" stays none, its `n` stays `n`, and as WebP
//! they become 1 and `n + 1`.
//!
//! Delays are kept in milliseconds; GIF counts in hundredths of a second, so a WebP frame of
//! 25 ms becomes a GIF frame of 30 ms (rounded half up). ICC profiles are not carried into
//! animated outputs (neither the GIF nor the WebP animation encoder takes one).

use std::io::Cursor;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use fast_image_resize as fr;

use super::{Derivative, Format, Limits, PipelineError, Timings};
use crate::geometry::output_size;
use crate::key::Size;

mod headers;

pub(in crate::pipeline) use headers::probe;
use headers::{animated_webp, le24, Chunks};

/// NeuQuant's sampling step for GIF palettes (1 best .. 30 fastest), as the still GIF encoder
/// uses. Palettes are most of an animated GIF's time (perf: 57% of the benchmark's 100 frames
/// of 480x270 to 200x); quantizing and writing those 100 frames took 1646 ms at speed 1,
/// 364 ms at 10, 277 ms at 20 and 257 ms at 30.
const GIF_QUANTIZER_SPEED: i32 = 10;

/// The longest frame duration an animated WebP can hold (24 bits of milliseconds).
const WEBP_MAX_DURATION_MS: u32 = 0xFF_FFFF;

/// An animated original's frames and canvas, read from its headers alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Animation {
    /// Frames in the file.
    pub frames: u32,
    /// The canvas (logical screen) width.
    pub width: u32,
    /// The canvas height.
    pub height: u32,
    /// How many times it plays.
    pub loops: Loops,
}

/// How many times an animation plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loops {
    /// Over and over.
    Forever,
    /// This many times in all (at least 1).
    Plays(u32),
}

/// One composited frame: the full canvas, RGBA, and how long it shows.
struct Shown<'a> {
    canvas: &'a [u8],
    delay_ms: u32,
}

/// Decodes frames one at a time onto a canvas.
enum Frames<'a> {
    // Boxed: the GIF decoder's state is a few hundred bytes.
    Gif(Box<GifFrames<'a>>),
    WebP(WebPFrames<'a>),
}

impl Frames<'_> {
    fn next(&mut self) -> Result<Option<Shown<'_>>, PipelineError> {
        match self {
            Frames::Gif(gif) => gif.next(),
            Frames::WebP(webp) => webp.next(),
        }
    }
}

/// A GIF's frames composited as browsers show them: the canvas starts transparent, a frame's
/// transparent pixels leave what is under them, and after it is shown its disposal method
/// keeps it, clears its rectangle to transparent, or restores what was there before.
struct GifFrames<'a> {
    decoder: gif::Decoder<Cursor<&'a [u8]>>,
    width: usize,
    height: usize,
    canvas: Vec<u8>,
    /// The frame being read, RGBA.
    pixels: Vec<u8>,
    /// The canvas before the last frame, when that frame's disposal restores it.
    saved: Vec<u8>,
    /// The last frame's disposal and its rectangle clipped to the canvas (x0, y0, x1, y1).
    disposal: Option<(gif::DisposalMethod, [usize; 4])>,
}

impl<'a> GifFrames<'a> {
    fn new(source: &'a [u8], a: &Animation, limits: &Limits) -> Result<Self, PipelineError> {
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        // The probe bounded every frame's rectangle by MAX_SOURCE_PIXELS; one RGBA frame of
        // that size is the most the decoder needs at once.
        let bytes = limits.max_source_pixels.saturating_mul(4).max(1);
        if let Some(bytes) = std::num::NonZeroU64::new(bytes) {
            options.set_memory_limit(gif::MemoryLimit::Bytes(bytes));
        }
        options.allow_unknown_blocks(true);
        let decoder = options.read_info(Cursor::new(source)).map_err(undecodable)?;
        let (width, height) = (a.width as usize, a.height as usize);
        Ok(Self {
            decoder,
            width,
            height,
            canvas: vec![0; width * height * 4],
            pixels: Vec::new(),
            saved: Vec::new(),
            disposal: None,
        })
    }

    fn next(&mut self) -> Result<Option<Shown<'_>>, PipelineError> {
        let stride = self.width * 4;
        match self.disposal.take() {
            Some((gif::DisposalMethod::Background, [x0, y0, x1, y1])) => {
                for row in self.canvas.chunks_exact_mut(stride).take(y1).skip(y0) {
                    row[x0 * 4..x1 * 4].fill(0);
                }
            }
            Some((gif::DisposalMethod::Previous, _)) => self.canvas.copy_from_slice(&self.saved),
            _ => {}
        }
        let Some(frame) = self.decoder.next_frame_info().map_err(undecodable)? else {
            return Ok(None);
        };
        let (left, top) = (usize::from(frame.left), usize::from(frame.top));
        let (fw, fh) = (usize::from(frame.width), usize::from(frame.height));
        let (delay, dispose) = (frame.delay, frame.dispose);
        // One buffer for every frame's pixels: a fresh one per frame costs the kernel a
        // page-zeroing each time.
        self.pixels.resize(self.decoder.buffer_size(), 0);
        self.decoder.read_into_buffer(&mut self.pixels).map_err(undecodable)?;
        let rect = [
            left.min(self.width),
            top.min(self.height),
            (left + fw).min(self.width),
            (top + fh).min(self.height),
        ];
        if dispose == gif::DisposalMethod::Previous {
            self.saved.clone_from(&self.canvas);
        }
        let [x0, y0, x1, y1] = rect;
        if x1 > x0 {
            let rows = self.pixels.chunks_exact(fw * 4).take(y1 - y0);
            for (y, src) in (y0..y1).zip(rows) {
                let dst = &mut self.canvas[y * stride + x0 * 4..y * stride + x1 * 4];
                for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                    if s[3] != 0 {
                        d.copy_from_slice(s);
                    }
                }
            }
        }
        let delay_ms = u32::from(delay) * 10;
        self.disposal = Some((dispose, rect));
        Ok(Some(Shown { canvas: &self.canvas, delay_ms }))
    }
}

/// An animated WebP's frames composited as libwebp's animation decoder (and so Chrome)
/// does: the canvas starts transparent, ANMF's blending flag picks alpha-blending or
/// replacing, its disposal flag clears the frame's rectangle to transparent after it is
/// shown, and ANIM's background colour is ignored. Each frame's bitstream is decoded alone
/// by libwebp. (image-webp 0.2's compositing clears a disposed rectangle wrongly when the
/// next frame has no alpha, so it is not used here.)
struct WebPFrames<'a> {
    chunks: Chunks<'a>,
    width: usize,
    height: usize,
    canvas: Vec<u8>,
    /// The last frame's rectangle (x0, y0, x1, y1), when it is disposed after being shown.
    disposal: Option<[usize; 4]>,
}

impl<'a> WebPFrames<'a> {
    fn new(source: &'a [u8]) -> Result<Self, PipelineError> {
        let (width, height, chunks) = animated_webp(source)
            .ok_or_else(|| PipelineError::Undecodable("not an animated WebP".into()))?;
        let (width, height) = (width as usize, height as usize);
        Ok(Self { chunks, width, height, canvas: vec![0; width * height * 4], disposal: None })
    }

    fn next(&mut self) -> Result<Option<Shown<'_>>, PipelineError> {
        let bad = |what: &str| PipelineError::Undecodable(format!("animated WebP: {what}"));
        let stride = self.width * 4;
        if let Some([x0, y0, x1, y1]) = self.disposal.take() {
            for row in self.canvas.chunks_exact_mut(stride).take(y1).skip(y0) {
                row[x0 * 4..x1 * 4].fill(0);
            }
        }
        let Some(anmf) =
            self.chunks.find_map(|(fourcc, payload)| (&fourcc == b"ANMF").then_some(payload))
        else {
            return Ok(None);
        };
        let header = |at: usize| le24(anmf, at).map(|v| v as usize);
        let (Some(x), Some(y), Some(w), Some(h), Some(duration), Some(&flags)) =
            (header(0), header(3), header(6), header(9), header(12), anmf.get(15))
        else {
            return Err(bad("a short ANMF chunk"));
        };
        let (x, y, w, h) = (x * 2, y * 2, w + 1, h + 1);
        if x + w > self.width || y + h > self.height {
            return Err(bad("a frame outside the canvas"));
        }
        // The frame's own chunks (ALPH and VP8, or VP8L) as a still file for libwebp.
        let inner = &anmf[16..];
        let alpha = Chunks { data: inner, at: 0 }.any(|(fourcc, _)| &fourcc == b"ALPH");
        let mut still = Vec::with_capacity(inner.len() + 30);
        still.extend_from_slice(b"RIFF");
        still.extend_from_slice(&((inner.len() + 22) as u32).to_le_bytes());
        still.extend_from_slice(b"WEBPVP8X\x0a\0\0\0");
        still.extend_from_slice(&[if alpha { 0x10 } else { 0 }, 0, 0, 0]);
        still.extend_from_slice(&(w as u32 - 1).to_le_bytes()[..3]);
        still.extend_from_slice(&(h as u32 - 1).to_le_bytes()[..3]);
        still.extend_from_slice(inner);
        let image = ::webp::Decoder::new(&still)
            .decode()
            .ok_or_else(|| bad("a frame that does not decode"))?;
        if (image.width() as usize, image.height() as usize) != (w, h) {
            return Err(bad("a frame whose size differs from its ANMF header"));
        }
        let channels = if image.is_alpha() { 4 } else { 3 };
        let blend = flags & 0x02 == 0;
        for (row, src) in image.chunks_exact(w * channels).enumerate() {
            let start = (y + row) * stride + x * 4;
            let dst = &mut self.canvas[start..start + w * 4];
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(channels)) {
                match s {
                    &[r, g, b] => d.copy_from_slice(&[r, g, b, 255]),
                    s if blend => blend_over(s, d),
                    s => d.copy_from_slice(s),
                }
            }
        }
        self.disposal = (flags & 0x01 != 0).then_some([x, y, x + w, y + h]);
        Ok(Some(Shown { canvas: &self.canvas, delay_ms: duration as u32 }))
    }
}

/// `src` over `dst`, both RGBA with straight alpha, as the WebP container specification gives
/// it.
fn blend_over(src: &[u8], dst: &mut [u8]) {
    let src_a = u32::from(src[3]);
    match src_a {
        0 => {}
        255 => dst.copy_from_slice(src),
        _ => {
            let dst_a = u32::from(dst[3]) * (255 - src_a) / 255;
            let a = src_a + dst_a;
            for c in 0..3 {
                let v = u32::from(src[c]) * src_a + u32::from(dst[c]) * dst_a;
                dst[c] = ((v + a / 2) / a) as u8;
            }
            dst[3] = a as u8;
        }
    }
}

fn undecodable(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Undecodable(e.to_string())
}

/// A resized frame on its way from the decoding thread to the encoder, already in the form
/// its encoder takes.
struct Resized {
    pixels: Prepared,
    delay_ms: u32,
}

enum Prepared {
    /// RGBA with alpha either 0 or 255 (GIF has one transparent colour, no partial alpha).
    Rgba(Vec<u8>),
    /// `0xAARRGGBB`, as libwebp's animation encoder reads frames.
    Argb(Vec<u32>),
}

/// How many resized frames may wait between the decoding thread and the encoder.
const FRAMES_IN_FLIGHT: usize = 2;

/// Where resized frames go.
enum Sink {
    /// Written as they come; each frame keeps its own palette.
    Gif { encoder: gif::Encoder<Vec<u8>>, width: u16, height: u16 },
    /// Encoded as they come by libwebp's animation encoder, which keeps only what changed
    /// from the frame before.
    WebP { encoder: webpanim::AnimEncoder, timestamp_ms: i32 },
}

impl Sink {
    fn new(output: Format, width: u32, height: u32, loops: Loops) -> Result<Self, PipelineError> {
        let fail = |e: &dyn std::fmt::Display| encode_error(output, e);
        match output {
            Format::Gif => {
                let (Ok(w), Ok(h)) = (u16::try_from(width), u16::try_from(height)) else {
                    return Err(fail(&format!("{width}x{height} is too large for GIF")));
                };
                let mut encoder = gif::Encoder::new(Vec::new(), w, h, &[]).map_err(|e| fail(&e))?;
                let repeat = match loops {
                    Loops::Forever => gif::Repeat::Infinite,
                    Loops::Plays(n) => {
                        gif::Repeat::Finite(u16::try_from(n - 1).unwrap_or(u16::MAX))
                    }
                };
                // Finite(0), playing once, is written as no NETSCAPE2.0 block at all.
                encoder.set_repeat(repeat).map_err(|e| fail(&e))?;
                Ok(Sink::Gif { encoder, width: w, height: h })
            }
            Format::WebP => {
                let settings = super::webp::lossy_animation(match loops {
                    Loops::Forever => 0,
                    Loops::Plays(n) => u16::try_from(n).unwrap_or(u16::MAX),
                });
                let encoder =
                    webpanim::AnimEncoder::new(width, height, settings).map_err(|e| fail(&e))?;
                Ok(Sink::WebP { encoder, timestamp_ms: 0 })
            }
            other => Err(fail(&format!("{other:?} cannot hold an animation"))),
        }
    }

    /// How the decoding thread should hand this sink its frames.
    fn wants_argb(&self) -> bool {
        matches!(self, Sink::WebP { .. })
    }

    fn add(&mut self, frame: Resized) -> Result<(), PipelineError> {
        match (self, frame.pixels) {
            (Sink::Gif { encoder, width, height }, Prepared::Rgba(mut rgba)) => {
                let mut gif_frame =
                    gif::Frame::from_rgba_speed(*width, *height, &mut rgba, GIF_QUANTIZER_SPEED);
                gif_frame.delay =
                    u16::try_from(frame.delay_ms.saturating_add(5) / 10).unwrap_or(u16::MAX);
                // Each frame covers the whole canvas; clearing it before the next lets that
                // one's transparent pixels show through, as they did in the original.
                gif_frame.dispose = gif::DisposalMethod::Background;
                encoder.write_frame(&gif_frame).map_err(|e| encode_error(Format::Gif, &e))
            }
            (Sink::WebP { encoder, timestamp_ms }, Prepared::Argb(mut argb)) => {
                encoder
                    .add(&mut argb, *timestamp_ms)
                    .map_err(|e| encode_error(Format::WebP, &e))?;
                // At most 24 bits, so the i32 holds it. libwebp reads each frame's duration as
                // the difference of two timestamps modulo 2^32: an animation longer than
                // i32::MAX ms (24 days) wraps around and keeps its durations.
                let delay =
                    i32::try_from(frame.delay_ms.min(WEBP_MAX_DURATION_MS)).unwrap_or(i32::MAX);
                *timestamp_ms = timestamp_ms.wrapping_add(delay);
                Ok(())
            }
            _ => Err(PipelineError::Encode("a frame prepared for the other encoder".into())),
        }
    }

    fn finish(self) -> Result<Vec<u8>, PipelineError> {
        match self {
            Sink::Gif { encoder, .. } => {
                encoder.into_inner().map_err(|e| encode_error(Format::Gif, &e))
            }
            Sink::WebP { encoder, timestamp_ms } => {
                encoder.finish(timestamp_ms).map_err(|e| encode_error(Format::WebP, &e))
            }
        }
    }
}

fn encode_error(output: Format, e: &dyn std::fmt::Display) -> PipelineError {
    PipelineError::Encode(format!("{output:?}: {e}"))
}

/// What the decoding thread did: frames sent and the time it spent on each stage.
struct Produced {
    frames: u32,
    decode: Duration,
    resize: Duration,
}

/// Decodes, composites and resizes every frame (at most `limit`), handing each to `tx` in
/// the form the encoder takes; stops early, without error, when the encoder hangs up.
fn produce(
    mut frames: Frames<'_>,
    mut resizer: FrameResizer,
    limit: u32,
    argb: bool,
    tx: &SyncSender<Resized>,
) -> Result<Produced, PipelineError> {
    let mut done = Produced { frames: 0, decode: Duration::ZERO, resize: Duration::ZERO };
    let mut mark = Instant::now();
    // Never more frames than the probe counted and the budget allowed.
    while done.frames < limit {
        let Some(shown) = frames.next()? else { break };
        let now = Instant::now();
        done.decode += now - mark;
        mark = now;
        let delay_ms = shown.delay_ms;
        let resized = resizer.resize(shown.canvas)?;
        let pixels = if argb {
            let mut packed = Vec::with_capacity(resized.len() / 4);
            webpanim::argb_from_rgba(resized, &mut packed);
            Prepared::Argb(packed)
        } else {
            // GIF has one transparent colour and no partial alpha: half-covered pixels (the
            // resize's soft edges) go to whichever side they are nearer.
            let mut rgba = resized.to_vec();
            for px in rgba.chunks_exact_mut(4) {
                px[3] = if px[3] < 128 { 0 } else { 255 };
            }
            Prepared::Rgba(rgba)
        };
        done.resize += mark.elapsed();
        if tx.send(Resized { pixels, delay_ms }).is_err() {
            break;
        }
        // Time spent waiting for the encoder is no stage's.
        mark = Instant::now();
        done.frames += 1;
    }
    Ok(done)
}

/// Resizes every frame of an animated original into `output` (GIF or WebP), keeping each
/// frame's delay and the loop count.
///
/// Frames are decoded, composited and resized on a second thread while the encoder takes the
/// ones before (libvips does the same with its write-behind thread), at most
/// [`FRAMES_IN_FLIGHT`] waiting between them. The stage timings are each thread's own time,
/// so they overlap.
pub(super) fn resize_animation(
    source: &[u8],
    format: Format,
    animation: Animation,
    size: Size,
    output: Format,
    limits: &Limits,
) -> Result<Derivative, PipelineError> {
    let started = Instant::now();
    let (out_w, out_h) = output_size(animation.width, animation.height, size);
    // The resized frames are encoded whole, so they answer to the same budget as the
    // original's (a `WxH` larger than the original makes them bigger than it).
    let out_pixels = u64::from(out_w) * u64::from(out_h) * u64::from(animation.frames);
    if out_pixels > limits.max_animation_pixels {
        return Err(PipelineError::SourceTooLarge(format!(
            "resized, its {} frames of {out_w}x{out_h} would be {out_pixels} pixels; \
             MAX_SOURCE_ANIMATION_PIXELS is {}",
            animation.frames, limits.max_animation_pixels
        )));
    }
    let frames = match format {
        Format::Gif => Frames::Gif(Box::new(GifFrames::new(source, &animation, limits)?)),
        Format::WebP => Frames::WebP(WebPFrames::new(source)?),
        other => return Err(PipelineError::Unsupported(format!("{other:?} is not animated"))),
    };
    let mut sink = Sink::new(output, out_w, out_h, animation.loops)?;
    let resizer = FrameResizer::new(animation.width, animation.height, out_w, out_h, size);
    let setup = started.elapsed();
    let argb = sink.wants_argb();

    let mut encode = Duration::ZERO;
    let (produced, consumed) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(FRAMES_IN_FLIGHT);
        let producer = std::thread::Builder::new()
            .name("animation-frames".into())
            .spawn_scoped(scope, move || produce(frames, resizer, animation.frames, argb, &tx))
            .map_err(|e| PipelineError::Encode(format!("starting the frame thread: {e}")))?;
        let mut consumed = Ok(());
        for frame in &rx {
            let mark = Instant::now();
            consumed = sink.add(frame);
            encode += mark.elapsed();
            if consumed.is_err() {
                break;
            }
        }
        // Hanging up stops the decoding thread at its next frame if the encoder failed.
        drop(rx);
        let produced = producer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok::<_, PipelineError>((produced, consumed))
    })?;
    let produced = produced?;
    consumed?;
    if produced.frames < 2 {
        return Err(PipelineError::Undecodable(format!("{} frames decoded", produced.frames)));
    }
    let mark = Instant::now();
    let bytes = sink.finish()?;
    encode += mark.elapsed();
    Ok(Derivative {
        bytes,
        format: output,
        source_format: format,
        width: out_w,
        height: out_h,
        timings: Timings { decode: setup + produced.decode, resize: produced.resize, encode },
    })
}

/// Resizes canvases of one size to another with the same buffers every frame.
struct FrameResizer {
    src: (u32, u32),
    resizer: fr::Resizer,
    options: fr::ResizeOptions,
    dst: fr::images::Image<'static>,
}

impl FrameResizer {
    fn new(src_w: u32, src_h: u32, out_w: u32, out_h: u32, size: Size) -> Self {
        let mut options = fr::ResizeOptions::new()
            .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
        if matches!(size, Size::Box { .. }) {
            options = options.fit_into_destination(Some((0.5, 0.5)));
        }
        Self {
            src: (src_w, src_h),
            resizer: fr::Resizer::new(),
            options,
            dst: fr::images::Image::new(out_w, out_h, fr::PixelType::U8x4),
        }
    }

    fn resize<'a>(&'a mut self, canvas: &'a [u8]) -> Result<&'a [u8], PipelineError> {
        if self.src == (self.dst.width(), self.dst.height()) {
            return Ok(canvas);
        }
        let fail = |e: &dyn std::fmt::Display| PipelineError::Encode(format!("resize: {e}"));
        let src = fr::images::ImageRef::new(self.src.0, self.src.1, canvas, fr::PixelType::U8x4)
            .map_err(|e| fail(&e))?;
        self.resizer.resize(&src, &mut self.dst, &self.options).map_err(|e| fail(&e))?;
        Ok(self.dst.buffer())
    }
}

#[cfg(test)]
mod tests;
