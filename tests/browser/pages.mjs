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

/** A fresh context (own cache and cookies) at a viewport width, device pixel ratio 1. */
async function open(path, width = 1280) {
  const context = await browser.newContext({ viewport: { width, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.errors = errors;
  await page.goto(base + path);
  return page;
}

async function shot(page, name) {
  const path = `${artifacts}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Every <img> in `selector`: how it ended, what it asked for, and the decoded pixels. */
function images(page, selector = 'img') {
  return page.$$eval(selector, async (imgs) => Promise.all(imgs.map(async (img) => {
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
      const resp = await fetch(img.currentSrc);
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
      await page.waitForSelector('body[data-ready]');
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
    await other.setContent(result.snippet);
    await other.waitForFunction(() => [...document.images].every((i) => i.complete), null, { timeout: TIMEOUT });
    result.snippetImages = await images(other);
    await context.close();
    return result;
  },

  async private() {
    const page = await open('/pages/private.html');
    const errors = page.errors;
    const phaseOf = async (page, name) => {
      await page.waitForSelector('body[data-ready]');
      await page.waitForFunction(() => !document.querySelector('img[data-state="failed"]') || document.getElementById('message').textContent);
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
        await page.waitForFunction(() => [...document.querySelectorAll('#result img')].every((i) => i.dataset.state !== 'loading'));
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
