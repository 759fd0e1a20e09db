// Drives Debian's headless Chromium through the devserver's pages with playwright-core and
// prints what the browser saw as one JSON line; tests/tests/e2e/pages.rs starts the stack,
// runs this and asserts on the JSON and on the bucket.
//
//   node pages.mjs SCENARIO   with PAGES_URL (the website endpoint), ARTIFACTS (screenshot
//   folder), CHROMIUM (the browser binary) and SCENARIO_INPUT (JSON) in the environment.

import { chromium } from 'playwright-core';

const base = process.env.PAGES_URL;
const artifacts = process.env.ARTIFACTS;
const input = JSON.parse(process.env.SCENARIO_INPUT ?? '{}');
const scenario = process.argv[2];
const TIMEOUT = 60_000;
// How long a page's images may take to finish loading: each is an AVIF made on its first
// request (seconds each on a busy machine, the 1024 px ones a minute).
const READY_TIMEOUT = 420_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Playwright adds --headless and a fresh --user-data-dir of its own.
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});

/**
 * A fresh context (own cache and cookies) at a viewport width, device pixel ratio 1, with
 * `options` for the context (for example `extraHTTPHeaders`) and `prepare` run on the context
 * before the page opens (routes). `page.loads()` resolves to every image request's chain of
 * responses (see recordImages).
 */
async function open(path, width = 1280, options = {}, prepare = async () => {}) {
  const context = await browser.newContext({ viewport: { width, height: 900 }, deviceScaleFactor: 1, ...options });
  await prepare(context);
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.errors = errors;
  page.loads = recordImages(page);
  // Not until "load": that waits for every image, and a first AVIF can take seconds on a
  // busy machine; each scenario waits for the page's own readiness marks instead.
  await page.goto(base + path, { waitUntil: 'domcontentloaded' });
  return page;
}

/**
 * Records each image request the page makes (`<img>`, `<picture>`: resource type "image";
 * not the page's own fetch calls) as one load: the path asked for, the `Accept` the browser
 * sent, and every response of its redirect chain in order (path, status, Content-Type,
 * Vary, Location). Returns a function resolving to the loads recorded so far.
 */
function recordImages(page) {
  const loads = new Map();
  const pending = [];
  page.on('response', (response) => {
    const request = response.request();
    if (request.resourceType() !== 'image') return;
    pending.push((async () => {
      let first = request;
      let depth = 0;
      while (first.redirectedFrom()) {
        first = first.redirectedFrom();
        depth += 1;
      }
      if (!loads.has(first)) {
        loads.set(first, { path: new URL(first.url()).pathname, accept: null, hops: [] });
      }
      const load = loads.get(first);
      const headers = await response.allHeaders();
      const accept = await request.headerValue('accept');
      if (depth === 0) load.accept = accept;
      load.hops.push({
        depth,
        path: new URL(response.url()).pathname,
        accept,
        status: response.status(),
        type: headers['content-type'] ?? null,
        vary: headers.vary ?? null,
        location: headers.location ?? null,
      });
    })());
  });
  return async () => {
    await Promise.all(pending);
    return [...loads.values()].map((load) => ({ ...load, hops: load.hops.sort((a, b) => a.depth - b.depth) }));
  };
}

/** The `Accept` the page's image requests were sent with (the first recorded), or null. */
async function imageAccept(page) {
  if (!page.loads) return null;
  return (await page.loads()).find((load) => load.accept)?.accept ?? null;
}

