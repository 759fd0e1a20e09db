import { image, sized, diagnose, explain } from './api.js';

// The widths offered to the browser and the layout they are chosen for: the column is the
// viewport less the 1rem side padding, up to 1024 px.
const WIDTHS = [320, 640, 1024];
const SIZES = '(max-width: 1056px) calc(100vw - 2rem), 1024px';
const THUMB = '200x200';

const params = new URLSearchParams(location.search);
const keys = (params.get('images') ?? 'samples/seeding.jpg').split(',').map((k) => k.trim()).filter(Boolean);

function srcset(key, origin = '') {
  return WIDTHS.map((w) => `${origin}${sized(`${w}x`, key)} ${w}w`).join(', ');
}

const photos = document.getElementById('photos');
const grid = document.getElementById('grid');
const images = [];
for (const key of keys) {
  const name = key.split('/').pop();
  const figure = document.createElement('figure');
  const caption = document.createElement('figcaption');
  caption.textContent = key;
  const hero = image(sized('640x', key), { srcset: srcset(key), sizes: SIZES, alt: name, class: 'responsive' });
  hero.addEventListener('load', () => {
    const size = new URL(hero.currentSrc).pathname.split('/')[1];
    caption.textContent = `${key}: the browser chose ${size} (${hero.naturalWidth}x${hero.naturalHeight} px)`;
  });
  figure.append(hero, caption);
  photos.append(figure);

  const item = document.createElement('li');
  const thumb = image(sized(THUMB, key), { width: 200, height: 200, alt: `${name}, ${THUMB}` });
  item.append(thumb);
  grid.append(item);
  images.push(hero, thumb);
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
    const why = await diagnose(img.getAttribute('src'));
    if (why) img.title = explain(why);
    img.insertAdjacentHTML('afterend', '<p class="error"></p>');
    img.nextElementSibling.textContent = why ? explain(why) : 'This image did not load.';
  });
}

// The snippet uses absolute URLs, so it works on any other site.
const first = keys[0];
const snippet = `<img src="${location.origin}${sized('640x', first)}"
     srcset="${srcset(first, location.origin)}"
     sizes="${SIZES}"
     alt="">
<img src="${location.origin}${sized(THUMB, first)}" width="200" height="200" alt="">`;
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
