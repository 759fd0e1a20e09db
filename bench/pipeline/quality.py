"""PSNR and SSIM of a derivative against a common high-quality downscale: the original
decoded in full (no DCT scaling), auto-oriented, resized with Pillow's Lanczos in one step
(cover-cropped for WxH). Usage: python quality.py ORIGINAL SIZE DERIVATIVE...
Prints JSON: [{"psnr": dB, "ssim": x, "frames": n}, ...] in argument order. An animation is
scored on its first frame; frames is how many it has. AVIF is read by Pillow's AVIF plugin
(libavif, in Pillow's wheels).
"""
import json
import sys

import numpy as np
from PIL import Image, ImageOps


def reference(path, size, shape):
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    h, w = shape
    tw, th = size.split("x")
    if tw and th:
        return ImageOps.fit(img, (w, h), Image.LANCZOS)
    return img.resize((w, h), Image.LANCZOS)


def gaussian(sigma=1.5, radius=5):
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x * x) / (2 * sigma * sigma))
    return k / k.sum()


def blur(a, k):
    a = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, a)
    return np.apply_along_axis(lambda c: np.convolve(c, k, mode="valid"), 0, a)


def ssim(x, y):
    """SSIM (Wang et al. 2004) on luma, 11x11 Gaussian window, sigma 1.5."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = gaussian()
    mx, my = blur(x, k), blur(y, k)
    sxx = blur(x * x, k) - mx * mx
    syy = blur(y * y, k) - my * my
    sxy = blur(x * y, k) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def luma(rgb):
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def main():
    original, size, derivatives = sys.argv[1], sys.argv[2], sys.argv[3:]
    results = []
    for path in derivatives:
        img = Image.open(path)
        frames = getattr(img, "n_frames", 1)
        out = np.asarray(img.convert("RGB"), dtype=np.float64)
        ref = np.asarray(reference(original, size, out.shape[:2]), dtype=np.float64)
        mse = float(((out - ref) ** 2).mean())
        psnr = float("inf") if mse == 0 else 10 * np.log10(255 * 255 / mse)
        results.append({"psnr": round(psnr, 2), "ssim": round(ssim(luma(out), luma(ref)), 4), "frames": frames})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
