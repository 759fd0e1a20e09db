//! Resize geometry: output size for a requested [`Size`], and how small a JPEG may be decoded
//! (DCT scaling) while still covering that output. Pure arithmetic, property-tested.

use crate::key::Size;

/// The output's width and height for a source of `src_w` x `src_h` (already in display
/// orientation).
///
/// - `WxH`: exactly W x H (the source covers the box and the overflow is centre-cropped).
/// - `Wx` / `xH`: the aspect ratio is kept, rounded to the nearest pixel (at least 1), and
///   never larger than the source: a request wider than the original gets the original size.
pub fn output_size(src_w: u32, src_h: u32, size: Size) -> (u32, u32) {
    match size {
        Size::Box { width, height } => (width, height),
        Size::Width(w) if w >= src_w => (src_w, src_h),
        Size::Width(w) => (w, scale_side(src_h, w, src_w)),
        Size::Height(h) if h >= src_h => (src_w, src_h),
        Size::Height(h) => (scale_side(src_w, h, src_h), h),
    }
}

/// `side * num / den`, rounded half up, at least 1.
fn scale_side(side: u32, num: u32, den: u32) -> u32 {
    let scaled = (u64::from(side) * u64::from(num) * 2 + u64::from(den)) / (u64::from(den) * 2);
    scaled.clamp(1, u64::from(u32::MAX)) as u32
}

/// The smallest source dimensions (display orientation) from which `size` can be produced
/// without upscaling anything the original has: the cover box for `WxH`, the output itself
/// for `Wx`/`xH`. Never larger than the source.
pub fn required_source_size(src_w: u32, src_h: u32, size: Size) -> (u32, u32) {
    match size {
        Size::Box { width, height } => {
            // scale = max(W/src_w, H/src_h); the covering source is src * scale, rounded up.
            let (w, h) = (u64::from(width), u64::from(height));
            let (sw, sh) = (u64::from(src_w), u64::from(src_h));
            let (need_w, need_h) = if w * sh >= h * sw {
                (w, (sh * w).div_ceil(sw))
            } else {
                ((sw * h).div_ceil(sh), h)
            };
            (need_w.min(sw) as u32, need_h.min(sh) as u32)
        }
        other => output_size(src_w, src_h, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_size() -> impl Strategy<Value = Size> {
        prop_oneof![
            (1u32..=4096, 1u32..=4096).prop_map(|(width, height)| Size::Box { width, height }),
            (1u32..=4096).prop_map(Size::Width),
            (1u32..=4096).prop_map(Size::Height),
        ]
    }

    proptest! {
        #[test]
        fn output_is_never_empty_and_box_is_exact(sw in 1u32..=20_000, sh in 1u32..=20_000, size in any_size()) {
            let (w, h) = output_size(sw, sh, size);
            prop_assert!(w >= 1 && h >= 1);
            if let Size::Box { width, height } = size {
                prop_assert_eq!((w, h), (width, height));
            }
        }

        #[test]
        fn one_sided_sizes_never_upscale_and_keep_aspect(sw in 1u32..=20_000, sh in 1u32..=20_000, n in 1u32..=4096, by_width: bool) {
            let size = if by_width { Size::Width(n) } else { Size::Height(n) };
            let (w, h) = output_size(sw, sh, size);
            prop_assert!(w <= sw && h <= sh, "{w}x{h} from {sw}x{sh}");
            // Aspect within one pixel: the derived side is the exact ratio rounded (or clamped to 1).
            if by_width {
                let exact = f64::from(sh) * f64::from(w) / f64::from(sw);
                prop_assert!((f64::from(h) - exact).abs() <= 1.0 || h == 1, "{w}x{h} from {sw}x{sh}");
                prop_assert_eq!(w, n.min(sw));
            } else {
                let exact = f64::from(sw) * f64::from(h) / f64::from(sh);
                prop_assert!((f64::from(w) - exact).abs() <= 1.0 || w == 1, "{w}x{h} from {sw}x{sh}");
                prop_assert_eq!(h, n.min(sh));
            }
        }

        #[test]
        fn required_source_covers_the_output_and_fits_the_source(sw in 1u32..=20_000, sh in 1u32..=20_000, size in any_size()) {
            let (rw, rh) = required_source_size(sw, sh, size);
            prop_assert!(rw <= sw && rh <= sh);
            let (ow, oh) = output_size(sw, sh, size);
            // It covers the output on every side, except where only upscaling could: there it
            // is the whole source side.
            prop_assert!(rw >= ow.min(sw) && rh >= oh.min(sh), "{rw}x{rh} for {ow}x{oh} from {sw}x{sh}");
            if let Size::Box { width, height } = size {
                if rw < sw && rh < sh {
                    prop_assert!(rw >= width && rh >= height);
                    // And it keeps the source's aspect ratio within one pixel on the derived side.
                    let exact_h = f64::from(sh) * f64::from(rw) / f64::from(sw);
                    let exact_w = f64::from(sw) * f64::from(rh) / f64::from(sh);
                    prop_assert!((f64::from(rh) - exact_h).abs() <= 1.0 || (f64::from(rw) - exact_w).abs() <= 1.0);
                }
            }
        }
    }

    #[test]
    fn rounding_regressions() {
        // 3:2 landscape to 300 wide is exactly 200 high.
        assert_eq!(output_size(6000, 4000, Size::Width(300)), (300, 200));
        // Half a pixel rounds up: 999 * 100 / 1000 = 99.9 -> 100; 5 * 1 / 2 = 2.5 -> 3.
        assert_eq!(output_size(1000, 999, Size::Width(100)), (100, 100));
        assert_eq!(output_size(2, 5, Size::Width(1)), (1, 3));
        // A panorama asked for a tiny width keeps at least one pixel of height.
        assert_eq!(output_size(10_000, 10, Size::Width(10)), (10, 1));
        // Never upscale one-sided requests.
        assert_eq!(output_size(640, 480, Size::Width(4096)), (640, 480));
        assert_eq!(output_size(640, 480, Size::Height(480)), (640, 480));
        // Boxes may upscale: they promise exact dimensions.
        assert_eq!(output_size(10, 10, Size::Box { width: 300, height: 300 }), (300, 300));
    }

    #[test]
    fn required_source_for_cover_crop() {
        // 5312x2988 into 300x300: height is the tight side, 300 high means 534 wide (533.3 up).
        assert_eq!(
            required_source_size(5312, 2988, Size::Box { width: 300, height: 300 }),
            (534, 300)
        );
        // Portrait into a landscape box: width is the tight side.
        assert_eq!(
            required_source_size(1000, 2000, Size::Box { width: 400, height: 100 }),
            (400, 800)
        );
        // Upscaling box: the whole source.
        assert_eq!(required_source_size(10, 20, Size::Box { width: 300, height: 300 }), (10, 20));
    }
}
