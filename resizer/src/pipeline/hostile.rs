//! Hostile originals: each is refused with the error its status comes from, or handled, in
//! bounded time and memory, and never turned into a wrong derivative.

use image::GenericImageView;

use super::tests::{boxed, crc32, decode, icc_of_jpeg, jpeg_with_icc, profile_for, LIMITS, PHOTO};
use super::*;

/// A progressive JPEG of `w` x `h` (libjpeg-turbo's own scan script: 10 scans).
fn progressive_jpeg(w: usize, h: usize) -> Vec<u8> {
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| ((i * 7) % 251) as u8).collect();
    let image = turbojpeg::Image {
        pixels: &pixels[..],
        width: w,
        pitch: w * 3,
        height: h,
        format: turbojpeg::PixelFormat::RGB,
    };
    let mut compressor = turbojpeg::Compressor::new().unwrap();
    compressor.set_progressive(true).unwrap();
    compressor.set_quality(90).unwrap();
    compressor.compress_to_vec(image).unwrap()
}

/// Where each SOS segment starts, and where the EOI is.
fn scan_starts(jpeg: &[u8]) -> (Vec<usize>, usize) {
    let starts = (0..jpeg.len() - 1).filter(|&i| jpeg[i] == 0xFF && jpeg[i + 1] == 0xDA).collect();
    (starts, jpeg.len() - 2)
}

/// `copies` more copies of the last scan before the EOI: each one more pass over every
/// coefficient for a decoder that has no scan limit.
fn scan_bomb(copies: usize) -> Vec<u8> {
    let jpeg = progressive_jpeg(64, 64);
    let (starts, eoi) = scan_starts(&jpeg);
    let last = &jpeg[*starts.last().unwrap()..eoi];
    let mut bomb = jpeg[..eoi].to_vec();
    for _ in 0..copies {
        bomb.extend_from_slice(last);
    }
    bomb.extend_from_slice(&[0xFF, 0xD9]);
    bomb
}

#[test]
fn a_progressive_jpeg_with_thousands_of_scans_is_refused_before_decoding() {
    let honest = progressive_jpeg(64, 64);
    assert_eq!(jpeg_markers::check(&honest).unwrap().scans, 10);
    assert!(resize(&honest, boxed(32, 32), &LIMITS).is_ok());
    let r = resize(&scan_bomb(5000), boxed(32, 32), &LIMITS);
    assert!(matches!(&r, Err(PipelineError::TooComplex(m)) if m.contains("scans")), "{r:?}");
}

#[test]
fn libjpeg_turbo_has_the_scan_limit_too() {
    // Past the marker walk: libjpeg-turbo's own limit refuses the bomb (without it, the
    // bomb decodes to the end and is refused only then, for its bogus progression).
    let r = decode::decode_jpeg(&scan_bomb(200), boxed(32, 32), &LIMITS).map(|_| ());
    assert!(matches!(&r, Err(PipelineError::Undecodable(m)) if m.contains("scans")), "{r:?}");
}

#[test]
fn a_truncated_progressive_jpeg_is_refused_not_written_half_grey() {
    let jpeg = progressive_jpeg(256, 256);
    for cut in [jpeg.len() / 3, jpeg.len() * 2 / 3, jpeg.len() - 2] {
        let r = resize(&jpeg[..cut], boxed(64, 64), &LIMITS);
        assert!(
            matches!(&r, Err(PipelineError::Undecodable(m)) if m.contains("truncated")),
            "cut at {cut}: {r:?}"
        );
    }
    let truncated_baseline = &PHOTO[..PHOTO.len() - 100];
    assert!(matches!(
        resize(truncated_baseline, boxed(10, 10), &LIMITS),
        Err(PipelineError::Undecodable(_))
    ));
}

