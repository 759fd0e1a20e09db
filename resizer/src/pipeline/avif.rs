//! AVIF encoding with rav1e (pure Rust, driven by av1.rs), at settings measured against sharp's
//! `.avif()` defaults (libaom, quality 50, effort 4, 4:4:4) in docs/BENCHMARKS.md.
//!
//! - 4:4:4 YCbCr (BT.601, full range), as sharp writes it; 8-bit: rav1e's 10-bit path took
//!   twice as long for about 2% fewer bytes at the same SSIM.
//! - One thread (rav1e without its `threading` feature, so no rayon pool either): the Lambda
//!   has one vCPU at its memory size and the devserver already runs one resize per CPU, so a
//!   second thread buys no throughput there (on an idle 2-CPU machine it made a 1024x576
//!   encode 1.7x faster for the same CPU time). No tiles are asked for, so rav1e makes one
//!   tile up to 4096 px wide and the bytes do not depend on the machine.
//! - Alpha: a second AV1 image (the auxiliary alpha item), left out when every pixel is
//!   opaque. Grey: Y is the grey level and the chroma planes are neutral, so no colour
//!   conversion touches it.
//! - ICC: the profile is carried, not converted: it goes into a `colr` box of type `prof`
//!   associated with the primary item, as libavif writes it. (avif-serialize writes no
//!   `nclx` box for these defaults: the AV1 sequence header says BT.709 primaries, sRGB
//!   curve, BT.601 matrix, full range, and decoders take the matrix from there and the
//!   colours from the profile.)
//!   A grey original's GRAY profile cannot describe three-channel AV1, so it becomes the
//!   equivalent RGB profile (the grey curve on all three channels, sRGB's colorants), which
//!   renders R=G=B exactly as the grey profile renders the grey level.

use super::{Layout, PipelineError, Raster};

/// rav1e's quantizer (0 best .. 255), for colour and alpha: 149 is what ravif calls quality
/// 58. On the benchmark's 10 photograph jobs (our own rasters, bench/encoder_sweep/rd.py) it
/// was at once smaller than sharp's `.avif()` and at or above its SSIM on 7 (6 in the
/// pipeline benchmark); interpolated at sharp's SSIM it needs 0.90-1.0 of sharp's bytes on
/// 8 and fewer at every quality on 2 (docs/BENCHMARKS.md).
pub(super) const AVIF_QUANTIZER: u8 = 149;

/// rav1e's speed preset (1 slowest .. 10 fastest): slower presets saved no more than 1-2% of
/// the bytes at equal SSIM for twice the time; 9 and 10 cost 2-15% more bytes.
pub(super) const AVIF_SPEED: u8 = 6;

/// Encodes `r` as AVIF, carrying `icc_profile` (already checked to fit the raster's layout).
pub(super) fn encode_avif(
    r: &Raster,
    icc_profile: Option<&[u8]>,
) -> Result<Vec<u8>, PipelineError> {
    let fail = |e: &dyn std::fmt::Display| PipelineError::Encode(format!("AVIF: {e}"));
    let channels = match r.layout {
        Layout::Luma => 1,
        Layout::Rgb => 3,
        Layout::Rgba => 4,
    };
    let still = super::av1::Still {
        pixels: &r.pixels,
        channels,
        width: r.width as usize,
        height: r.height as usize,
    };
    let settings = super::av1::Settings { quantizer: AVIF_QUANTIZER, speed: AVIF_SPEED };
    let avif = super::av1::encode(&still, &settings).map_err(|e| fail(&e))?;
    let rgb_profile;
    let icc = match (icc_profile, r.layout) {
        (Some(grey), Layout::Luma) => {
            rgb_profile = rgb_profile_from_grey(grey);
            rgb_profile.as_deref()
        }
        (icc, _) => icc,
    };
    match icc {
        Some(icc) => insert_icc_profile(&avif, icc)
            .ok_or_else(|| fail(&"the encoder's box layout left no place for the ICC profile")),
        None => Ok(avif),
    }
}

/// A big-endian reader over one box's payload.
fn be(data: &[u8], at: usize, n: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(n)?)?;
    Some(bytes.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
}

