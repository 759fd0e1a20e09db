#!/usr/bin/env python3
"""Cost per million resizes and per million hits, from the benchmark's measured pipeline
times (docs/BENCHMARKS.md, written by scripts/bench) and template.yaml's memory size.

    python3 deploy/cost.py [--memory-mb 1769] [--s3-wait-ms 30] [--arch x86_64|arm64]

Prices are assumptions, stated below with their date: us-east-1 list prices, no free tier,
no savings plans, first pricing tier. Change PRICES when they change.
"""
import argparse
import pathlib
import re

PRICES_DATE = "2026-11-21 (us-east-1 list prices as known to the authors; not fetched)"
PRICES = {
    "lambda_request": 0.20 / 1e6,  # per invocation
    "lambda_gb_s": {"x86_64": 0.0000166667, "arm64": 0.0000133334},
    "http_api_request": 1.00 / 1e6,  # first 300 M per month
    "s3_get": 0.0004 / 1000,  # GET/HEAD (website reads included)
    "s3_put": 0.005 / 1000,  # PUT/POST/LIST
    "cloudfront_https_request": 0.0100 / 10000,  # North America / Europe
    "cloudfront_function": 0.10 / 1e6,
    "cloudfront_transfer_gb": 0.085,  # first 10 TB to the internet
}

ROOT = pathlib.Path(__file__).resolve().parent.parent


def measured():
    """(job, size, ours ms, our output bytes) rows from the pipeline table."""
    text = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    block = text.split("<!-- pipeline:begin -->")[1].split("<!-- pipeline:end -->")[0]
    header = next(l for l in block.splitlines() if l.startswith("| job"))
    measured_on = block.strip().splitlines()[0]
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = []
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(columns) or not re.match(r"^[0-9.]+$", cells[2]):
            continue
        row = dict(zip(columns, cells))
        rows.append((row["job"], row["size"], float(row["ours ms"]),
                     int(row["bytes ours / sharp"].split("/")[0])))
    return measured_on, rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-mb", type=int, default=1769)
    parser.add_argument("--s3-wait-ms", type=float, default=30.0,
                        help="assumed time the resizer waits on S3 per miss (HEAD, GET, PUT)")
    parser.add_argument("--arch", choices=["x86_64", "arm64"], default="x86_64")
    args = parser.parse_args()
    p = PRICES
    gb = args.memory_mb / 1024
    measured_on, rows = measured()
    # Below 1769 MB Lambda gives a proportional share of one vCPU: the CPU part stretches.
    cpu_factor = max(1.0, 1769 / args.memory_mb)
    print(f"Prices: {PRICES_DATE}. Memory {args.memory_mb} MB, {args.arch}, "
          f"assumed S3 wait {args.s3_wait_ms:g} ms per miss.")
    print(f"Pipeline times: {measured_on.split(':')[0]}.")
    print()
    print("| original -> size | pipeline ms | billed ms | Lambda $/M | miss $/M, redirect | miss $/M, failover | hit $/M |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for job, size, ms, out_bytes in rows:
        billed = ms * cpu_factor + args.s3_wait_ms
        lambda_cost = 1e6 * (p["lambda_request"] + gb * billed / 1000 * p["lambda_gb_s"][args.arch])
        transfer = 1e6 * out_bytes / 1e9 * p["cloudfront_transfer_gb"]
        # Redirect: 3 viewer requests (sized 307, /resize 307, sized 200), the path guard on
        # each, one API call, S3 website 404 + HEAD + GET original + PUT + the final website
        # GET, and the derivative's bytes out.
        redirect = (lambda_cost
                    + 1e6 * (3 * p["cloudfront_https_request"] + 3 * p["cloudfront_function"]
                             + p["http_api_request"] + 4 * p["s3_get"] + p["s3_put"])
                    + transfer)
        # Failover: 1 viewer request, the guard once, the bucket's 404 + HEAD + GET original
        # + PUT; the function URL itself costs nothing beyond the invocation, and origin
        # fetches are not billed as CloudFront requests.
        failover = (lambda_cost
                    + 1e6 * (p["cloudfront_https_request"] + p["cloudfront_function"]
                             + 3 * p["s3_get"] + p["s3_put"])
                    + transfer)
        # A hit served from CloudFront's cache: one request, the guard, the bytes.
        hit = 1e6 * (p["cloudfront_https_request"] + p["cloudfront_function"]) + transfer
        print(f"| {job} -> {size} | {ms:.1f} | {billed:.1f} | {lambda_cost:.2f} | {redirect:.2f} | {failover:.2f} | {hit:.2f} |")


if __name__ == "__main__":
    main()