#[test]
fn a_jpeg_whose_frame_header_lies_about_its_size_is_bounded_by_the_header() {
    // SOF0 claims 20000 x 20000 (400 MP): refused from the header, nothing allocated.
    let mut jpeg = PHOTO.to_vec();
    let sof = (0..jpeg.len() - 1)
        .find(|&i| jpeg[i] == 0xFF && matches!(jpeg[i + 1], 0xC0..=0xC2))
        .unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0x4E, 0x20, 0x4E, 0x20]);
    let r = resize(&jpeg, boxed(10, 10), &LIMITS);
    assert!(matches!(&r, Err(PipelineError::SourceTooLarge(_))), "{r:?}");
}

/// A PNG chunk: length, type, data, CRC.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A zlib stream of `len` zero bytes, compressed about 1000:1 with fixed-Huffman
/// length-258, distance-1 matches (what a decompression bomb is made of).
fn zlib_zeros(len: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u32, count: u32) {
            self.acc |= value << self.n;
            self.n += count;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// A Huffman code, most significant bit first.
        fn code(&mut self, code: u32, count: u32) {
            let reversed = (0..count).fold(0, |r, i| r | (((code >> i) & 1) << (count - 1 - i)));
            self.put(reversed, count);
        }
    }
    let mut bits = Bits { out: vec![0x78, 0x01], acc: 0, n: 0 };
    bits.put(1, 1); // the last block
    bits.put(1, 2); // fixed Huffman
    bits.code(0x30, 8); // literal 0
    let mut left = len - 1;
    while left >= 258 {
        bits.code(0b1100_0101, 8); // length code 285: 258
        bits.code(0, 5); // distance code 0: 1
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8);
    }
    bits.code(0, 7); // end of block
    bits.put(0, 7);
    let mut out = bits.out;
    let (mut a, mut b) = (1u32, 0u32);
    for _ in 0..len {
        b = (b + a) % 65521; // a stays 1: every byte is 0
    }
    a %= 65521;
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// An 8 x 8 grey PNG with `extra` chunks before its pixels.
fn png_with(extra: &[Vec<u8>]) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = 8u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&8u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    png.extend(chunk(b"IHDR", &ihdr));
    for c in extra {
        png.extend_from_slice(c);
    }
    let rows: Vec<u8> = (0..8).flat_map(|_| [0u8; 9]).collect();
    let mut idat = vec![0x78, 0x01, 1];
    idat.extend_from_slice(&(rows.len() as u16).to_le_bytes());
    idat.extend_from_slice(&(!(rows.len() as u16)).to_le_bytes());
    idat.extend_from_slice(&rows);
    let adler = {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in &rows {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    };
    idat.extend_from_slice(&adler.to_be_bytes());
    png.extend(chunk(b"IDAT", &idat));
    png.extend(chunk(b"IEND", b""));
    png
}

#[test]
fn a_png_with_a_decompression_bomb_in_its_iccp_or_ztxt_chunk_is_handled_without_the_bomb() {
    let honest = png_with(&[]);
    assert_eq!(decode(&honest).dimensions(), (8, 8));
    // 200 MB of zeros in 1.3 MB.
    let bomb = zlib_zeros(200_000_000);
    assert!(bomb.len() < 1_300_000, "{}", bomb.len());
    let iccp = chunk(b"iCCP", &[b"evil\0\0".as_slice(), &bomb].concat());
    let ztxt = chunk(b"zTXt", &[b"Comment\0\0".as_slice(), &bomb].concat());
    for (name, png) in [("iCCP", png_with(&[iccp])), ("zTXt", png_with(&[ztxt]))] {
        let out = resize(&png, boxed(4, 4), &LIMITS);
        match out {
            // Read without the profile (or the text): nothing of it reaches the output.
            Ok(d) => {
                assert!(d.bytes.len() < 10_000, "{name}: {} bytes", d.bytes.len());
                assert_eq!(decode(&d.bytes).dimensions(), (4, 4), "{name}");
            }
            Err(e) => assert!(
                matches!(e, PipelineError::SourceTooLarge(_) | PipelineError::Undecodable(_)),
                "{name}: {e:?}"
            ),
        }
    }
}

