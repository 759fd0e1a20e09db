//! A walk over a JPEG's marker segments, without decoding, made before any decoder sees the
//! bytes. It bounds what the decoders would otherwise do with hostile files:
//!
//! - **scan bombs**: a progressive JPEG may hold any number of scans, each a full pass over
//!   the coefficients; thousands of them keep libjpeg-turbo (and zune-jpeg, which decodes the
//!   CMYK and 16-bit files) busy until the Lambda times out. More than [`MAX_SCANS`] is refused.
//! - **truncation**: a file that ends before its end-of-image marker decodes, in libjpeg-turbo,
//!   to a picture whose missing part is grey, with only a warning. Such a derivative would be a
//!   wrong object in the bucket, so a JPEG that ends inside a segment or a scan is refused.
//!
//! Bytes between segments that are not a marker are skipped as libjpeg-turbo skips them (it
//! warns about "extraneous bytes"); anything after the end-of-image marker is ignored.

use super::PipelineError;

/// The most scans a JPEG may have. libjpeg's own progressive script has 10 (6 for grey);
/// jpegtran's and mozjpeg's optimised scripts stay below 30 for three components. The limit
/// is also given to libjpeg-turbo (TJPARAM_SCANLIMIT).
pub const MAX_SCANS: u32 = 100;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const TEM: u8 = 0x01;

/// What the walk found: how many scans the file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Structure {
    /// Start-of-scan segments before the end-of-image marker.
    pub scans: u32,
}

fn truncated() -> PipelineError {
    PipelineError::Undecodable("the JPEG ends before its end-of-image marker (truncated)".into())
}

/// Walks `jpeg` from its SOI to its EOI, counting scans.
pub fn check(jpeg: &[u8]) -> Result<Structure, PipelineError> {
    if jpeg.get(..2) != Some(&[0xFF, SOI]) {
        return Err(PipelineError::Undecodable("no start-of-image marker".into()));
    }
    let mut scans = 0u32;
    let mut at = 2;
    loop {
        // The next marker: skip anything that is not 0xFF, then fill bytes (0xFF 0xFF ...).
        at += memchr::memchr(0xFF, jpeg.get(at..).ok_or_else(truncated)?).ok_or_else(truncated)?;
        while jpeg.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let marker = *jpeg.get(at + 1).ok_or_else(truncated)?;
        at += 2;
        match marker {
            EOI => return Ok(Structure { scans }),
            // A stray 0xFF 0x00 outside a scan: skipped like extraneous bytes.
            0x00 | SOI | TEM | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let len = jpeg.get(at..at + 2).ok_or_else(truncated)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len < 2 {
            return Err(PipelineError::Undecodable(format!("segment length {len} at byte {at}")));
        }
        at += len;
        if at > jpeg.len() {
            return Err(truncated());
        }
        if marker == SOS {
            scans += 1;
            if scans > MAX_SCANS {
                return Err(PipelineError::TooComplex(format!(
                    "the JPEG has more than {MAX_SCANS} scans"
                )));
            }
            at = end_of_entropy_data(jpeg, at).ok_or_else(truncated)?;
        }
    }
}

/// Where the entropy-coded data that starts at `from` ends: the first 0xFF that begins a
/// marker other than a restart (0xFF 0x00 is a stuffed data byte, 0xFF 0xFF fill).
fn end_of_entropy_data(jpeg: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        at += memchr::memchr(0xFF, jpeg.get(at..)?)?;
        match *jpeg.get(at + 1)? {
            0x00 | 0xD0..=0xD7 => at += 2,
            0xFF => at += 1,
            _ => return Some(at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(payload);
        s
    }

    fn scan(data: &[u8]) -> Vec<u8> {
        [&segment(SOS, &[1, 1, 0, 0, 63, 0])[..], data].concat()
    }

    fn jpeg(parts: &[&[u8]]) -> Vec<u8> {
        [&[0xFF, SOI][..], &parts.concat(), &[0xFF, EOI]].concat()
    }

    #[test]
    fn scans_are_counted_through_stuffed_bytes_restarts_and_fill() {
        let data = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD1, 0x78];
        let file = jpeg(&[&segment(0xDB, &[0; 65]), &scan(&data), &scan(&data), &[0xFF, 0xFF]]);
        assert_eq!(check(&file), Ok(Structure { scans: 2 }));
    }

    #[test]
    fn more_scans_than_the_limit_are_refused_before_decoding() {
        let at_limit: Vec<Vec<u8>> = (0..MAX_SCANS).map(|_| scan(&[1, 2, 3])).collect();
        let parts: Vec<&[u8]> = at_limit.iter().map(Vec::as_slice).collect();
        assert_eq!(check(&jpeg(&parts)), Ok(Structure { scans: MAX_SCANS }));
        let extra = scan(&[4]);
        let one_more = [&parts[..], &[&extra[..]]].concat();
        assert!(matches!(check(&jpeg(&one_more)), Err(PipelineError::TooComplex(_))));
    }

    #[test]
    fn a_file_cut_anywhere_before_its_end_marker_is_truncated() {
        let file = jpeg(&[&segment(0xE1, b"Exif\0\0abc"), &scan(&[9, 0xFF, 0x00, 9])]);
        assert!(check(&file).is_ok());
        for cut in 2..file.len() {
            let r = check(&file[..cut]);
            assert!(
                matches!(&r, Err(PipelineError::Undecodable(m)) if m.contains("truncated")),
                "{cut}: {r:?}"
            );
        }
    }

    #[test]
    fn extraneous_bytes_between_segments_and_trailing_data_are_tolerated() {
        let file = jpeg(&[&segment(0xE0, b"JFIF\0"), &[0x00, 0x13], &scan(&[5])]);
        let trailing = [&file[..], b"appended by an uploader"].concat();
        assert_eq!(check(&trailing), Ok(Structure { scans: 1 }));
        assert!(check(b"\x89PNG").is_err());
    }
}
