//! The AVIF and WebP encoders on the sample photograph: what each file holds (read back box
//! by box for AVIF, which no decoder in the workspace reads; decoded for WebP), alpha, grey,
//! and the ICC profile of a wide-gamut original.

use std::io::Cursor;
use std::ops::Range;

use image::{GenericImageView, ImageDecoder};

use super::avif::{boxes, encode_avif, matrix_profile};
use super::tests::{decode, LIMITS, PHOTO};
use super::webp::{encode_webp, few_colours};
use super::*;

/// The boxes inside the payload `range` of `data` (after `skip` bytes of a full box's
/// version and flags), by type.
fn children(data: &[u8], range: Range<usize>, skip: usize) -> Vec<([u8; 4], Range<usize>)> {
    let start = range.start + skip;
    boxes(&data[start..range.end])
        .expect("well-formed boxes")
        .into_iter()
        .map(|(kind, _, payload)| (kind, payload.start + start..payload.end + start))
        .collect()
}

fn find(list: &[([u8; 4], Range<usize>)], kind: &[u8; 4]) -> Range<usize> {
    let found: Vec<_> = list.iter().filter(|(k, _)| k == kind).collect();
    assert_eq!(found.len(), 1, "one {} box", String::from_utf8_lossy(kind));
    found[0].1.clone()
}

fn be(data: &[u8], at: usize, n: usize) -> u64 {
    data[at..at + n].iter().fold(0, |acc, &b| acc << 8 | u64::from(b))
}

/// A property box: its type and payload.
type Property = ([u8; 4], Vec<u8>);

/// What an AVIF file says about itself, read from its boxes.
#[derive(Debug)]
struct Avif {
    major_brand: [u8; 4],
    primary: u64,
    /// (item ID, item type) from `iinf`.
    items: Vec<(u64, [u8; 4])>,
    /// (item ID, the property boxes associated with it, each as (type, payload)).
    properties: Vec<(u64, Vec<Property>)>,
    /// (type, from, to) from `iref`.
    references: Vec<([u8; 4], u64, u64)>,
    /// (item ID, its data, concatenated from its `iloc` extents).
    data: Vec<(u64, Vec<u8>)>,
}

impl Avif {
    fn read(file: &[u8]) -> Avif {
        let top: Vec<_> = boxes(file)
            .expect("well-formed top-level boxes")
            .into_iter()
            .map(|(k, _, p)| (k, p))
            .collect();
        assert_eq!(top[0].0, *b"ftyp", "ftyp first");
        let ftyp = find(&top, b"ftyp");
        let major_brand = file[ftyp.start..ftyp.start + 4].try_into().unwrap();
        let meta = children(file, find(&top, b"meta"), 4);
        let primary = be(file, find(&meta, b"pitm").start + 4, 2);

        let iinf = find(&meta, b"iinf");
        let items = children(file, iinf, 4 + 2)
            .into_iter()
            .map(|(kind, infe)| {
                assert_eq!(&kind, b"infe");
                assert!(file[infe.start] >= 2, "infe version 2 or 3");
                let id = be(file, infe.start + 4, 2);
                (id, file[infe.start + 8..infe.start + 12].try_into().unwrap())
            })
            .collect();

        let iprp = children(file, find(&meta, b"iprp"), 0);
        let ipco: Vec<Property> = children(file, find(&iprp, b"ipco"), 0)
            .into_iter()
            .map(|(k, p)| (k, file[p].to_vec()))
            .collect();
        let ipma = find(&iprp, b"ipma");
        assert_eq!(be(file, ipma.start, 4), 0, "ipma version 0, 7-bit indices");
        let mut at = ipma.start + 8;
        let mut properties = Vec::new();
        for _ in 0..be(file, ipma.start + 4, 4) {
            let id = be(file, at, 2);
            let count = file[at + 2] as usize;
            let props = file[at + 3..at + 3 + count]
                .iter()
                .map(|&i| ipco[usize::from(i & 0x7F) - 1].clone())
                .collect();
            properties.push((id, props));
            at += 3 + count;
        }

        let references = meta
            .iter()
            .find(|(k, _)| k == b"iref")
            .map(|(_, r)| {
                children(file, r.clone(), 4)
                    .into_iter()
                    .flat_map(|(kind, p)| {
                        let from = be(file, p.start, 2);
                        let count = be(file, p.start + 2, 2) as usize;
                        (0..count).map(move |i| (kind, from, be(file, p.start + 4 + 2 * i, 2)))
                    })
                    .collect()
            })
            .unwrap_or_default();

        let iloc = find(&meta, b"iloc");
        assert_eq!(file[iloc.start], 0, "iloc version 0");
        let (offset_size, length_size) =
            (usize::from(file[iloc.start + 4] >> 4), usize::from(file[iloc.start + 4] & 15));
        assert_eq!(file[iloc.start + 5] >> 4, 0, "no base offsets");
        let mut at = iloc.start + 8;
        let mut data = Vec::new();
        for _ in 0..be(file, iloc.start + 6, 2) {
            let id = be(file, at, 2);
            let extents = be(file, at + 4, 2);
            at += 6;
            let mut bytes = Vec::new();
            for _ in 0..extents {
                let offset = be(file, at, offset_size) as usize;
                let len = be(file, at + offset_size, length_size) as usize;
                bytes.extend_from_slice(&file[offset..offset + len]);
                at += offset_size + length_size;
            }
            data.push((id, bytes));
        }
        Avif { major_brand, primary, items, properties, references, data }
    }