#[test]
fn a_png_whose_header_lies_about_its_size_is_refused() {
    let mut png = png_with(&[]);
    // IHDR says 3000 x 3000; the pixel data holds 8 x 8.
    png[16..24].copy_from_slice(&[0, 0, 0x0B, 0xB8, 0, 0, 0x0B, 0xB8]);
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let r = resize(&png, boxed(10, 10), &LIMITS);
    assert!(matches!(&r, Err(PipelineError::Undecodable(_))), "{r:?}");
}

#[test]
fn a_gif_with_thousands_of_frames_is_refused_as_gif_and_read_to_its_first_frame_as_png() {
    let mut gif = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
        for i in 0..3000u32 {
            let px = image::Rgba([(i % 256) as u8, 0, 0, 255]);
            let frame = image::RgbaImage::from_pixel(4, 4, px);
            enc.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    // Kept animated it would be 3,000 frames: over MAX_SOURCE_FRAMES, refused from the
    // headers (413).
    for output in [None, Some(Format::Gif), Some(Format::WebP)] {
        let r = resize_to(&gif, boxed(2, 2), output, &LIMITS);
        assert!(
            matches!(&r, Err(PipelineError::SourceTooLarge(m)) if m.contains("MAX_SOURCE_FRAMES")),
            "{output:?}: {r:?}"
        );
    }
    // Asked as a still format, only its first frame is read.
    let d = resize_to(&gif, boxed(2, 2), Some(Format::Png), &LIMITS).unwrap();
    assert_eq!(d.format, Format::Png);
    assert_eq!(
        decode(&d.bytes).to_rgba8().get_pixel(0, 0).0,
        [0, 0, 0, 255],
        "the first frame's colour"
    );
}

#[test]
fn a_webp_declaring_huge_dimensions_is_refused_from_its_header() {
    // A real 1 x 1 lossless WebP whose bitstream header is made to claim n x n.
    let claiming = |n: u32| {
        let mut webp = ::webp::Encoder::from_rgb(&[10, 20, 30], 1, 1).encode_lossless().to_vec();
        assert_eq!(&webp[12..16], b"VP8L", "a simple lossless file");
        let header = u32::from_le_bytes([webp[21], webp[22], webp[23], webp[24]]);
        let claimed = (header & !0x0FFF_FFFF) | (n - 1) | ((n - 1) << 14);
        webp[21..25].copy_from_slice(&claimed.to_le_bytes());
        resize(&webp, boxed(10, 10), &LIMITS)
    };
    // 100 MP: over MAX_SOURCE_PIXELS, refused before any allocation.
    let r = claiming(10_000);
    assert!(matches!(&r, Err(PipelineError::SourceTooLarge(_))), "{r:?}");
    // The format's largest, 16384 x 16384: image-webp reports it as 0 x 0, refused as such.
    let r = claiming(16_384);
    assert!(matches!(&r, Err(PipelineError::Undecodable(_))), "{r:?}");
}

#[test]
fn a_malformed_icc_profile_is_dropped_not_carried() {
    let good = profile_for(b"RGB ");
    assert!(encode::well_formed(&good));
    let mut wrong_size = good.clone();
    wrong_size[0..4].copy_from_slice(&9999u32.to_be_bytes());
    let mut no_signature = good.clone();
    no_signature[36..40].copy_from_slice(b"xxxx");
    let mut tag_outside = good.clone();
    tag_outside[136..140].copy_from_slice(&290u32.to_be_bytes());
    let mut huge_count = good.clone();
    huge_count[128..132].copy_from_slice(&u32::MAX.to_be_bytes());
    for bad in [wrong_size, no_signature, tag_outside, huge_count, good[..100].to_vec()] {
        assert!(!encode::well_formed(&bad));
        let src = jpeg_with_icc(&bad, jpeg_encoder::ColorType::Rgb);
        let d = resize(&src, boxed(8, 8), &LIMITS).unwrap();
        assert_eq!(icc_of_jpeg(&d.bytes), None);
    }
    let src = jpeg_with_icc(&good, jpeg_encoder::ColorType::Rgb);
    assert_eq!(icc_of_jpeg(&resize(&src, boxed(8, 8), &LIMITS).unwrap().bytes), Some(good));
}

/// APP1 EXIF whose IFD0 links to itself as the next IFD, with an orientation tag.
fn with_looping_exif(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&8u32.to_le_bytes()); // next IFD: itself
    let app1 = [b"Exif\0\0".as_slice(), &tiff].concat();
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_whose_ifds_loop_is_read_once_and_its_orientation_applied() {
    let mut pixels = vec![0u8; 40 * 20 * 3];
    for px in pixels.chunks_exact_mut(3).take(10) {
        px.copy_from_slice(&[255, 255, 255]);
    }
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 90)
        .encode(&pixels, 40, 20, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let looping = with_looping_exif(&jpeg, 6);
    let d = resize(&looping, Size::Width(20), &LIMITS).unwrap();
    // Rotated a quarter turn: 40 x 20 becomes 20 x 40.
    assert_eq!((d.width, d.height), (20, 40));
}

#[test]
fn a_gif_whose_screen_claims_4_gigapixels_is_refused_from_its_header() {
    // Found by the pipeline fuzz target with the pixel limit lifted (it then asked malloc for
    // 17 GB): fuzz/regressions/pipeline-gif-header-17gb-without-pixel-limit, less the 5
    // bytes the target draws the size from.
    let gif = b"GIF89aa\xff\xff\xffF\x969;>";
    let r = resize(gif, boxed(10, 10), &LIMITS);
    assert!(matches!(&r, Err(PipelineError::SourceTooLarge(_))), "{r:?}");
}

/// Writes the hostile originals above to tests/data/hostile/, where the end-to-end tests
/// upload them and the fuzzer takes its image seeds from:
/// `cargo test -p resizer --lib write_hostile_corpus -- --ignored`.
#[test]
#[ignore = "writes the committed corpus; run by hand when a case changes"]
fn write_hostile_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let progressive = progressive_jpeg(256, 256);
    let mut lying_png = png_with(&[]);
    lying_png[16..24].copy_from_slice(&[0, 0, 0x0B, 0xB8, 0, 0, 0x0B, 0xB8]);
    let crc = crc32(&lying_png[12..29]);
    lying_png[29..33].copy_from_slice(&crc.to_be_bytes());
    let mut huge_webp = ::webp::Encoder::from_rgb(&[10, 20, 30], 1, 1).encode_lossless().to_vec();
    let header = u32::from_le_bytes([huge_webp[21], huge_webp[22], huge_webp[23], huge_webp[24]]);
    let claimed = (header & !0x0FFF_FFFF) | (10_000 - 1) | ((10_000 - 1) << 14);
    huge_webp[21..25].copy_from_slice(&claimed.to_le_bytes());
    let mut bad_icc = profile_for(b"RGB ");
    bad_icc[0..4].copy_from_slice(&9999u32.to_be_bytes());
    let files: [(&str, Vec<u8>); 7] = [
        ("scan-bomb.jpg", scan_bomb(300)),
        ("truncated-progressive.jpg", progressive[..progressive.len() * 2 / 3].to_vec()),
        ("lying-header.png", lying_png),
        ("huge-dimensions.webp", huge_webp),
        (
            "iccp-bomb.png",
            png_with(&[chunk(
                b"iCCP",
                &[b"evil\0\0".as_slice(), &zlib_zeros(50_000_000)].concat(),
            )]),
        ),
        ("malformed-icc.jpg", jpeg_with_icc(&bad_icc, jpeg_encoder::ColorType::Rgb)),
        ("looping-exif.jpg", with_looping_exif(&progressive_jpeg(40, 20), 6)),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
