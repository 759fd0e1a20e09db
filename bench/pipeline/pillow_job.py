"""One benchmark job with Pillow, as scripts/bench runs it: read SRC, draft() (libjpeg's DCT
scaling) for JPEG, auto-orient, Lanczos resize (cover-crop for WxH, one side otherwise,
never enlarging), JPEG q80 4:2:0 optimized or PNG, write OUT.

Usage: python pillow_job.py SRC SIZE OUT RUNS WARMUP
"""
import io
import json
import sys
import time

from PIL import Image, ImageOps


def target(size, w, h):
    tw, th = size.split("x")
    tw, th = (int(tw) if tw else None), (int(th) if th else None)
    if tw and th:
        return tw, th, True
    if tw:
        tw = min(tw, w)
        return tw, max(1, round(h * tw / w)), False
    th = min(th, h)
    return max(1, round(w * th / h)), th, False


def once(src, size, out):
    with open(src, "rb") as f:
        data = f.read()
    img = Image.open(io.BytesIO(data))
    fmt = img.format
    tw, th, cover = target(size, *img.size)
    if fmt == "JPEG":
        img.draft("RGB", (tw, th))
    img = ImageOps.exif_transpose(img)
    if cover:
        img = ImageOps.fit(img, (tw, th), Image.LANCZOS)
    else:
        img = img.resize(target(size, *img.size)[:2], Image.LANCZOS)
    buf = io.BytesIO()
    if fmt == "PNG":
        img.save(buf, "PNG")
    else:
        img.convert("RGB").save(buf, "JPEG", quality=80, subsampling=2, optimize=True)
    with open(out, "wb") as f:
        f.write(buf.getvalue())
    return len(buf.getvalue()), img.size


def main():
    src, size, out, runs, warmup = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        n, (w, h) = once(src, size, out)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    print(json.dumps({"times_ms": times, "bytes": n, "width": w, "height": h}))


if __name__ == "__main__":
    main()