/// One box: its type, the whole box's range and its payload's range.
pub(super) type BoxSpan = ([u8; 4], std::ops::Range<usize>, std::ops::Range<usize>);

/// The boxes in `data` (ISO/IEC 14496-12 §4.2): `(type, whole box range, payload range)`, or
/// `None` if a size runs past the end. 32-bit sizes only (the encoder writes no larger box).
pub(super) fn boxes(data: &[u8]) -> Option<Vec<BoxSpan>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let size = be(data, at, 4)? as usize;
        let kind: [u8; 4] = data.get(at + 4..at + 8)?.try_into().ok()?;
        if size < 8 || at + size > data.len() {
            return None;
        }
        out.push((kind, at..at + size, at + 8..at + size));
        at += size;
    }
    Some(out)
}

/// A box of `kind` around `payload`.
fn make_box(kind: &[u8; 4], payload: &[&[u8]]) -> Option<Vec<u8>> {
    let len = 8 + payload.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&u32::try_from(len).ok()?.to_be_bytes());
    out.extend_from_slice(kind);
    payload.iter().for_each(|p| out.extend_from_slice(p));
    Some(out)
}

/// The AVIF `avif` with `icc` in a `colr` box of type `prof` associated with its primary
/// item: the box is appended to `ipco`, its index to the primary item's `ipma` entry, and
/// every `iloc` offset that points past `meta` moves by the bytes `meta` grew. `None` when
/// the layout is not the one expected (top-level `meta` before the data, `ipma` version 0
/// with 7-bit indices, `iloc` version 0 or 1 with 4- or 8-byte offsets).
fn insert_icc_profile(avif: &[u8], icc: &[u8]) -> Option<Vec<u8>> {
    let top = boxes(avif)?;
    let (_, meta_box, meta_payload) = top.iter().find(|(k, ..)| k == b"meta")?.clone();
    let meta_header = avif.get(meta_payload.start..meta_payload.start + 4)?;
    let children = boxes(avif.get(meta_payload.start + 4..meta_payload.end)?)?;
    let child = |kind: &[u8; 4]| children.iter().find(|(k, ..)| k == kind).cloned();
    let meta_body = &avif[meta_payload.start + 4..meta_payload.end];
    let primary = {
        let (_, _, p) = child(b"pitm")?;
        let pitm = &meta_body[p];
        if pitm.first()? != &0 {
            return None;
        }
        be(pitm, 4, 2)?
    };
    // iprp: ipco gains the colr box, ipma the association.
    let (_, _, iprp_payload) = child(b"iprp")?;
    let iprp = &meta_body[iprp_payload.clone()];
    let iprp_children = boxes(iprp)?;
    let colr = make_box(b"colr", &[b"prof", icc])?;
    let ipco_count = iprp_children
        .iter()
        .find(|(k, ..)| k == b"ipco")
        .map(|(_, _, p)| boxes(&iprp[p.clone()]))??
        .len();
    let index = u8::try_from(ipco_count + 1).ok().filter(|i| *i < 0x80)?;
    let mut new_iprp = Vec::new();
    let mut associated = false;
    for (kind, whole, payload) in &iprp_children {
        let body = &iprp[payload.clone()];
        match kind {
            b"ipco" => new_iprp.extend(make_box(b"ipco", &[body, &colr])?),
            b"ipma" => {
                // version 0, flags 0: u32 entry count, then per entry a u16 item ID, a u8
                // count and one byte per association.
                if be(body, 0, 4)? != 0 {
                    return None;
                }
                let mut out = body[..8].to_vec();
                let mut at = 8;
                for _ in 0..be(body, 4, 4)? {
                    let item = be(body, at, 2)?;
                    let count = *body.get(at + 2)? as usize;
                    let entry = body.get(at..at + 3 + count)?;
                    if item == primary {
                        out.extend_from_slice(&entry[..2]);
                        out.push(u8::try_from(count + 1).ok()?);
                        out.extend_from_slice(&entry[3..]);
                        out.push(index);
                        associated = true;
                    } else {
                        out.extend_from_slice(entry);
                    }
                    at += 3 + count;
                }
                out.extend_from_slice(body.get(at..)?);
                new_iprp.extend(make_box(b"ipma", &[&out])?);
            }
            _ => new_iprp.extend_from_slice(&iprp[whole.clone()]),
        }
    }
    if !associated {
        return None;
    }
    let new_iprp = make_box(b"iprp", &[&new_iprp])?;
    let grown = new_iprp.len() - (iprp_payload.len() + 8);
    // Rebuild meta's children, moving iloc's offsets into the data after meta.
    let mut new_children = Vec::new();
    for (kind, whole, payload) in &children {
        match kind {
            b"iprp" => new_children.extend_from_slice(&new_iprp),
            b"iloc" => {
                let mut iloc = meta_body[payload.clone()].to_vec();
                shift_iloc(&mut iloc, meta_box.end as u64, grown as u64)?;
                new_children.extend(make_box(b"iloc", &[&iloc])?);
            }
            _ => new_children.extend_from_slice(&meta_body[whole.clone()]),
        }
    }
    let new_meta = make_box(b"meta", &[meta_header, &new_children])?;
    let mut out = Vec::with_capacity(avif.len() + grown);
    out.extend_from_slice(&avif[..meta_box.start]);
    out.extend_from_slice(&new_meta);
    out.extend_from_slice(&avif[meta_box.end..]);
    Some(out)
}