    fn props(&self, id: u64) -> &[Property] {
        &self.properties.iter().find(|(i, _)| *i == id).expect("item has properties").1
    }

    /// The (width, height) of item `id`'s `ispe`.
    fn ispe(&self, id: u64) -> (u32, u32) {
        let (_, p) = self.props(id).iter().find(|(k, _)| k == b"ispe").expect("ispe");
        (be(p, 4, 4) as u32, be(p, 8, 4) as u32)
    }

    /// The payloads of item `id`'s `colr` boxes.
    fn colr(&self, id: u64) -> Vec<&[u8]> {
        self.props(id).iter().filter(|(k, _)| k == b"colr").map(|(_, p)| &p[..]).collect()
    }

    /// The alpha auxiliary item: `auxl` to the primary item, `auxC` naming alpha.
    fn alpha_item(&self) -> Option<u64> {
        self.references.iter().find(|(k, _, to)| k == b"auxl" && *to == self.primary).map(
            |&(_, from, _)| {
                let (_, auxc) = self.props(from).iter().find(|(k, _)| k == b"auxC").unwrap();
                assert!(
                    auxc.ends_with(b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha\0"),
                    "auxC names alpha"
                );
                from
            },
        )
    }

    fn data(&self, id: u64) -> &[u8] {
        &self.data.iter().find(|(i, _)| *i == id).expect("item has data").1
    }
}

fn width(w: u32) -> Size {
    Size::Width(w)
}

/// The sample photograph as the raster the encoders get, at `w` pixels wide.
fn photo_raster(w: u32) -> Raster {
    let img = decode(PHOTO).resize(w, w, image::imageops::FilterType::Triangle).to_rgb8();
    Raster { width: img.width(), height: img.height(), layout: Layout::Rgb, pixels: img.into_raw() }
}

/// `jpeg` with `profile` in an APP2 ICC_PROFILE segment right after SOI.
fn with_icc(jpeg: &[u8], profile: &[u8]) -> Vec<u8> {
    let mut segment = vec![0xFF, 0xE2];
    segment.extend_from_slice(&((2 + 14 + profile.len()) as u16).to_be_bytes());
    segment.extend_from_slice(b"ICC_PROFILE\0\x01\x01");
    segment.extend_from_slice(profile);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// sRGB's tone curve as an ICC `para` tag (function type 3).
fn srgb_curve() -> Vec<u8> {
    let mut t = b"para\0\0\0\0\0\x03\0\0".to_vec();
    for v in [2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045] {
        t.extend_from_slice(&((v * 65536.0f64).round() as i32).to_be_bytes());
    }
    t
}

/// Display P3 (DCI-P3 primaries, D65 white, sRGB's curve), its colorants adapted to D50 with
/// the Bradford transform, as Apple's "Display P3" profile has them.
fn display_p3() -> Vec<u8> {
    const P3_D50: [[f64; 3]; 3] =
        [[0.5151, 0.2412, -0.0011], [0.2920, 0.6922, 0.0419], [0.1571, 0.0666, 0.7841]];
    matrix_profile(4, "Display P3", P3_D50, &srgb_curve())
}

/// A 48x32 RGBA PNG cut from the photograph, its alpha a left-to-right ramp from 0 to 255.
fn translucent_photo_png() -> Vec<u8> {
    let mut img =
        decode(PHOTO).resize_exact(48, 32, image::imageops::FilterType::Triangle).to_rgba8();
    for (x, _, p) in img.enumerate_pixels_mut() {
        p[3] = (x * 255 / 47) as u8;
    }
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

#[test]
fn avif_of_a_photograph_is_an_avif_image_of_its_size() {
    let d = resize_to(PHOTO, width(320), Some(Format::Avif), &LIMITS).unwrap();
    assert_eq!((d.format, d.width, d.height), (Format::Avif, 320, 180));
    let avif = Avif::read(&d.bytes);
    assert_eq!(&avif.major_brand, b"avif");
    assert!(avif.items.contains(&(avif.primary, *b"av01")), "{:?}", avif.items);
    assert_eq!(avif.ispe(avif.primary), (320, 180));
    assert!(avif.props(avif.primary).iter().any(|(k, _)| k == b"av1C"), "av1C");
    assert_eq!(avif.alpha_item(), None, "an opaque photograph has no alpha item");
    // 4:4:4 as sharp writes it: av1C's mono_chrome and chroma_subsampling bits are clear.
    let (_, av1c) = avif.props(avif.primary).iter().find(|(k, _)| k == b"av1C").unwrap();
    assert_eq!(av1c[2] & 0b0001_1100, 0, "8-bit 4:4:4 colour");
    // A photograph's AV1 data: bigger than a flat image's, smaller than the JPEG at q80.
    let jpeg = resize_to(PHOTO, width(320), None, &LIMITS).unwrap();
    let colour = avif.data(avif.primary).len();
    assert!(colour > 2_000 && colour < jpeg.bytes.len(), "{colour} vs JPEG {}", jpeg.bytes.len());
}

#[test]
fn avif_keeps_alpha_in_an_auxiliary_image() {
    let d = resize_to(&translucent_photo_png(), width(48), Some(Format::Avif), &LIMITS).unwrap();
    let avif = Avif::read(&d.bytes);
    let alpha = avif.alpha_item().expect("an alpha item");
    assert_eq!(avif.ispe(alpha), (48, 32));
    assert_eq!(avif.ispe(avif.primary), (48, 32));
    assert!(!avif.data(alpha).is_empty());

    // An opaque RGBA original writes no alpha item.
    let mut img = decode(&translucent_photo_png()).to_rgba8();
    img.pixels_mut().for_each(|p| p[3] = 255);
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let d = resize_to(&png, width(48), Some(Format::Avif), &LIMITS).unwrap();
    assert_eq!(Avif::read(&d.bytes).alpha_item(), None);
}

#[test]
fn avif_carries_a_display_p3_profile_with_the_pixels_untouched() {
    let p3 = display_p3();
    assert!(super::encode::well_formed(&p3));
    let src = with_icc(PHOTO, &p3);
    let d = resize_to(&src, width(320), Some(Format::Avif), &LIMITS).unwrap();
    let avif = Avif::read(&d.bytes);
    let colr = avif.colr(avif.primary);
    let prof: Vec<&[u8]> =
        colr.iter().filter(|c| c.starts_with(b"prof")).map(|c| &c[4..]).collect();
    assert_eq!(prof, [&p3[..]], "the profile, byte for byte, on the primary item");
    assert_eq!(colr.len(), 1, "no nclx: BT.601 is in the AV1 sequence header");

    // The profile moved the image data; the offsets followed it: the colour item's AV1 data
    // is exactly what the same raster encodes to without a profile.
    let r = photo_raster(160);
    let with = Avif::read(&encode_avif(&r, Some(&p3)).unwrap());
    let without = Avif::read(&encode_avif(&r, None).unwrap());
    assert_eq!(with.data(with.primary), without.data(without.primary));
    assert!(without.colr(without.primary).iter().all(|c| !c.starts_with(b"prof")));

    // With alpha, the profile goes on the colour item only and the alpha data follows too.
    let rgba = Raster {
        width: r.width,
        height: r.height,
        layout: Layout::Rgba,
        pixels: r.pixels.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], p[0]]).collect(),
    };
    let with = Avif::read(&encode_avif(&rgba, Some(&p3)).unwrap());
    let without = Avif::read(&encode_avif(&rgba, None).unwrap());
    let (a, b) = (with.alpha_item().unwrap(), without.alpha_item().unwrap());
    assert_eq!(with.data(a), without.data(b));
    assert_eq!(with.data(with.primary), without.data(without.primary));
    assert!(with.colr(a).is_empty());

