// One benchmark job with sharp (libvips), as scripts/bench runs it: read SRC, auto-orient,
// resize (cover for WxH, width or height only otherwise, never enlarging one-sided sizes),
// encode JPEG q80 4:2:0 or PNG, write OUT. One libvips thread, no cache.
// Usage: node sharp_job.js SRC SIZE OUT RUNS WARMUP
const sharp = require('sharp');
const fs = require('fs');
sharp.concurrency(1);
sharp.cache(false);

const [src, size, out, runs, warmup] = process.argv.slice(2);
const [w, h] = size.split('x').map((v) => (v === '' ? null : Number(v)));

async function once() {
  const input = fs.readFileSync(src);
  let img = sharp(input).rotate();
  if (w && h) img = img.resize(w, h, { fit: 'cover', kernel: 'lanczos3' });
  else img = img.resize(w, h, { withoutEnlargement: true, kernel: 'lanczos3' });
  const meta = await sharp(input).metadata();
  img = meta.format === 'png' ? img.png() : img.jpeg({ quality: 80, chromaSubsampling: '4:2:0' });
  const { data, info } = await img.toBuffer({ resolveWithObject: true });
  fs.writeFileSync(out, data);
  return info;
}

(async () => {
  const times = [];
  let info;
  for (let i = 0; i < Number(warmup) + Number(runs); i++) {
    const start = process.hrtime.bigint();
    info = await once();
    if (i >= Number(warmup)) times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  console.log(JSON.stringify({ times_ms: times, bytes: info.size, width: info.width, height: info.height }));
})();