/// Adds `by` to every offset in the `iloc` payload `iloc` that is at or past `from` (the
/// item data in `mdat`, which follows `meta`).
fn shift_iloc(iloc: &mut [u8], from: u64, by: u64) -> Option<()> {
    let version = *iloc.first()?;
    if version > 1 {
        return None;
    }
    let (offset_size, length_size) =
        (usize::from(iloc.get(4)? >> 4), usize::from(iloc.get(4)? & 15));
    let base_offset_size = usize::from(iloc.get(5)? >> 4);
    let index_size = if version == 1 { usize::from(iloc.get(5)? & 15) } else { 0 };
    let sizes_ok = |n: usize| matches!(n, 0 | 4 | 8);
    if !(sizes_ok(offset_size)
        && sizes_ok(length_size)
        && sizes_ok(base_offset_size)
        && sizes_ok(index_size))
    {
        return None;
    }
    let shift = |iloc: &mut [u8], at: usize, n: usize| -> Option<()> {
        let value = be(iloc, at, n)?;
        if n > 0 && value >= from {
            let moved = (value + by).to_be_bytes();
            iloc.get_mut(at..at + n)?.copy_from_slice(&moved[8 - n..]);
        }
        Some(())
    };
    let mut at = 8;
    for _ in 0..be(iloc, 6, 2)? {
        at += 2; // item ID
        if version == 1 {
            if be(iloc, at, 2)? & 0xF != 0 {
                return None; // construction method: offsets into idat or items, not the file
            }
            at += 2;
        }
        at += 2; // data reference index
        let base = be(iloc, at, base_offset_size)?;
        shift(iloc, at, base_offset_size)?;
        at += base_offset_size;
        let extents = be(iloc, at, 2)?;
        at += 2;
        for _ in 0..extents {
            at += index_size;
            if base_offset_size == 0 || base == 0 {
                shift(iloc, at, offset_size)?;
            }
            at += offset_size + length_size;
        }
    }
    (at == iloc.len()).then_some(())
}

/// The RGB profile equivalent to the GRAY profile `grey` on R=G=B pixels: its `kTRC` curve on
/// all three channels and sRGB's D50 colorants, which add up to the D50 white, so a grey
/// level v maps to white x curve(v) as under the grey profile. `None` for a profile that is
/// not GRAY or has no `kTRC`.
fn rgb_profile_from_grey(grey: &[u8]) -> Option<Vec<u8>> {
    if grey.get(16..20)? != b"GRAY" || !super::encode::well_formed(grey) {
        return None;
    }
    let curve = (0..be(grey, 128, 4)? as usize).find_map(|i| {
        let entry = 132 + 12 * i;
        (grey.get(entry..entry + 4)? == b"kTRC").then(|| {
            let (offset, len) =
                (be(grey, entry + 4, 4)? as usize, be(grey, entry + 8, 4)? as usize);
            grey.get(offset..offset + len)
        })?
    })?;
    // sRGB's red and green adapted to D50, as ICC's sRGB profile has them, and blue as the
    // rest of the D50 white (within 0.0002 of sRGB's), so the three add up to white exactly.
    let (red, green) = ([0.436066, 0.222488, 0.013916], [0.385147, 0.716873, 0.097076]);
    let blue: [f64; 3] = std::array::from_fn(|i| D50[i] - red[i] - green[i]);
    Some(matrix_profile(*grey.get(8)?, "RGB from grey", [red, green, blue], curve))
}