    // The WebP of the same original carries it too.
    let d = resize_to(&src, width(320), Some(Format::WebP), &LIMITS).unwrap();
    let mut reader = image::ImageReader::new(Cursor::new(&d.bytes));
    reader.set_format(image::ImageFormat::WebP);
    assert_eq!(reader.into_decoder().unwrap().icc_profile().unwrap(), Some(p3));
}

#[test]
fn avif_of_grey_gets_the_rgb_twin_of_its_grey_profile() {
    let grey_pixels =
        decode(PHOTO).resize(96, 96, image::imageops::FilterType::Triangle).to_luma8();
    let (w, h) = grey_pixels.dimensions();
    // A GRAY profile with sRGB's curve: header, then desc, wtpt and kTRC.
    let rgb = matrix_profile(2, "grey", [[0.0; 3]; 3], &srgb_curve());
    let mut grey = rgb.clone();
    grey[16..20].copy_from_slice(b"GRAY");
    // Rename rXYZ..bXYZ away and rTRC to kTRC: entries 2..5 are XYZ, 5 is rTRC.
    for (i, name) in [(2, b"cXY1"), (3, b"cXY2"), (4, b"cXY3"), (5, b"kTRC")] {
        let at = 132 + 12 * i;
        grey[at..at + 4].copy_from_slice(name);
    }
    let mut jpeg = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 95);
    enc.add_icc_profile(&grey).unwrap();
    enc.encode(grey_pixels.as_raw(), w as u16, h as u16, jpeg_encoder::ColorType::Luma).unwrap();

    let d = resize_to(&jpeg, width(64), Some(Format::Avif), &LIMITS).unwrap();
    let avif = Avif::read(&d.bytes);
    assert_eq!(avif.ispe(avif.primary), (64, 36));
    let colr = avif.colr(avif.primary);
    let prof = colr.iter().find(|c| c.starts_with(b"prof")).expect("a profile")[4..].to_vec();
    assert_eq!(&prof[16..20], b"RGB ", "an RGB profile for three-channel AV1");
    assert!(super::encode::well_formed(&prof));
    let tag = |sig: &[u8; 4]| {
        (0..be(&prof, 128, 4) as usize).map(|i| 132 + 12 * i).find(|&e| &prof[e..e + 4] == sig).map(
            |e| {
                let (at, len) = (be(&prof, e + 4, 4) as usize, be(&prof, e + 8, 4) as usize);
                prof[at..at + len].to_vec()
            },
        )
    };
    for trc in [b"rTRC", b"gTRC", b"bTRC"] {
        assert_eq!(tag(trc), Some(srgb_curve()), "the grey curve on every channel");
    }
    // The colorants add up to the D50 white point, so R=G=B renders as the grey did.
    let sum: Vec<i64> = (0..3)
        .map(|c| {
            [b"rXYZ", b"gXYZ", b"bXYZ"]
                .iter()
                .map(|s| be(&tag(s).unwrap(), 8 + 4 * c, 4) as i32 as i64)
                .sum()
        })
        .collect();
    let d50 = [0.9642f64, 1.0, 0.8249].map(|v| (v * 65536.0).round() as i64);
    for c in 0..3 {
        assert!((sum[c] - d50[c]).abs() <= 3, "{sum:?} vs {d50:?}");
    }

    // The same grey as WebP decodes grey.
    let d = resize_to(&jpeg, width(64), Some(Format::WebP), &LIMITS).unwrap();
    let img = decode(&d.bytes).to_rgb8();
    assert_eq!(img.dimensions(), (64, 36));
    assert!(img.pixels().all(|p| p[0].abs_diff(p[1]) <= 2 && p[1].abs_diff(p[2]) <= 2));
}

