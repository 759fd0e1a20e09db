import { api, diagnose, explain, image, session, signIn, signOut, sized } from './api.js';

// ?gallery=demo&images=seeding.jpg: the devserver seeds private/galleries/demo/seeding.jpg.
const params = new URLSearchParams(location.search);
const gallery = params.get('gallery') ?? 'demo';
const names = (params.get('images') ?? 'seeding.jpg').split(',').map((n) => n.trim()).filter(Boolean);
const SIZES = ['200x200', '640x'];

const message = document.getElementById('message');
const status = document.getElementById('status');
const who = document.getElementById('who');
document.getElementById('gallery-name').textContent = `private/galleries/${gallery}/`;

/** Draws the gallery afresh: new <img> elements, so each is requested again. */
function render() {
  const box = document.getElementById('images');
  box.replaceChildren();
  delete document.body.dataset.ready;
  message.textContent = '';
  const imgs = [];
  for (const name of names) {
    for (const size of SIZES) {
      const path = sized(size, `private/galleries/${gallery}/${name}`);
      const figure = document.createElement('figure');
      const caption = document.createElement('figcaption');
      caption.textContent = path;
      const img = image(path, { alt: `${name} at ${size}` });
      figure.append(img, caption);
      box.append(figure);
      imgs.push(img);
    }
  }
  let pending = imgs.length;
  let explained = false;
  const settle = async (img) => {
    if (img.dataset.state === 'failed' && !explained) {
      explained = true;
      const why = await diagnose(img.getAttribute('src'));
      message.textContent = why ? explain(why) : 'An image did not load.';
    }
    if (--pending === 0) {
      const loaded = imgs.filter((i) => i.dataset.state === 'loaded').length;
      status.textContent = `${loaded} of ${imgs.length} images loaded`;
      document.body.dataset.ready = 'true';
    }
  };
  for (const img of imgs) {
    img.addEventListener('load', () => settle(img));
    img.addEventListener('error', () => settle(img));
  }
}

function showSession() {
  const current = session();
  who.textContent = current ? `Signed in as ${current.user}` : 'Signed out';
}

document.getElementById('sign-in').addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    await signIn(document.getElementById('user').value.trim(), [gallery]);
    const cookies = await api('/api/sign-cookies', { gallery });
    showSession();
    who.textContent += `; cookies for ${cookies.resource} until ${new Date(cookies.expires * 1000).toLocaleTimeString()}`;
    render();
  } catch (err) {
    message.textContent = explain(err);
  }
});

document.getElementById('sign-out').addEventListener('click', async () => {
  try {
    if (session()) await api('/api/clear-cookies', {});
  } catch (err) {
    message.textContent = explain(err);
  }
  signOut();
  showSession();
  render();
});

showSession();
render();