/// ICC's PCS illuminant, D50, as XYZ.
const D50: [f64; 3] = [0.9642, 1.0, 0.8249];

/// A display profile (ICC.1 matrix/TRC: `desc`, `wtpt` D50, `rXYZ` `gXYZ` `bXYZ` from
/// `colorants`, one tone curve `curve`, a whole `curv` or `para` tag, shared by `rTRC`,
/// `gTRC` and `bTRC`) of ICC major version `version` (2 or 4: it picks `desc`'s type).
pub(super) fn matrix_profile(
    version: u8,
    description: &str,
    colorants: [[f64; 3]; 3],
    curve: &[u8],
) -> Vec<u8> {
    let xyz = |[x, y, z]: [f64; 3]| -> Vec<u8> {
        let mut t = b"XYZ \0\0\0\0".to_vec();
        for v in [x, y, z] {
            t.extend_from_slice(&((v * 65536.0).round() as i32).to_be_bytes());
        }
        t
    };
    let desc = if version >= 4 {
        // multiLocalizedUnicode: one en-US record, UTF-16BE.
        let text: Vec<u8> = description.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let mut t = b"mluc\0\0\0\0\0\0\0\x01\0\0\0\x0cenUS".to_vec();
        t.extend_from_slice(&(text.len() as u32).to_be_bytes());
        t.extend_from_slice(&28u32.to_be_bytes());
        t.extend_from_slice(&text);
        t
    } else {
        // textDescription: ASCII with its NUL, empty Unicode and ScriptCode parts.
        let mut t = b"desc\0\0\0\0".to_vec();
        t.extend_from_slice(&(description.len() as u32 + 1).to_be_bytes());
        t.extend_from_slice(description.as_bytes());
        t.extend_from_slice(&[0; 1 + 4 + 4 + 2 + 1 + 67]);
        t
    };
    let tags: [(&[u8; 4], Vec<u8>); 6] = [
        (b"desc", desc),
        (b"wtpt", xyz(D50)),
        (b"rXYZ", xyz(colorants[0])),
        (b"gXYZ", xyz(colorants[1])),
        (b"bXYZ", xyz(colorants[2])),
        (b"rTRC", curve.to_vec()),
    ];
    let count = tags.len() + 2;
    let data_start = 128 + 4 + 12 * count;
    let (mut table, mut data) = (Vec::new(), Vec::new());
    let mut entry = |sig: &[u8; 4], at: usize, len: usize| {
        table.extend_from_slice(sig);
        table.extend_from_slice(&(at as u32).to_be_bytes());
        table.extend_from_slice(&(len as u32).to_be_bytes());
    };
    let mut curve_at = 0;
    for (sig, body) in &tags {
        while data.len() % 4 != 0 {
            data.push(0);
        }
        curve_at = data_start + data.len();
        entry(sig, curve_at, body.len());
        data.extend_from_slice(body);
    }
    // The curve was the last tag written: gTRC and bTRC share its data, as ICC allows.
    entry(b"gTRC", curve_at, curve.len());
    entry(b"bTRC", curve_at, curve.len());
    let mut profile = vec![0u8; 128];
    profile[8] = version;
    profile[12..24].copy_from_slice(b"mntrRGB XYZ ");
    profile[36..40].copy_from_slice(b"acsp");
    // The PCS illuminant, D50.
    for (i, v) in D50.into_iter().enumerate() {
        let at = 68 + 4 * i;
        profile[at..at + 4].copy_from_slice(&((v * 65536.0).round() as i32).to_be_bytes());
    }
    profile.extend_from_slice(&(count as u32).to_be_bytes());
    profile.extend_from_slice(&table);
    profile.extend_from_slice(&data);
    let len = (profile.len() as u32).to_be_bytes();
    profile[..4].copy_from_slice(&len);
    profile
}
