#!/usr/bin/env bash
# The sweep behind the AVIF and WebP settings: for each benchmark original and size, our
# pipeline's own raster (`resize SRC SIZE.png`), encoded at each setting, against sharp's
# `.avif()` / `.webp()` output of the same job, all scored by bench/pipeline/quality.py.
# Run scripts/bench once first (it installs sharp and Pillow and makes the originals).
# Usage: bench/encoder_sweep/sweep.sh avif "Q SPEED THREADS DEPTH;..."
#        bench/encoder_sweep/sweep.sh webp "Q METHOD;..."
# Prints per job: sharp's bytes and SSIM, then each setting's bytes, SSIM and encode ms.
set -euo pipefail
cd "$(dirname "$0")/../.."
kind=$1
IFS=';' read -ra settings <<< "$2"
scratch=target/bench
out=target/encoder-sweep/out
mkdir -p "$out"
CARGO_TARGET_DIR=target/encoder-sweep cargo build --release -q --manifest-path bench/encoder_sweep/Cargo.toml
sweep=target/encoder-sweep/release/encoder-sweep
testdata=${TESTDATA:-../shared/testdata}
for src in "$testdata/large.jpg" "$scratch/camera_20mp_q97_444.jpg" "$testdata/large_prog.jpg" "$scratch/mid_2.4mp.jpg" "$scratch/photo_4mp.png"; do
  name=$(basename "${src%.*}")
  for size in 300x300 1024x; do
    target/release/resize "$src" "$size.png" -o "$out/$name-$size.png"
    node "$scratch/sharp_job.js" "$src" "$size" "$out/$name-$size-sharp.$kind" 1 0 "$kind" >/dev/null
    files=("$out/$name-$size-sharp.$kind")
    labels=("sharp")
    for s in "${settings[@]}"; do
      f="$out/$name-$size-${s// /_}.$kind"
      # shellcheck disable=SC2086
      r=$("$sweep" "$out/$name-$size.png" "$f" "$kind" $s)
      files+=("$f")
      labels+=("$s ($(echo "$r" | sed 's/.*"ms": \([0-9.]*\).*/\1/') ms)")
    done
    "$scratch/venv/bin/python" bench/pipeline/quality.py "$src" "$size" "${files[@]}" |
      python3 -c '
import json, os, sys
ssim = [q["ssim"] for q in json.load(sys.stdin)]
n = (len(sys.argv) - 1) // 2
labels, files = sys.argv[1:n + 1], sys.argv[n + 1:]
print(" | ".join(f"{l}: {os.path.getsize(f)} B {s}" for l, f, s in zip(labels, files, ssim)))
' "${labels[@]}" "${files[@]}" | sed "s|^|$name $size: |"
  done
done
