// sharp's WebP job in parts, to compare with bench_job's stage timings (decode, resize,
// encode): the whole job; decode + resize to a raw buffer; the WebP (and JPEG) encode of that
// raw buffer alone. One libvips thread, no cache, medians of 7 runs after 2 warm-up.
// Run from target/bench after scripts/bench (sharp is installed there).
// Usage: node ../../bench/pipeline/sharp_parts.js SRC WIDTH
const sharp = require(`${process.cwd()}/node_modules/sharp`);
const fs = require('fs');

sharp.concurrency(1);
sharp.cache(false);
const [src, width] = process.argv.slice(2);
const median = (a) => a.sort((x, y) => x - y)[a.length >> 1];

async function timed(job) {
  const times = [];
  for (let i = 0; i < 9; i++) {
    const start = process.hrtime.bigint();
    await job();
    if (i >= 2) times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return Number(median(times).toFixed(1));
}

(async () => {
  const input = fs.readFileSync(src);
  const resized = () => sharp(input).rotate().resize(Number(width), null, { kernel: 'lanczos3' });
  const raw = await resized().raw().toBuffer({ resolveWithObject: true });
  const { width: w, height: h, channels } = raw.info;
  const fromRaw = () => sharp(raw.data, { raw: { width: w, height: h, channels } });
  console.log(JSON.stringify({
    whole_webp_ms: await timed(() => resized().webp().toBuffer()),
    decode_resize_raw_ms: await timed(() => resized().raw().toBuffer()),
    webp_encode_of_raw_ms: await timed(() => fromRaw().webp().toBuffer()),
    jpeg_encode_of_raw_ms: await timed(() => fromRaw().jpeg({ quality: 80 }).toBuffer()),
  }));
})();
