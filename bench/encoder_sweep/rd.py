"""Bytes at equal SSIM: for each benchmark job, our pipeline's raster (`resize SRC SIZE.png`)
encoded by each variant over a ladder of qualities, scored against the common reference
(bench/pipeline/quality.py), and the bytes interpolated (log bytes, linear in SSIM) at the
SSIM of sharp's output of the same job. A ratio below 1 means fewer bytes than sharp at equal
SSIM. Bytes and SSIM are deterministic; times are encode-only medians, single-threaded.

Variants (name: how):
  ravif-s6      ravif as the resizer calls it (speed 6, 8-bit, 4:4:4), via encoder-sweep
  rav1e-psnr    rav1e driven directly, Tune::Psnr instead of ravif's Tune::Psychovisual
  rav1e-psy     rav1e driven directly, Tune::Psychovisual (to check against ravif-s6)
  rav1e-420     rav1e directly, Tune::Psychovisual, 4:2:0
  aom-sN        libaom through Pillow's libavif (its wheel), speed N, one thread, 4:4:4
  webp-mN       libwebp, method N (for the WebP jobs); webp-mN-snsS-fF-shH also sets
                sns_strength S, filter_strength F, filter_sharpness H, -sy sharp YUV (any of them)

Run scripts/bench once first (sharp, Pillow, the originals).
Usage: python3 bench/encoder_sweep/rd.py avif|webp VARIANT...
"""
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRATCH = os.path.join(ROOT, "target", "bench")
OUT = os.path.join(ROOT, "target", "encoder-sweep", "rd")
PY = os.path.join(SCRATCH, "venv", "bin", "python")
SWEEP = os.path.join(ROOT, "target", "encoder-sweep", "release", "encoder-sweep")
TESTDATA = os.environ.get("TESTDATA", os.path.join(ROOT, "..", "shared", "testdata"))
SOURCES = [
    os.path.join(TESTDATA, "large.jpg"),
    os.path.join(SCRATCH, "camera_20mp_q97_444.jpg"),
    os.path.join(TESTDATA, "large_prog.jpg"),
    os.path.join(SCRATCH, "mid_2.4mp.jpg"),
    os.path.join(SCRATCH, "photo_4mp.png"),
]
LADDERS = {
    "ravif": [50, 54, 58, 62, 66, 70],
    "rav1e": [50, 54, 58, 62, 66, 70],
    "aom": [40, 45, 50, 55, 60, 65, 70],
    "webp": [72, 76, 80, 84, 88],
}

AOM = """
import sys, time
from PIL import Image
src, out, q, speed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
img = Image.open(src).convert("RGB"); img.load()
t = time.perf_counter()
img.save(out, "AVIF", quality=q, speed=speed, subsampling="4:4:4", max_threads=1, codec="aom")
print((time.perf_counter() - t) * 1e3)
"""


def encode(variant, raster, out, q):
    """Encodes RASTER with VARIANT at quality Q into OUT; returns encode ms."""
    kind, _, arg = variant.partition("-")
    if kind == "ravif":
        cmd = [SWEEP, raster, out, "avif", str(q), arg[1:], "1", "8"]
    elif kind == "rav1e":
        tune, chroma = {"psnr": ("psnr", "444"), "psy": ("psy", "444"), "420": ("psy", "420")}[arg]
        cmd = [SWEEP, raster, out, "rav1e", str(q), "6", tune, chroma]
    elif kind == "webp":
        cmd = [SWEEP, raster, out, "webp", str(q), arg[1:]]
    elif kind == "aom":
        return float(subprocess.run([PY, "-c", AOM, raster, out, str(q), arg[1:]], check=True, capture_output=True, text=True).stdout)
    else:
        raise SystemExit(f"unknown variant {variant}")
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["ms"]


def ssim(src, size, paths):
    out = subprocess.run([PY, os.path.join(ROOT, "bench", "pipeline", "quality.py"), src, size] + paths, check=True, capture_output=True, text=True).stdout
    return [q["ssim"] for q in json.loads(out)]


def at_ssim(points, target):
    """log-bytes interpolated at TARGET SSIM from (ssim, bytes) points; None outside."""
    points = sorted(points)
    for (s0, b0), (s1, b1) in zip(points, points[1:]):
        if s0 <= target <= s1 and s1 > s0:
            t = (target - s0) / (s1 - s0)
            return math.exp(math.log(b0) + t * (math.log(b1) - math.log(b0)))
    return None


def main():
    fmt, variants = sys.argv[1], sys.argv[2:]
    os.makedirs(OUT, exist_ok=True)
    print(f"| job | sharp bytes @ SSIM | " + " | ".join(f"{v}: bytes at sharp's SSIM (ratio), ms" for v in variants) + " |")
    print("|---|---|" + "---|" * len(variants))
    for src in SOURCES:
        name = os.path.splitext(os.path.basename(src))[0]
        for size in ("300x300", "1024x"):
            raster = os.path.join(OUT, f"{name}-{size}.png")
            subprocess.run([os.path.join(ROOT, "target", "release", "resize"), src, f"{size}.png", "-o", raster], check=True)
            ref = os.path.join(OUT, f"{name}-{size}-sharp.{fmt}")
            subprocess.run(["node", os.path.join(SCRATCH, "sharp_job.js"), src, size, ref, "1", "0", fmt], check=True, capture_output=True)
            sharp_bytes, (sharp_ssim,) = os.path.getsize(ref), ssim(src, size, [ref])
            cells = []
            for v in variants:
                paths, times = [], []
                for q in LADDERS[v.split("-")[0]]:
                    p = os.path.join(OUT, f"{name}-{size}-{v}-{q}.{fmt}")
                    times.append(encode(v, raster, p, q))
                    paths.append(p)
                scores = ssim(src, size, paths)
                b = at_ssim([(s, os.path.getsize(p)) for s, p in zip(scores, paths)], sharp_ssim)
                cell = "outside ladder" if b is None else f"{b:.0f} ({b / sharp_bytes:.3f})"
                cells.append(f"{cell}, {statistics.median(times):.0f}")
            print(f"| {name} {size} | {sharp_bytes} @ {sharp_ssim} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
