//! Animated WebP encoding through libwebp's animation encoder (`WebPAnimEncoder`), one frame
//! at a time.
//!
//! The `webp` crate's animation encoder takes every frame before it encodes the first, so
//! the resized frames of a whole animation had to wait in memory and no encoding could
//! overlap their decoding. Here each [`AnimEncoder::add`] encodes its frame at once (libwebp
//! keeps only the encoded frames and a few canvases), the loop count goes in the encoder's
//! own options, and the last frame's duration comes from the timestamp given to
//! [`AnimEncoder::finish`].
//!
//! The settings are libwebp's defaults for an animation (no key frames inserted, lossy only,
//! the change rectangle searched per frame, as `gif2webp` and libvips write), with the lossy
//! quality, method and spatial noise shaping given.
//!
//! This is the workspace's only crate with unsafe code: FFI calls to libwebp (the copy that
//! `libwebp-sys` builds), each with its reason.

use std::ffi::CStr;
use std::fmt;
use std::ptr::NonNull;

use libwebp_sys as sys;

/// Why an animation could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// How the frames are compressed and how often the animation plays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// libwebp's lossy quality, 0 to 100.
    pub quality: f32,
    /// libwebp's method, 0 (fastest) to 6 (smallest).
    pub method: i32,
    /// libwebp's spatial noise shaping, 0 (off) to 100; its default is 50.
    pub sns_strength: i32,
    /// How many times the animation plays; 0 is forever.
    pub loop_count: u16,
}

/// An animated WebP being written: frames go in with [`add`](Self::add), the file comes
/// out of [`finish`](Self::finish).
pub struct AnimEncoder {
    encoder: NonNull<sys::WebPAnimEncoder>,
    config: sys::WebPConfig,
    width: u32,
    height: u32,
    /// Whether any frame given had a pixel that is not opaque.
    transparent: bool,
}

impl AnimEncoder {
    /// An encoder for frames of `width` x `height` pixels.
    pub fn new(width: u32, height: u32, settings: Settings) -> Result<Self, Error> {
        let fail = |what: &str| Error(format!("WebP animation encoder: {what}"));
        let (Ok(w), Ok(h)) = (i32::try_from(width), i32::try_from(height)) else {
            return Err(fail("canvas too large"));
        };
        let mut config = std::mem::MaybeUninit::<sys::WebPConfig>::zeroed();
        // SAFETY: the call fills the config it is given (libwebp's WebPConfigPreset with the
        // default preset) and returns 0 only on an encoder ABI version mismatch; 75 is a
        // valid quality, replaced below.
        let ok = unsafe {
            sys::WebPConfigInitInternal(
                config.as_mut_ptr(),
                sys::WebPPreset::WEBP_PRESET_DEFAULT,
                75.0,
                sys::WEBP_ENCODER_ABI_VERSION as i32,
            )
        };
        if ok == 0 {
            return Err(fail("libwebp version mismatch"));
        }
        // SAFETY: zeroed, then filled by the successful call above.
        let mut config = unsafe { config.assume_init() };
        config.quality = settings.quality;
        config.method = settings.method;
        config.sns_strength = settings.sns_strength;
        // SAFETY: `config` is an initialised WebPConfig that outlives the call.
        if unsafe { sys::WebPValidateConfig(&config) } == 0 {
            return Err(fail("invalid quality, method or SNS strength"));
        }
        let mut options = std::mem::MaybeUninit::<sys::WebPAnimEncoderOptions>::zeroed();
        // SAFETY: the call sets the options' fields (all but the padding, left zeroed) to
        // libwebp's defaults, for the mux ABI version the bindings were made for; it
        // returns 0 only on a version mismatch.
        let ok = unsafe {
            sys::WebPAnimEncoderOptionsInitInternal(
                options.as_mut_ptr(),
                sys::WEBP_MUX_ABI_VERSION as i32,
            )
        };
        if ok == 0 {
            return Err(fail("libwebp mux version mismatch"));
        }
        // SAFETY: zeroed, then filled by the successful call above.
        let mut options = unsafe { options.assume_init() };
        options.anim_params.loop_count = i32::from(settings.loop_count);
        // Transparent black, as the `webp` crate wrote it; browsers ignore it.
        options.anim_params.bgcolor = 0;
        // SAFETY: `options` is initialised and only read during the call; the encoder it
        // returns (or null) is owned by the value built below and deleted in its Drop.
        let raw = unsafe {
            sys::WebPAnimEncoderNewInternal(w, h, &options, sys::WEBP_MUX_ABI_VERSION as i32)
        };
        let encoder = NonNull::new(raw).ok_or_else(|| fail("out of memory or bad canvas"))?;
        Ok(Self { encoder, config, width, height, transparent: false })
    }

