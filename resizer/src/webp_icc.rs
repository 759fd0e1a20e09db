//! Adds an ICC profile to a WebP file, which libwebp's simple encoder cannot do itself.
//!
//! A WebP file is a RIFF container: `RIFF <size> WEBP` then chunks (`FourCC`, little-endian
//! u32 length, payload, one pad byte when the length is odd). A profile needs the extended
//! header chunk `VP8X` with its ICC flag set, followed immediately by an `ICCP` chunk.

const ICC_FLAG: u8 = 0x20;

fn chunk(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 9);
    out.extend_from_slice(fourcc);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    if payload.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// Returns `webp` with `icc` embedded, or `None` when the input is not a WebP this function
/// understands (the caller then keeps the file without a profile).
pub fn embed_icc_profile(webp: &[u8], icc: &[u8], width: u32, height: u32) -> Option<Vec<u8>> {
    if webp.len() < 20 || &webp[0..4] != b"RIFF" || &webp[8..12] != b"WEBP" || icc.is_empty() {
        return None;
    }
    let body = &webp[12..];
    let first = &body[0..4];
    let mut chunks = Vec::with_capacity(webp.len() + icc.len() + 32);
    let rest: &[u8] = if first == b"VP8X" {
        let len = u32::from_le_bytes(body[4..8].try_into().ok()?) as usize;
        if len != 10 || body.len() < 18 {
            return None;
        }
        let mut vp8x = body[8..18].to_vec();
        if vp8x[0] & ICC_FLAG != 0 {
            return None;
        }
        vp8x[0] |= ICC_FLAG;
        chunks.extend_from_slice(&chunk(b"VP8X", &vp8x));
        &body[18..]
    } else if first == b"VP8 " {
        let w = (width - 1).to_le_bytes();
        let h = (height - 1).to_le_bytes();
        let vp8x = [ICC_FLAG, 0, 0, 0, w[0], w[1], w[2], h[0], h[1], h[2]];
        chunks.extend_from_slice(&chunk(b"VP8X", &vp8x));
        body
    } else {
        return None;
    };
    chunks.extend_from_slice(&chunk(b"ICCP", icc));
    chunks.extend_from_slice(rest);
    let mut out = Vec::with_capacity(chunks.len() + 12);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((chunks.len() + 4) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&chunks);
    Some(out)
}
