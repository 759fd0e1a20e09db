"""The benchmark's generated originals, made from the test photographs, never committed.

Usage: make_inputs.py KIND SRC OUT
  camera  a heavy camera JPEG: SRC (the 20 MP photograph) re-encoded at quality 97, 4:4:4
          (no chroma subsampling), baseline, with a 60 KB EXIF block as a camera writes one
          (make, model, date, exposure and a 56 KB maker note of seeded pseudo-random bytes):
          the case where entropy decoding dominates
  anim    a 480x270 animated GIF of 100 frames, 40 ms each, looping: a pan across SRC scaled
          to 1440 wide, each frame quantised to its own 256-colour palette (no dithering,
          so every frame is what a camera-to-GIF tool writes, not noise)
Both are deterministic: the same SRC gives the same bytes.
"""

import random
import sys

from PIL import Image, ImageOps


def camera(src, out):
    img = ImageOps.exif_transpose(Image.open(src)).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "Bench Camera Co."  # Make
    exif[0x0110] = "BC-1 Mark II"  # Model
    exif[0x0132] = "2026:01:02 03:04:05"  # DateTime
    exif[0x0112] = 1  # Orientation: as stored
    ifd = exif.get_ifd(0x8769)
    ifd[0x829A] = 1 / 250  # ExposureTime
    ifd[0x829D] = 8.0  # FNumber
    ifd[0x8827] = 200  # ISO
    ifd[0x9003] = "2026:01:02 03:04:05"  # DateTimeOriginal
    rng = random.Random(12)
    ifd[0x927C] = bytes(rng.getrandbits(8) for _ in range(56 * 1024))  # MakerNote
    data = exif.tobytes()
    img.save(out, "JPEG", quality=97, subsampling=0, exif=data)
    print(f"{out}: {img.size[0]}x{img.size[1]}, EXIF {len(data)} bytes")


def anim(src, out):
    img = ImageOps.exif_transpose(Image.open(src)).convert("RGB")
    wide = img.resize((1440, round(img.size[1] * 1440 / img.size[0])), Image.LANCZOS)
    frames = []
    top = (wide.size[1] - 270) // 2
    for i in range(100):
        left = round(i * (1440 - 480) / 99)
        frame = wide.crop((left, top, left + 480, top + 270))
        frames.append(frame.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0, optimize=False)
    print(f"{out}: 480x270, {len(frames)} frames")


if __name__ == "__main__":
    kind, src, out = sys.argv[1:4]
    {"camera": camera, "anim": anim}[kind](src, out)
