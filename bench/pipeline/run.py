"""The pipeline benchmark behind scripts/bench: ours vs sharp (libvips) vs Pillow, same jobs,
interleaved, one run. Writes the tables to stdout and into docs/BENCHMARKS.md.

Each measurement is a fresh process doing WARMUP untimed and RUNS timed repetitions of one
job (read, decode, resize, encode, write); rounds alternate implementations so drift on a
shared machine hits all of them alike. Peak RSS is the process's ru_maxrss (os.wait4).

The WebP and AVIF jobs (and the animated GIF's) run the same way: ours is bench_job with a
size segment naming the format (`1024x.avif`), sharp is `.webp()` / `.avif()` at its
defaults.
"""
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRATCH = os.path.join(ROOT, "target", "bench")
PY = os.path.join(SCRATCH, "venv", "bin", "python")
OURS = os.path.join(ROOT, "target", "release", "examples", "bench_job")
RESIZE = os.path.join(ROOT, "target", "release", "resize")
MISS = os.path.join(ROOT, "target", "release", "examples", "miss_load")
HERE = os.path.join(ROOT, "bench", "pipeline")
TESTDATA = os.environ.get("TESTDATA", os.path.join(ROOT, "..", "shared", "testdata"))


def run(cmd, **kw):
    """Runs cmd, returns (stdout, peak RSS in MB, wall seconds)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{cmd} failed: {err.decode()}")
    return out.decode(), usage.ru_maxrss / 1024, wall


def inputs():
    """The five originals: two from the test photographs, three made from them."""
    large, prog = os.path.join(TESTDATA, "large.jpg"), os.path.join(TESTDATA, "large_prog.jpg")
    for p in (large, prog):
        if not os.path.exists(p):
            raise SystemExit(f"missing {p} (set TESTDATA to the test photographs' folder)")
    mid, png = os.path.join(SCRATCH, "mid_2.4mp.jpg"), os.path.join(SCRATCH, "photo_4mp.png")
    if not os.path.exists(mid) or not os.path.exists(png):
        make = (
            "from PIL import Image, ImageOps\n"
            f"a = ImageOps.exif_transpose(Image.open({prog!r})).convert('RGB')\n"
            f"a.resize((2048, 1152), Image.LANCZOS).save({mid!r}, 'JPEG', quality=90, subsampling=2)\n"
            f"b = ImageOps.exif_transpose(Image.open({large!r})).convert('RGB')\n"
            f"b.resize((2667, 1500), Image.LANCZOS).save({png!r}, 'PNG')\n"
        )
        subprocess.run([PY, "-c", make], check=True)
    camera = os.path.join(SCRATCH, "camera_20mp_q97_444.jpg")
    if not os.path.exists(camera):
        subprocess.run([PY, os.path.join(HERE, "make_inputs.py"), "camera", large, camera], check=True)
    return [
        ("20 MP baseline JPEG", large),
        ("20 MP camera JPEG (q97 4:4:4, 58 KB EXIF)", camera),
        ("16 MP progressive JPEG", prog),
        ("2.4 MP JPEG", mid),
        ("4 MP PNG", png),
    ]


def job_cmd(impl, src, size, out, runs, warmup):
    args = [src, size, out, str(runs), str(warmup)]
    if impl == "ours":
        return [OURS] + args
    if impl == "sharp":
        return ["node", os.path.join(SCRATCH, "sharp_job.js")] + args
    return [PY, os.path.join(HERE, "pillow_job.py")] + args


def animation():
    """The animated original: a 100-frame pan across the 16 MP photograph."""
    anim = os.path.join(SCRATCH, "pan_480x270_100f.gif")
    if not os.path.exists(anim):
        prog = os.path.join(TESTDATA, "large_prog.jpg")
        subprocess.run([PY, os.path.join(HERE, "make_inputs.py"), "anim", prog, anim], check=True)
    return ("animated GIF 480x270, 100 frames", anim)


def format_jobs(files, runs, warmup, rounds):
    """WebP and AVIF for every original at both sizes, AVIF and WebP at 2048x for the 20 MP
    photograph, and the animation to 200x as GIF and WebP: ours and sharp, interleaved."""
    jobs = [(label, src, size, fmt, []) for label, src in files for size in ("300x300", "1024x") for fmt in ("webp", "avif")]
    jobs += [(files[0][0], files[0][1], "2048x", fmt, []) for fmt in ("webp", "avif")]
    anim_label, anim = animation()
    jobs += [(anim_label, anim, "200x", fmt, []) for fmt in ("gif", "webp")]
    # Both decode the next frames on a second thread while encoding (libvips: its
    # write-behind thread; ours: the frame thread), which a one-vCPU Lambda cannot use: the
    # same job with both pinned to one CPU.
    jobs += [(anim_label + ", both on one CPU", anim, "200x", "webp", ["taskset", "-c", "0"])]
    results = {}
    for r in range(rounds):
        for label, src, size, fmt, pin in jobs:
            for impl in (["ours", "sharp"] if r % 2 == 0 else ["sharp", "ours"]):
                tag = "-1cpu" if pin else ""
                out_path = os.path.join(SCRATCH, f"fmt-{impl}-{size}-{os.path.basename(src)}{tag}.{fmt}")
                if impl == "ours":
                    cmd = pin + [OURS, src, f"{size}.{fmt}", out_path, str(runs), str(warmup)]
                else:
                    cmd = pin + ["node", os.path.join(SCRATCH, "sharp_job.js"), src, size, out_path, str(runs), str(warmup), fmt]
                out, rss, _ = run(cmd)
                times = json.loads(out)["times_ms"]
                entry = results.setdefault((label, size, fmt, impl), {"times": [], "rss": 0, "out": out_path, "src": src})
                entry["times"] += times
                entry["rss"] = max(entry["rss"], rss)
    lines = [
        "WebP and AVIF (ours: bench_job with `SIZE.FMT`; sharp: `.webp()` / `.avif()` at its defaults; both in-process after warm-up, one thread; the animation read by sharp with `animated: true`, and both then decode frames on a second thread while encoding: libvips its write-behind thread, ours its frame thread; the last row pins both to one CPU, as a one-vCPU Lambda runs them):",
        "",
        "| original | size | format | ours ms | sharp ms | ours / sharp | peak RSS ours / sharp MB | RSS ours / sharp | bytes ours / sharp | SSIM ours / sharp | PSNR ours / sharp dB | frames ours / sharp |",
        "|---|---|---|---:|---:|---:|---|---:|---|---|---|---|",
    ]
    met = {"time": [], "rss": [], "bytes": []}
    for label, src, size, fmt, _ in jobs:
        o, s = results[(label, size, fmt, "ours")], results[(label, size, fmt, "sharp")]
        qo, qs = json.loads(run([PY, os.path.join(HERE, "quality.py"), src, size, o["out"], s["out"]])[0])
        mo, ms = statistics.median(o["times"]), statistics.median(s["times"])
        bo, bs = os.path.getsize(o["out"]), os.path.getsize(s["out"])
        job = f"{label} -> {size} {fmt}"
        met["time"].append((job, mo / ms <= 0.8))
        met["rss"].append((job, o["rss"] / s["rss"] <= 0.5))
        met["bytes"].append((job, bo <= bs and qo["ssim"] >= qs["ssim"]))
        lines.append(
            f"| {label} | {size} | {fmt} | {fmt_ms(mo)} | {fmt_ms(ms)} | {mo / ms:.2f} "
            f"| {o['rss']:.0f} / {s['rss']:.0f} | {o['rss'] / s['rss']:.2f} | {bo} / {bs} "
            f"| {qo['ssim']} / {qs['ssim']} | {qo['psnr']} / {qs['psnr']} | {qo['frames']} / {qs['frames']} |"
        )
    lines.append("")
    for key, what in (("time", "median time <= 0.8 of sharp's"), ("rss", "peak RSS <= 0.5 of sharp's"), ("bytes", "bytes <= sharp's at equal or better SSIM")):
        missed = [job for job, ok in met[key] if not ok]
        lines.append(f"- {what}: {len(met[key]) - len(missed)} of {len(met[key])} jobs" + (f"; not: {', '.join(missed)}" if missed else ""))
    return lines


def fmt_ms(x):
    return f"{x:.1f}"


def fmt(x, digits=1):
    return f"{x:.{digits}f}"


def main():
    runs, warmup, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    impls = ["ours", "sharp", "pillow"]
    files = inputs()
    results = {}
    for r in range(rounds):
        for label, src in files:
            ext = "png" if src.endswith(".png") else "jpg"
            for size in ("300x300", "1024x"):
                order = impls if r % 2 == 0 else list(reversed(impls))
                for impl in order:
                    out_path = os.path.join(SCRATCH, f"out-{impl}-{size}-{os.path.basename(src)}.{ext}")
                    out, rss, _ = run(job_cmd(impl, src, size, out_path, runs, warmup))
                    data = json.loads(out)
                    entry = results.setdefault((label, size, impl), {"times": [], "rss": 0, "out": out_path})
                    entry["times"] += data["times_ms"]
                    entry["rss"] = max(entry["rss"], rss)
                    entry["bytes"], entry["dims"] = data["bytes"], (data["width"], data["height"])

    lines = []
    lines.append("| job | size | ours ms | sharp ms | Pillow ms | ours / sharp | spread ours (p10-p90) | spread sharp | peak RSS ours / sharp / Pillow MB | bytes ours / sharp | PSNR ours / sharp dB | SSIM ours / sharp |")
    lines.append("|---|---|---:|---:|---:|---:|---|---|---|---|---|---|")
    summary = {}
    for label, src in files:
        for size in ("300x300", "1024x"):
            e = {i: results[(label, size, i)] for i in impls}
            med = {i: statistics.median(e[i]["times"]) for i in impls}
            q = lambda t: statistics.quantiles(t, n=10)
            quality_out, _, _ = run([PY, os.path.join(HERE, "quality.py"), src, size, e["ours"]["out"], e["sharp"]["out"]])
            qo, qs = json.loads(quality_out)
            ratio = med["ours"] / med["sharp"]
            summary[(label, size)] = (ratio, e)
            lines.append(
                f"| {label} | {size} | {fmt(med['ours'])} | {fmt(med['sharp'])} | {fmt(med['pillow'])} | {ratio:.2f} "
                f"| {fmt(q(e['ours']['times'])[0])}-{fmt(q(e['ours']['times'])[-1])} "
                f"| {fmt(q(e['sharp']['times'])[0])}-{fmt(q(e['sharp']['times'])[-1])} "
                f"| {fmt(e['ours']['rss'], 0)} / {fmt(e['sharp']['rss'], 0)} / {fmt(e['pillow']['rss'], 0)} "
                f"| {e['ours']['bytes']} / {e['sharp']['bytes']} "
                f"| {qo['psnr']} / {qs['psnr']} | {qo['ssim']} / {qs['ssim']} |"
            )

    large = files[0][1]
    floor_out, _, _ = run([OURS, "--decode-only-scaled", large, str(runs * rounds), str(warmup)])
    floor = statistics.median(json.loads(floor_out)["times_ms"])
    big = statistics.median(results[(files[0][0], "300x300", "ours")]["times"])

    # The 20 MP photograph and the 2.4 MP one, by label (the list has grown since).
    mid = next(f for f in files if f[0] == "2.4 MP JPEG")
    start_med = {}
    thumb = os.path.join(SCRATCH, "first.jpg")
    for label, src in (files[0], mid):
        starts = {"ours": [], "node+sharp": []}
        for _ in range(max(5, rounds * 3)):
            starts["ours"].append(run([RESIZE, src, "300x300", "-o", thumb])[2] * 1e3)
            starts["node+sharp"].append(run(job_cmd("sharp", src, "300x300", thumb, 1, 0))[2] * 1e3)
        start_med[label] = {k: statistics.median(v) for k, v in starts.items()}
    n_starts = max(5, rounds * 3)

    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "resizer", "--bin", "resizer"], check=True, cwd=ROOT)
    stripped = os.path.join(SCRATCH, "resizer-stripped")
    subprocess.run(["strip", "-o", stripped, os.path.join(ROOT, "target", "release", "resizer")], check=True)
    binary_mb = os.path.getsize(stripped) / 1e6

    loads = {}
    for label, src in (mid, files[0]):
        for c in (1, 8):
            out, _, _ = run([MISS, src, "300x300", "40", str(c)])
            # Its last line: the functions before it write their metrics to stdout (EMF).
            loads[(label, c)] = json.loads(out.strip().splitlines()[-1])

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    versions = subprocess.run(["node", "-e", "const s=require('sharp');console.log(s.versions.sharp+' libvips '+s.versions.vips)"], capture_output=True, text=True, cwd=SCRATCH).stdout.strip()
    pillow = subprocess.run([PY, "-c", "import PIL; print(PIL.__version__)"], capture_output=True, text=True).stdout.strip()
    head = (
        f"Measured {datetime.date.today()} on {cpu} ({os.cpu_count()} CPUs, shared), `scripts/bench {runs} {warmup} {rounds}`: "
        f"{rounds} interleaved rounds x {runs} timed runs after {warmup} warm-up, one thread each (the animations: two, see the WebP and AVIF table) "
        f"(sharp {versions}, concurrency 1, cache off; Pillow {pillow} with draft()). Times are medians per job: read file, decode, resize, encode (JPEG q80 4:2:0 / PNG), write file."
    )
    extra = [
        "",
        f"- Floor: libjpeg-turbo decoding the 20 MP JPEG at 1/8 scale, nothing else: {fmt(floor)} ms; our whole 20 MP -> 300x300 job: {fmt(big)} ms ({big / floor:.2f}x the floor).",
        f"- Stripped Lambda binary (`resizer`, x86_64, release): {binary_mb:.1f} MB.",
        "",
        f"Process start to first thumbnail (-> 300x300, spawn to exit, median of {n_starts}):",
        "",
        "| original | `resize` ms | node + sharp ms | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, m in start_med.items():
        extra.append(f"| {label} | {fmt(m['ours'])} | {fmt(m['node+sharp'])} | {m['ours'] / m['node+sharp']:.2f} |")
    extra += [
        "",
        "Full miss on the devserver (-> 300x300, request to final 200 through both 307s, embedded store on loopback, 40 distinct originals, client in the same process):",
        "",
        "| original | concurrency | p50 ms | p99 ms | misses/s | pure pipeline ms | p50 / pipeline |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (label, c), l in loads.items():
        pure = statistics.median(results[(label, "300x300", "ours")]["times"])
        extra.append(f"| {label} | {c} | {l['p50_ms']} | {l['p99_ms']} | {l['misses_per_sec']} | {fmt(pure)} | {l['p50_ms'] / pure:.2f} |")
    extra += [""] + format_jobs(files, runs, warmup, rounds)
    text = head + "\n\n" + "\n".join(lines) + "\n" + "\n".join(extra) + "\n"
    print(text)
    doc = os.path.join(ROOT, "docs", "BENCHMARKS.md")
    body = open(doc).read()
    begin, end = "<!-- pipeline:begin -->", "<!-- pipeline:end -->"
    if begin in body:
        body = re.sub(re.escape(begin) + ".*?" + re.escape(end), begin + "\n" + text + end, body, flags=re.S)
        open(doc, "w").write(body)
        print(f"(written to {doc})")


if __name__ == "__main__":
    main()
