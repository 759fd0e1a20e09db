import { image, picture, sized, diagnose, explain } from './api.js';

// The widths offered to the browser and the layout they are chosen for: the column is the
// viewport less the 1rem side padding, up to 1024 px.
const WIDTHS = [320, 640, 1024];
const SIZES = '(max-width: 1056px) calc(100vw - 2rem), 1024px';
const THUMB = '200x200';
// The size of the two format demonstrations: two fit side by side in the 1024 px column.
const FORMAT_SIZE = '480x';
// The explicit formats a <picture> offers, best first: the browser takes the first it decodes.
const SOURCES = [
  { format: 'avif', type: 'image/avif' },
  { format: 'webp', type: 'image/webp' },
];

const params = new URLSearchParams(location.search);
const keys = (params.get('images') ?? 'samples/seeding.jpg').split(',').map((k) => k.trim()).filter(Boolean);

function srcset(key, origin = '', format = undefined) {
  return WIDTHS.map((w) => `${origin}${sized(`${w}x`, key, format)} ${w}w`).join(', ');
}

/** The size segment of the URL an <img> loaded (`640x`, `480x.avif`). */
const segment = (img) => new URL(img.currentSrc).pathname.split('/')[1];

/**
 * The Content-Type the image arrived with, from its Resource Timing entry (Chromium's
 * `contentType`; after redirects, the final response's), or '' where the browser has none.
 */
function arrivedAs(img) {
  const entries = performance.getEntriesByName(img.currentSrc, 'resource');
  return entries.at(-1)?.contentType ?? '';
}

const photos = document.getElementById('photos');
const grid = document.getElementById('grid');
const formats = document.getElementById('formats');
const images = [];
for (const key of keys) {
  const name = key.split('/').pop();
  const figure = document.createElement('figure');
  const caption = document.createElement('figcaption');
  caption.textContent = key;
  const hero = image(sized('640x', key), { srcset: srcset(key), sizes: SIZES, alt: name, class: 'responsive' });
  hero.addEventListener('load', () => {
    caption.textContent = `${key}: the browser chose ${segment(hero)} (${hero.naturalWidth}x${hero.naturalHeight} px)`;
  });
  figure.append(hero, caption);
  photos.append(figure);

  const item = document.createElement('li');
  const thumb = image(sized(THUMB, key), { width: 200, height: 200, alt: `${name}, ${THUMB}` });
  item.append(thumb);
  grid.append(item);
  images.push(hero, thumb);

  // The same picture two ways. Left, the formats are explicit in the keys and the browser
  // chooses by `type`; the fallback <img> is the un-suffixed path, which a browser that
  // takes neither type gets in the original's format (the edge's third class), the same
  // object the plain <img> beside it gets there. Right, the edge chooses from `Accept`.
  const pair = document.createElement('div');
  pair.className = 'pair';
  pair.dataset.key = key;

  const explicit = document.createElement('figure');
  explicit.className = 'format explicit';
  const chosen = picture(
    SOURCES.map(({ format, type }) => ({ type, srcset: sized(FORMAT_SIZE, key, format) })),
    sized(FORMAT_SIZE, key),
    { alt: `${name}, ${FORMAT_SIZE}, explicit formats`, width: 480 },
  );
  const explicitCaption = document.createElement('figcaption');
  explicitCaption.innerHTML = '<strong>&lt;picture&gt;, explicit formats</strong>: <code>&lt;source type="image/avif"&gt;</code>, <code>&lt;source type="image/webp"&gt;</code>, then <code>&lt;img&gt;</code>.';
  const explicitResult = document.createElement('span');
  explicitResult.className = 'chosen';
  explicitCaption.append(' ', explicitResult);
  chosen.img.addEventListener('load', () => {
    explicitResult.textContent = `The browser chose ${segment(chosen.img)} (${chosen.img.naturalWidth}x${chosen.img.naturalHeight} px).`;
  });
  explicit.append(chosen.picture, explicitCaption);

  const negotiated = document.createElement('figure');
  negotiated.className = 'format negotiated';
  const plain = image(sized(FORMAT_SIZE, key), { alt: `${name}, ${FORMAT_SIZE}, format chosen by the edge`, width: 480 });
  const negotiatedCaption = document.createElement('figcaption');
  negotiatedCaption.innerHTML = '<strong>Plain <code>&lt;img&gt;</code>, negotiated</strong>: no format in the path; the edge picks AVIF, WebP or the original\'s from the browser\'s <code>Accept</code> (answers carry <code>Vary: Accept</code>).';
  const negotiatedResult = document.createElement('span');
  negotiatedResult.className = 'chosen';
  negotiatedCaption.append(' ', negotiatedResult);
  plain.addEventListener('load', () => {
    const type = arrivedAs(plain);
    negotiatedResult.textContent = `${type ? `The edge sent ${type}` : 'Loaded'} (${plain.naturalWidth}x${plain.naturalHeight} px).`;
  });
  negotiated.append(plain, negotiatedCaption);

  pair.append(explicit, negotiated);
  formats.append(pair);
  images.push(chosen.img, plain);
}

const status = document.getElementById('status');
function report() {
  const done = images.filter((img) => img.dataset.state !== 'loading');
  const failed = images.filter((img) => img.dataset.state === 'failed');
  status.textContent = `${done.length - failed.length} of ${images.length} images loaded`;
  if (done.length === images.length) document.body.dataset.ready = 'true';
}
for (const img of images) {
  img.addEventListener('load', report);
  img.addEventListener('error', async () => {
    report();
    // The URL that failed: in a <picture>, the chosen source's.
    const why = await diagnose(img.currentSrc || img.getAttribute('src'));
    if (why) img.title = explain(why);
    const message = document.createElement('p');
    message.className = 'error';
    message.textContent = why ? explain(why) : 'This image did not load.';
    (img.closest('picture') ?? img).after(message);
  });
}

// The snippet uses absolute URLs, so it works on any other site.
const first = keys[0];
const snippet = `<img src="${location.origin}${sized('640x', first)}"
     srcset="${srcset(first, location.origin)}"
     sizes="${SIZES}"
     alt="">
<img src="${location.origin}${sized(THUMB, first)}" width="200" height="200" alt="">
<picture>
  ${SOURCES.map(({ format, type }) => `<source type="${type}"
          srcset="${srcset(first, location.origin, format)}"
          sizes="${SIZES}">`).join('\n  ')}
  <img src="${location.origin}${sized('640x', first)}"
       srcset="${srcset(first, location.origin)}"
       sizes="${SIZES}"
       alt="">
</picture>`;
document.getElementById('snippet').textContent = snippet;
document.getElementById('copy').addEventListener('click', async () => {
  const copied = document.getElementById('copied');
  try {
    await navigator.clipboard.writeText(snippet);
    copied.textContent = 'Copied.';
  } catch {
    // Clipboard access refused (permissions, insecure origin): select the text instead.
    getSelection().selectAllChildren(document.getElementById('snippet'));
    copied.textContent = 'Selected: press Ctrl+C to copy.';
  }
});