    /// Encodes one frame shown from `timestamp_ms` on (not before the previous frame's).
    /// `argb` holds the whole canvas, row after row, each pixel `0xAARRGGBB` (straight
    /// alpha); libwebp copies it, so the buffer may be reused as soon as this returns.
    pub fn add(&mut self, argb: &mut [u32], timestamp_ms: i32) -> Result<(), Error> {
        if argb.len() != self.width as usize * self.height as usize {
            return Err(Error(format!(
                "WebP animation frame: {} pixels for a {}x{} canvas",
                argb.len(),
                self.width,
                self.height
            )));
        }
        self.transparent = self.transparent || argb.iter().any(|&p| p >> 24 != 0xff);
        let mut picture = sys::WebPPicture::new()
            .map_err(|()| Error("WebP animation frame: libwebp version mismatch".into()))?;
        picture.use_argb = 1;
        picture.width = self.width as i32;
        picture.height = self.height as i32;
        picture.argb = argb.as_mut_ptr();
        picture.argb_stride = self.width as i32;
        // SAFETY: `picture` is a view on `argb`, which holds width x height pixels at the
        // stride given and is borrowed mutably for the whole call (libwebp copies the frame
        // into its own canvas and keeps no pointer to it after returning); the encoder is
        // live and `config` was validated in `new`.
        let ok = unsafe {
            sys::WebPAnimEncoderAdd(self.encoder.as_ptr(), &mut picture, timestamp_ms, &self.config)
        };
        // The picture owns no memory (`argb` is ours), so there is nothing to free.
        if ok == 0 {
            return Err(self.last_error("WebP animation frame"));
        }
        Ok(())
    }

    /// Ends the animation at `end_timestamp_ms` (so the last frame lasts until then) and
    /// returns the file.
    pub fn finish(self, end_timestamp_ms: i32) -> Result<Vec<u8>, Error> {
        // SAFETY: a null frame is libwebp's documented way to end the animation at a
        // timestamp; the encoder is live.
        let ok = unsafe {
            sys::WebPAnimEncoderAdd(
                self.encoder.as_ptr(),
                std::ptr::null_mut(),
                end_timestamp_ms,
                std::ptr::null(),
            )
        };
        if ok == 0 {
            return Err(self.last_error("WebP animation end"));
        }
        let mut data = sys::WebPData::default();
        // SAFETY: the encoder is live and `data` is an empty WebPData for libwebp to fill
        // with a buffer it allocates.
        if unsafe { sys::WebPAnimEncoderAssemble(self.encoder.as_ptr(), &mut data) } == 0 {
            return Err(self.last_error("WebP animation"));
        }
        let mut bytes = if data.bytes.is_null() {
            Vec::new()
        } else {
            // SAFETY: on success libwebp points `data` at `size` initialised bytes it owns
            // until WebPDataClear below.
            unsafe { std::slice::from_raw_parts(data.bytes, data.size) }.to_vec()
        };
        // SAFETY: frees the buffer WebPAnimEncoderAssemble allocated, once.
        unsafe { sys::WebPDataClear(&mut data) };
        if self.transparent {
            mark_alpha(&mut bytes);
        }
        Ok(bytes)
    }

    fn last_error(&self, what: &str) -> Error {
        // SAFETY: the encoder is live; the string it returns (possibly empty, never null for
        // a live encoder) belongs to it and is copied before any other call.
        let message = unsafe { sys::WebPAnimEncoderGetError(self.encoder.as_ptr()) };
        let message = if message.is_null() {
            String::new()
        } else {
            // SAFETY: a NUL-terminated string inside the live encoder, read at once.
            unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()
        };
        Error(format!("{what}: {message}"))
    }
}

/// Sets the VP8X chunk's alpha flag. libwebp's muxer sets it only when an encoded frame
/// carries alpha, but the encoder crops a frame to the rectangle that changed, so an
/// animation whose only transparency is a first frame's transparent surround (a sticker on
/// nothing) came out with opaque frames on a canvas whose uncovered parts are transparent, and
/// no flag: decoders that take the flag as the image's colour type (Pillow, image-webp) then
/// show that surround black. The container's layout: "RIFF", size, "WEBP", then the first
/// chunk, which in an animation is "VP8X", its size, and the flags byte (alpha is 0x10).
fn mark_alpha(file: &mut [u8]) {
    const ALPHA_FLAG: u8 = 0x10;
    if file.len() > 20 && &file[12..16] == b"VP8X" {
        file[20] |= ALPHA_FLAG;
    }
}

impl Drop for AnimEncoder {
    fn drop(&mut self) {
        // SAFETY: the encoder was created by WebPAnimEncoderNewInternal and is deleted once,
        // here.
        unsafe { sys::WebPAnimEncoderDelete(self.encoder.as_ptr()) }
    }
}

/// `0xAARRGGBB` from straight RGBA bytes, as [`AnimEncoder::add`] takes them.
pub fn argb_from_rgba(rgba: &[u8], argb: &mut Vec<u32>) {
    argb.clear();
    argb.extend(rgba.chunks_exact(4).map(|p| u32::from_be_bytes([p[3], p[0], p[1], p[2]])));
}

#[cfg(test)]
mod tests;
