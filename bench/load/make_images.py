"""The worst-case originals of scripts/load and scripts/memory, generated, never committed.

Usage: make_images.py KIND WIDTH HEIGHT OUT
  jpeg   progressive, 4:4:4 (no chroma subsampling), quality 95: the sample photograph
         scaled up, with a little noise so it is not smoother than a real 50 MP photograph
  cmyk   the same, in CMYK (decoded by the image crate, not libjpeg-turbo)
  png16  16-bit RGBA (colour type 6, bit depth 16), written by hand (Pillow has no 16-bit
         RGBA mode): gradients with noise in the low bit of R and G, Sub-filtered
  gif    one frame, 256 colours (the photograph, web palette, no dithering)
Every file must stay within the resizer's MAX_SOURCE_BYTES (50 MB by default): the script
fails if it does not, since a larger one would be refused before it is decoded.
"""

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

MAX_SOURCE_BYTES = 50_000_000
PHOTO = Path(__file__).resolve().parents[2] / "samples" / "seeding.jpg"


def photo(width, height):
    with Image.open(PHOTO) as im:
        return im.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)


def noisy_photo(width, height, noise=12):
    rgb = np.asarray(photo(width, height), dtype=np.int16)
    rng = np.random.default_rng(1)
    for row in range(0, height, 512):  # a row band at a time: the noise in int16 is large
        band = rgb[row : row + 512]
        band += rng.integers(-noise, noise + 1, size=band.shape, dtype=np.int16)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def jpeg(width, height, out):
    img = noisy_photo(width, height)
    img.save(out, "JPEG", quality=95, progressive=True, subsampling=0, optimize=False)


def cmyk(width, height, out):
    img = noisy_photo(width, height, noise=6).convert("CMYK")  # 4 channels: less noise fits
    img.save(out, "JPEG", quality=95, progressive=True, subsampling=0, optimize=False)


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png16(width, height, out):
    rng = np.random.default_rng(2)
    x = (np.arange(width, dtype=np.uint32) * 65535 // max(width - 1, 1)).astype(np.uint16)
    compress = zlib.compressobj(6)
    idat = bytearray()
    for y in range(height):
        row = np.empty((width, 4), dtype=np.uint16)
        row[:, 0] = x
        row[:, 1] = np.uint16(y * 65535 // max(height - 1, 1))
        row[:, 2] = x[::-1]
        row[:, 3] = np.uint16(40000 + (y % 4096))
        row[:, :2] ^= rng.integers(0, 2, size=(width, 2), dtype=np.uint16)  # R, G: low bit
        raw = row.astype(">u2").tobytes()
        # Sub filter: each byte minus the same byte of the pixel before (8 bytes earlier).
        data = np.frombuffer(raw, dtype=np.uint8)
        sub = data.copy()
        sub[8:] = data[8:] - data[:-8]
        idat += compress.compress(b"\x01" + sub.tobytes())
    idat += compress.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    with open(out, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bytes(idat)))
        f.write(chunk(b"IEND", b""))


def gif(width, height, out):
    img = photo(width, height).convert("P", palette=Image.Palette.WEB, dither=Image.Dither.NONE)
    img.save(out, "GIF")


def main():
    kind, width, height, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    {"jpeg": jpeg, "cmyk": cmyk, "png16": png16, "gif": gif}[kind](width, height, out)
    size = Path(out).stat().st_size
    if size > MAX_SOURCE_BYTES:
        sys.exit(f"{out}: {size} bytes, more than MAX_SOURCE_BYTES ({MAX_SOURCE_BYTES})")
    with Image.open(out) as check:
        print(f"{out}: {kind} {check.size[0]}x{check.size[1]} {check.mode}, {size} bytes")


if __name__ == "__main__":
    main()
