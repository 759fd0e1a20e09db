"""End-to-end check of ICC handling with independent tools: Pillow (libavif, libwebp,
libjpeg) decodes our AVIF, WebP and JPEG of a Display P3 photograph and lcms shows them in
sRGB through the profile they carry. The profile is built here (Display P3 colorants adapted
to D50, sRGB's curve, ICC v4), the same one the resizer's unit tests build; the photograph is
the 16 MP test photograph, its saturation doubled so its colours leave sRGB.

Usage: target/bench/venv/bin/python bench/pipeline/icc_check.py target/release/resize
Prints, per format: whether the profile came back byte for byte, and the mean error against
the original shown in sRGB, through the profile and ignoring it.
"""
import io, os, struct, subprocess, sys
import numpy as np
from PIL import Image, ImageCms, ImageOps

def s15(v): return struct.pack(">i", round(v * 65536))
def xyz(c): return b"XYZ \0\0\0\0" + b"".join(s15(v) for v in c)
def para():
    return b"para\0\0\0\0\0\x03\0\0" + b"".join(s15(v) for v in [2.4, 1/1.055, 0.055/1.055, 1/12.92, 0.04045])
def matrix_profile(desc_text, col, curve):
    text = desc_text.encode("utf-16-be")
    desc = b"mluc\0\0\0\0\0\0\0\x01\0\0\0\x0cenUS" + struct.pack(">II", len(text), 28) + text
    d50 = [0.9642, 1.0, 0.8249]
    tags = [(b"desc", desc), (b"wtpt", xyz(d50)), (b"rXYZ", xyz(col[0])), (b"gXYZ", xyz(col[1])), (b"bXYZ", xyz(col[2])), (b"rTRC", curve)]
    count = len(tags) + 2
    start = 128 + 4 + 12 * count
    table, data = b"", b""
    for sig, body in tags:
        data += b"\0" * (-len(data) % 4)
        at = start + len(data)
        table += sig + struct.pack(">II", at, len(body))
        data += body
    table += b"gTRC" + struct.pack(">II", at, len(curve)) + b"bTRC" + struct.pack(">II", at, len(curve))
    h = bytearray(128); h[8] = 4; h[12:24] = b"mntrRGB XYZ "; h[36:40] = b"acsp"
    h[68:80] = b"".join(s15(v) for v in d50)
    p = bytes(h) + struct.pack(">I", count) + table + data
    return struct.pack(">I", len(p)) + p[4:]

P3 = [[0.5151, 0.2412, -0.0011], [0.2920, 0.6922, 0.0419], [0.1571, 0.0666, 0.7841]]
p3 = matrix_profile("Display P3", P3, para())
resize = sys.argv[1]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "target", "bench")
os.makedirs(OUT, exist_ok=True)
src = Image.open(os.path.join(os.environ.get("TESTDATA", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "testdata")), "large_prog.jpg")).convert("RGB").resize((1024, 576), Image.LANCZOS)
# Saturate: treat the photo's values as P3 and push saturation so colours lie outside sRGB.
a = np.asarray(src, dtype=np.float64); m = a.mean(axis=2, keepdims=True)
a = np.clip(m + (a - m) * 2.0, 0, 255).astype(np.uint8)
Image.fromarray(a).save(OUT + "/p3.jpg", "JPEG", quality=95, icc_profile=p3)
for fmt in ("avif", "webp", "jpeg"):
    subprocess.run([resize, OUT + "/p3.jpg", f"512x.{fmt}", "-o", OUT + f"/out.{fmt}"], check=True)
prof_p3 = ImageCms.ImageCmsProfile(io.BytesIO(p3))  # lcms parses it
print("lcms reads the profile:", ImageCms.getProfileDescription(prof_p3).strip())
srgb = ImageCms.createProfile("sRGB")
ref = Image.open(OUT + "/p3.jpg").resize((512, 288), Image.LANCZOS)
ref_srgb = np.asarray(ImageCms.profileToProfile(ref, prof_p3, srgb, outputMode="RGB"), dtype=np.float64)
for fmt in ("avif", "webp", "jpeg"):
    im = Image.open(OUT + f"/out.{fmt}")
    icc = im.info.get("icc_profile")
    print(fmt, im.size, "profile carried byte for byte:", icc == p3)
    managed = np.asarray(ImageCms.profileToProfile(im.convert("RGB"), ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb, outputMode="RGB"), dtype=np.float64)
    unmanaged = np.asarray(im.convert("RGB"), dtype=np.float64)
    print(f"  mean |error| vs the original shown in sRGB: through its profile {np.abs(managed - ref_srgb).mean():.2f}, ignoring it {np.abs(unmanaged - ref_srgb).mean():.2f}")