#[test]
fn webp_of_a_photograph_is_lossy_and_close_to_the_jpeg() {
    let d = resize_to(PHOTO, width(320), Some(Format::WebP), &LIMITS).unwrap();
    assert_eq!(&d.bytes[12..16], b"VP8 ", "lossy");
    let webp = decode(&d.bytes).to_rgb8();
    assert_eq!(webp.dimensions(), (320, 180));
    let png = resize_to(PHOTO, width(320), Some(Format::Png), &LIMITS).unwrap();
    let exact = decode(&png.bytes).to_rgb8();
    let mean_error = webp
        .as_raw()
        .iter()
        .zip(exact.as_raw())
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / exact.as_raw().len() as f64;
    assert!(mean_error < 4.0, "mean absolute error {mean_error}");
}

/// A 200x120 chart: four flat bars and axes on white, 6 colours.
fn chart_png() -> Vec<u8> {
    let mut img = image::RgbImage::from_pixel(200, 120, image::Rgb([255, 255, 255]));
    let bars = [[200, 40, 40], [40, 160, 60], [30, 90, 200], [240, 180, 20]];
    for (i, colour) in bars.iter().enumerate() {
        let (x0, top) = (20 + 45 * i as u32, 100 - 20 * (i as u32 + 1));
        for x in x0..x0 + 30 {
            for y in top..110 {
                img.put_pixel(x, y, image::Rgb(*colour));
            }
        }
    }
    for x in 10..195 {
        img.put_pixel(x, 110, image::Rgb([0, 0, 0]));
    }
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

#[test]
fn webp_of_a_png_graphic_is_lossless_when_that_is_smaller() {
    let chart = chart_png();
    let d = resize_to(&chart, width(200), Some(Format::WebP), &LIMITS).unwrap();
    assert_eq!(&d.bytes[12..16], b"VP8L", "lossless");
    assert_eq!(decode(&d.bytes).to_rgb8(), decode(&chart).to_rgb8(), "every pixel kept");
    // Smaller than the lossy encoding of the same raster.
    let r = Raster {
        width: 200,
        height: 120,
        layout: Layout::Rgb,
        pixels: decode(&chart).to_rgb8().into_raw(),
    };
    let lossy = encode_webp(&r, None, Format::Jpeg).unwrap();
    assert_eq!(&lossy[12..16], b"VP8 ");
    assert!(d.bytes.len() < lossy.len(), "{} vs lossy {}", d.bytes.len(), lossy.len());

    // A photograph saved as PNG stays lossy: thousands of colours, lossless not tried.
    let photo = resize_to(PHOTO, width(400), Some(Format::Png), &LIMITS).unwrap();
    let d = resize_to(&photo.bytes, width(400), Some(Format::WebP), &LIMITS).unwrap();
    assert_eq!(&d.bytes[12..16], b"VP8 ", "lossy");
}

#[test]
fn webp_keeps_alpha() {
    let png = translucent_photo_png();
    let d = resize_to(&png, width(48), Some(Format::WebP), &LIMITS).unwrap();
    let out = decode(&d.bytes);
    assert_eq!(out.dimensions(), (48, 32));
    let (src, out) = (decode(&png).to_rgba8(), out.to_rgba8());
    for (a, b) in src.pixels().zip(out.pixels()) {
        assert_eq!(a[3], b[3], "alpha is lossless");
    }
}

#[test]
fn few_colours_counts_up_to_its_limit() {
    let raster = |layout, pixels: Vec<u8>| Raster { width: 1, height: 1, layout, pixels };
    let grey: Vec<u8> = (0..=255).collect();
    assert!(few_colours(&raster(Layout::Luma, grey.clone()), 256));
    assert!(!few_colours(&raster(Layout::Luma, grey), 255));
    // Colours differing only in alpha are distinct.
    let rgba = vec![1, 2, 3, 0, 1, 2, 3, 255];
    assert!(!few_colours(&raster(Layout::Rgba, rgba.clone()), 1));
    assert!(few_colours(&raster(Layout::Rgba, rgba), 2));
    assert!(!few_colours(&photo_raster(200), super::webp::LOSSLESS_MAX_COLOURS));
}