async function shot(page, name) {
  const path = `${artifacts}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * Every <img> in `selector`: how it ended, what it asked for, and the decoded pixels. The
 * pixels are fetched again with the `Accept` the page's images were sent with, so the edge
 * answers with the variant the <img> got (a fetch's own Accept, any type, would make another).
 */
async function images(page, selector = 'img') {
  const accept = await imageAccept(page);
  return page.$$eval(selector, async (imgs, accept) => Promise.all(imgs.map(async (img) => {
    const out = {
      src: img.getAttribute('src'),
      current: img.currentSrc ? new URL(img.currentSrc).pathname : null,
      state: img.dataset.state ?? null,
      complete: img.complete,
      natural: [img.naturalWidth, img.naturalHeight],
    };
    // The resource's own pixels, whatever density srcset gave the element (same origin
    // only: the website endpoint sends no CORS headers, as an S3 website has none).
    if (img.currentSrc && img.naturalWidth > 0 && new URL(img.currentSrc).origin === location.origin) {
      const resp = await fetch(img.currentSrc, accept ? { headers: { accept } } : {});
      const bitmap = await createImageBitmap(await resp.blob());
      out.decoded = [bitmap.width, bitmap.height];
    }
    return out;
  })), accept);
}

/**
 * The gallery's every <img> by its part of the page (`hero`, `thumb`, `picture`: the
 * explicit-format <picture>, `negotiated`: the plain <img> beside it): the key, what it
 * asked for and chose, how it ended, whether `decode()` resolved, and its pixels (the
 * element's intrinsic size and a bitmap made from the element itself, no second request,
 * with the mean colour of each cell of a 4x4 grid over it).
 */
function galleryImages(page) {
  return page.$$eval('img', async (imgs) => Promise.all(imgs.map(async (img) => {
    const role = img.closest('.negotiated') ? 'negotiated'
      : img.closest('picture') ? 'picture'
        : img.closest('#grid') ? 'thumb' : 'hero';
    const current = img.currentSrc ? new URL(img.currentSrc).pathname : null;
    const out = {
      role,
      key: current && current.split('/').slice(2).map(decodeURIComponent).join('/'),
      src: img.getAttribute('src'),
      current,
      state: img.dataset.state ?? null,
      natural: [img.naturalWidth, img.naturalHeight],
      decode: await img.decode().then(() => 'resolved', (e) => `rejected: ${e}`),
      caption: img.closest('figure')?.querySelector('.chosen')?.textContent ?? null,
    };
    if (img.naturalWidth > 0) {
      const bitmap = await createImageBitmap(img);
      out.bitmap = [bitmap.width, bitmap.height];
      // Its colours as the browser decoded them: the mean RGBA of each cell of a 4x4 grid.
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const context = canvas.getContext('2d');
      context.drawImage(bitmap, 0, 0);
      const { data, width, height } = context.getImageData(0, 0, bitmap.width, bitmap.height);
      out.grid = [];
      for (let gy = 0; gy < 4; gy++) {
        for (let gx = 0; gx < 4; gx++) {
          const sum = [0, 0, 0, 0];
          let n = 0;
          for (let y = Math.floor((gy * height) / 4); y < Math.floor(((gy + 1) * height) / 4); y++) {
            for (let x = Math.floor((gx * width) / 4); x < Math.floor(((gx + 1) * width) / 4); x++) {
              for (let c = 0; c < 4; c++) sum[c] += data[(y * width + x) * 4 + c];
              n++;
            }
          }
          out.grid.push(sum.map((v) => Math.round(v / Math.max(n, 1))));
        }
      }
    }
    return out;
  })));
}

/**
 * Every `<source>` of the gallery's pictures, fetched from the page as the browser would
 * fetch it if it took that type: the status, Content-Type and decoded size of the answer.
 */
function probeSources(page) {
  return page.$$eval('picture source', async (sources) => Promise.all(sources.map(async (source) => {
    const path = new URL(source.srcset, location.href).pathname;
    const resp = await fetch(path, { headers: { accept: source.type } });
    const out = { type: source.type, path, status: resp.status, answered: resp.headers.get('content-type') };
    if (resp.ok) {
      const bitmap = await createImageBitmap(await resp.blob());
      out.decoded = [bitmap.width, bitmap.height];
    }
    return out;
  })));
}

const text = (page, selector) => page.$eval(selector, (e) => e.textContent);

const scenarios = {
  async gallery() {
    const result = { viewports: [] };
    const query = input.images ? `?images=${input.images.join(',')}` : '';
    for (const width of input.widths) {
      const page = await open(`/pages/gallery.html${query}`, width);
      await page.waitForSelector('body[data-ready]', { timeout: READY_TIMEOUT });
      result.viewports.push({
        width,
        heroes: await images(page, '#photos img'),
        thumbs: await images(page, '#grid img'),
        status: await text(page, '#status'),
        errors: page.errors,
      });
      result.screenshot = await shot(page, `gallery-${width}`);
      if (width === input.widths.at(-1)) result.snippet = await text(page, '#snippet');
      await page.context().close();
    }
    // The snippet on another site (an about:blank document): its absolute URLs load.
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const other = await context.newPage();
    await other.setContent(result.snippet, { waitUntil: 'domcontentloaded' });
    await other.waitForFunction(() => [...document.images].every((i) => i.complete), null, { timeout: READY_TIMEOUT });
    result.snippetImages = await images(other);
    await context.close();
    return result;
  },

  // The gallery's AVIF and WebP: one visit by Chromium as it is (its own image Accept, every
  // size made on this first request), a second by a new visitor (a fresh context: every
  // size is in the bucket and the edge's cache), and a third by a browser whose image
  // requests accept only JPEG (every request's Accept replaced by the context's headers).
  async formats() {
    const query = `?images=${input.images.join(',')}`;
    const visit = async (name, options = {}) => {
      const page = await open(`/pages/gallery.html${query}`, input.width, options);
      await page.waitForSelector('body[data-ready]', { timeout: READY_TIMEOUT });
      // Every response event delivered (the load events can overtake them).
      await page.waitForLoadState('networkidle');
      const out = {
        images: await galleryImages(page),
        loads: await page.loads(),
        status: await text(page, '#status'),
        errors: page.errors,
        screenshot: await shot(page, `formats-${name}`),
      };
      if (name === 'first') out.sources = await probeSources(page);
      await page.context().close();
      return out;
    };
    return {
      first: await visit('first'),
      again: await visit('again'),
      jpegOnly: await visit('jpeg-only', { extraHTTPHeaders: { accept: 'image/jpeg' } }),
    };
  },

  // Animated originals as Chromium shows them. For each visit (`accept`: the Accept every
  // request of the visit carries instead of Chromium's own), each path is loaded by an <img>
  // (the browser's own image request), then its bytes are fetched again with the Accept
  // that request carried and decoded by Chromium's image decoders through WebCodecs'
  // ImageDecoder: the type, the frame count, how often it repeats, and each frame's size,
  // duration and RGBA at the points asked (`input.points`, in output pixels).
  async animations() {
    const result = {};
    for (const visit of input.visits) {
      // The landing page as a same-origin (and secure: loopback) document for ImageDecoder,
      // its own pictures refused so that no other resize competes with the test's.
      const refuseOthers = (context) => context.route((url) => url.pathname.includes('/samples/'), (route) => route.abort());
      const page = await open('/index.html', 800, visit.accept ? { extraHTTPHeaders: { accept: visit.accept } } : {}, refuseOthers);
      await page.evaluate((paths) => Promise.all(paths.map((path) => new Promise((resolve) => {
        const img = new Image();
        img.onload = img.onerror = resolve;
        img.src = path;
        document.body.append(img);
      }))), input.paths);
      await page.waitForLoadState('networkidle', { timeout: READY_TIMEOUT });
      const loads = await page.loads();
      const accept = await imageAccept(page);
      const decoded = await page.evaluate(async ({ paths, points, accept }) => Promise.all(paths.map(async (path) => {
        const img = [...document.images].find((i) => new URL(i.src).pathname === path);
        const out = { path, natural: [img.naturalWidth, img.naturalHeight] };
        const resp = await fetch(path, accept ? { headers: { accept } } : {});
        out.status = resp.status;
        out.type = resp.headers.get('content-type');
        if (!resp.ok) return out;
        const decoder = new ImageDecoder({ data: await resp.arrayBuffer(), type: out.type });
        await decoder.tracks.ready;
        await decoder.completed;
        const track = decoder.tracks.selectedTrack;
        // Infinity does not survive JSON.
        Object.assign(out, { animated: track.animated, frameCount: track.frameCount, repetitionCount: String(track.repetitionCount), frames: [] });
        for (let i = 0; i < track.frameCount; i++) {
          const { image } = await decoder.decode({ frameIndex: i });
          const canvas = new OffscreenCanvas(image.displayWidth, image.displayHeight);
          const context = canvas.getContext('2d');
          context.drawImage(image, 0, 0);
          out.frames.push({
            size: [image.displayWidth, image.displayHeight],
            durationUs: image.duration,
            rgba: points.map(([x, y]) => [...context.getImageData(x, y, 1, 1).data]),
          });
          image.close();
        }
        decoder.close();
        return out;
      })), { paths: input.paths, points: input.points, accept });
      result[visit.name] = { accept, loads, decoded, errors: page.errors };
      await page.context().close();
    }
    return result;
  },

  async private() {
    const page = await open('/pages/private.html');
    const errors = page.errors;
    const phaseOf = async (page, name) => {
      await page.waitForSelector('body[data-ready]', { timeout: READY_TIMEOUT });
      await page.waitForFunction(() => !document.querySelector('img[data-state="failed"]') || document.getElementById('message').textContent, null, { timeout: READY_TIMEOUT });
      return {
        images: await images(page, '#images img'),
        message: await text(page, '#message'),
        who: await text(page, '#who'),
        screenshot: await shot(page, `private-${name}`),
      };
    };
    const phase = (name) => phaseOf(page, name);
    const signedOut = await phase('signed-out');
    await page.click('#sign-in button[type="submit"]');
    await page.waitForSelector('#who:has-text("cookies for")');
    const signedIn = await phase('signed-in');
    await page.click('#sign-out');
    await page.waitForSelector('#who:text-is("Signed out")');
    // Signed out, the cookies are gone: a request that skips the browser's cache is refused.
    // (Images already in the cache stay visible: derivatives are stored immutable.)
    const afterSignOut = await page.evaluate(async (path) => (await fetch(path, { cache: 'no-store' })).status, signedIn.images[0].src);
    // A new visitor without cookies (a fresh context: no cache either) sees them fail.
    await page.context().close();
    const fresh = await open('/pages/private.html');
    const signedOutAgain = await phaseOf(fresh, 'new-visitor');
    errors.push(...fresh.errors);
    return { signedOut, signedIn, afterSignOut, signedOutAgain, errors };
  },

  async upload() {
    const page = await open(`/pages/upload.html${input.query ?? ''}`);
    if (input.delayStoreMs) {
      // Hold every request to the store (the form's POST) until the form has expired.
      await page.route(`${input.store}/**`, async (route) => {
        await new Promise((r) => setTimeout(r, input.delayStoreMs));
        await route.continue();
      });
    }
    await page.click('#sign-in button[type="submit"]');
    await page.waitForSelector('#who:has-text("Signed in as")');
    const attempts = [];
    for (const file of input.files) {
      await page.evaluate(() => { delete document.body.dataset.outcome; });
      const progressSeen = page.evaluate(() => new Promise((resolve) => {
        // Records the progress bar's values as the upload events move it.
        const seen = [];
        const bar = document.getElementById('progress');
        new MutationObserver(() => seen.push(Number(bar.value))).observe(bar, { attributes: true });
        const timer = setInterval(() => {
          if (document.body.dataset.outcome) { clearInterval(timer); resolve(seen); }
        }, 50);
      }));
      await page.setInputFiles('#file', file.path);
      await page.click('#send');
      await page.waitForSelector('body[data-outcome]');
      const outcome = await page.evaluate(() => document.body.dataset.outcome);
      if (outcome === 'uploaded') {
        await page.waitForFunction(() => [...document.querySelectorAll('#result img')].every((i) => i.dataset.state !== 'loading'), null, { timeout: READY_TIMEOUT });
      }
      attempts.push({
        name: file.name,
        outcome,
        key: await page.evaluate(() => document.body.dataset.key ?? null),
        message: await text(page, '#message'),
        progress: await page.$eval('#progress', (p) => [Number(p.value), Number(p.max)]),
        progressSeen: await progressSeen,
        images: await images(page, '#result img'),
        screenshot: await shot(page, `upload-${file.name}`),
      });
      await page.evaluate(() => { delete document.body.dataset.key; });
    }
    return { attempts, errors: page.errors };
  },
};

try {
  const result = await scenarios[scenario]();
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
