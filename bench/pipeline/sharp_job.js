// One benchmark job with sharp (libvips), as scripts/bench runs it: read SRC, auto-orient,
// resize (cover for WxH, width or height only otherwise, never enlarging one-sided sizes),
// encode, write OUT. One libvips thread, no cache. FORMAT (default: the source's) is
// jpeg (q80 4:2:0), png, webp (`.webp()`: sharp's defaults, quality 80, effort 4), avif
// (`.avif()`: quality 50, effort 4, 4:4:4) or gif (`.gif()`); a GIF source is read with
// `animated: true`, so every frame is resized and written.
// Usage: node sharp_job.js SRC SIZE OUT RUNS WARMUP [FORMAT]
const sharp = require('sharp');
const fs = require('fs');
sharp.concurrency(1);
sharp.cache(false);

const [src, size, out, runs, warmup, format] = process.argv.slice(2);
const [w, h] = size.split('x').map((v) => (v === '' ? null : Number(v)));

async function once() {
  const input = fs.readFileSync(src);
  const meta = await sharp(input).metadata();
  const animated = meta.format === 'gif';
  let img = sharp(input, { animated }).rotate();
  if (w && h) img = img.resize(w, h, { fit: 'cover', kernel: 'lanczos3' });
  else img = img.resize(w, h, { withoutEnlargement: true, kernel: 'lanczos3' });
  const fmt = format || (meta.format === 'jpeg' ? 'jpeg' : meta.format);
  if (fmt === 'jpeg') img = img.jpeg({ quality: 80, chromaSubsampling: '4:2:0' });
  else if (fmt === 'png') img = img.png();
  else if (fmt === 'webp') img = img.webp();
  else if (fmt === 'avif') img = img.avif();
  else if (fmt === 'gif') img = img.gif();
  else throw new Error(`unknown format ${fmt}`);
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
  // For an animation info.height is the whole strip of frames; pageHeight is one frame's.
  const height = info.pageHeight || info.height;
  console.log(JSON.stringify({ times_ms: times, bytes: info.size, width: info.width, height }));
})();
