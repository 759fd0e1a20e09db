// What the pages share: the development sign-in, calls to the signer API, sized paths,
// and error messages a person can act on, whoever refused (the signer, S3, CloudFront).
import { IDP } from './config.js';

const TOKEN = 'devserver-token';

/** The signed-in user's name and bearer token, or null. */
export function session() {
  const raw = sessionStorage.getItem(TOKEN);
  return raw ? JSON.parse(raw) : null;
}

/** An error from the signer, the store or the CDN: `code` is the refuser's own code. */
export class Refusal extends Error {
  constructor(status, code, message, from) {
    super(message);
    this.status = status;
    this.code = code;
    this.from = from;
  }
}

/** The development identity provider's sign-in (in AWS: your identity provider's). */
export async function signIn(user, galleries = []) {
  const resp = await fetch(`${IDP}/sign-in`, {
    method: 'POST',
    body: JSON.stringify({ user, galleries }),
  });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Refusal(resp.status, body.code, body.message, 'sign-in');
  const value = { user: body.claims.sub, galleries: body.claims.galleries, token: body.token };
  sessionStorage.setItem(TOKEN, JSON.stringify(value));
  return value;
}

export function signOut() {
  sessionStorage.removeItem(TOKEN);
}

/** POSTs JSON to a signer route with the bearer token; resolves to the JSON answer. */
export async function api(route, body) {
  const current = session();
  const headers = { 'Content-Type': 'application/json' };
  if (current) headers.Authorization = `Bearer ${current.token}`;
  const resp = await fetch(route, { method: 'POST', headers, body: JSON.stringify(body) });
  const json = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    // API Gateway's own 401 has only a message.
    const code = json.code ?? (resp.status === 401 ? 'unauthenticated' : `http-${resp.status}`);
    throw new Refusal(resp.status, code, json.message ?? resp.statusText, 'signer');
  }
  return json;
}

/** A key as a URL path: each segment percent-encoded, slashes kept. */
export function keyPath(key) {
  return key.split('/').map(encodeURIComponent).join('/');
}

/**
 * `/{size}/{key}`, the sized path the resizer creates on a miss; with a `format` (`avif`,
 * `webp`, `jpeg`, `png`, `gif`), `/{size}.{format}/{key}`, that format whatever the browser
 * accepts. Without one, the edge picks the format from the request's `Accept`.
 */
export function sized(size, key, format) {
  return `/${format ? `${size}.${format}` : size}/${keyPath(key)}`;
}

/** S3's XML error (`<Error><Code>..</Code><Message>..</Message>`) as a Refusal. */
export function s3Refusal(status, text) {
  const doc = new DOMParser().parseFromString(text || '<Error/>', 'application/xml');
  const pick = (name) => doc.getElementsByTagName(name)[0]?.textContent ?? '';
  return new Refusal(status, pick('Code') || `http-${status}`, pick('Message') || text, 'store');
}

const MB = (n) => `${(n / 1e6).toFixed(n < 1e6 ? 2 : 1)} MB`;

/** One sentence for a person, from any Refusal (or a plain Error). */
export function explain(err, context = {}) {
  const { code = '', message = String(err.message ?? err), from = '' } = err;
  if (from === 'cdn' && code === 'AccessDenied') {
    return 'Your signed cookies do not open this image: they expired, or they are for another gallery (a site holds one set at a time). Open the gallery again.';
  }
  const size = context.size !== undefined ? ` (${MB(context.size)})` : '';
  switch (code) {
    case 'unauthenticated':
      return 'Sign in first: the signer needs to know who you are (or your session expired; sign in again).';
    case 'forbidden':
      return `The signer refused: ${message}. You can only sign for your own uploads and the galleries you were granted.`;
    case 'unsupported-content-type':
      return `Wrong type: only JPEG, PNG, WebP and GIF images can be uploaded${context.type ? ` (this file is ${context.type || 'of unknown type'})` : ''}.`;
    case 'upload-too-large':
      return `Too big: ${message}. Pick a smaller image.`;
    case 'EntityTooLarge':
      return `Too big: the store refused the file${size}, it is over the upload form's limit${context.maxBytes ? ` of ${MB(context.maxBytes)}` : ''}. Nothing was stored.`;
    case 'EntityTooSmall':
      return 'The file is empty: nothing was stored.';
    case 'AccessDenied':
    case 'InvalidPolicyDocument':
      if (/expir/i.test(message)) return 'Expired: the upload permission ran out before the file arrived. Pick the file again to get a fresh one.';
      return `The store refused the upload: ${message}.`;
    case 'SignatureDoesNotMatch':
      return 'The store refused the upload: the request does not match what was signed (type, size or key changed).';
    case 'network':
      return 'Could not reach the store: the connection failed, or the store did not allow this page\'s origin (CORS).';
    case 'MissingKey':
      return 'Signed out: private images need signed cookies. Sign in to open the gallery.';
    case 'private-query':
    case 'dot-segment':
    case 'encoded-private-path':
    case 'nested-grant-prefix':
      return `The edge refused this spelling of a private path (${code}): private images are asked for by their plain path only.`;
    default:
      return code ? `${message} (${code})` : message;
  }
}

/** Why a sized path did not load: follows the redirect chain and reads the error body. */
export async function diagnose(path) {
  const resp = await fetch(path, { cache: 'no-store' });
  if (resp.ok) return null;
  // CloudFront's refusals: the path guard's (a function's answer, with its x-refusal), and
  // the signature check's (CloudFront's XML: MissingKey, AccessDenied, ...).
  const refusal = resp.headers.get('x-refusal');
  const text = await resp.text();
  if (refusal) return new Refusal(resp.status, refusal, text, 'cdn');
  if ((resp.headers.get('x-cache') ?? '').startsWith('Error from cloudfront')
      && (resp.headers.get('content-type') ?? '').includes('xml')) {
    const { code, message } = s3Refusal(resp.status, text);
    return new Refusal(resp.status, code, message, 'cdn');
  }
  if ((resp.headers.get('content-type') ?? '').includes('json')) {
    const json = JSON.parse(text);
    return new Refusal(resp.status, json.code, json.message, 'resizer');
  }
  return s3Refusal(resp.status, text);
}

/**
 * An <img> that records how it ended in data-state (loaded / failed), for people and tests.
 * With `parent`, it is appended there before its `src` is set: in a <picture>, the browser
 * then chooses among the sources at once instead of starting on the fallback.
 */
export function image(path, attrs = {}, parent = null) {
  const img = document.createElement('img');
  for (const [name, value] of Object.entries(attrs)) img.setAttribute(name, value);
  img.dataset.state = 'loading';
  img.addEventListener('load', () => { img.dataset.state = 'loaded'; });
  img.addEventListener('error', () => { img.dataset.state = 'failed'; });
  parent?.append(img);
  img.src = path;
  return img;
}

/**
 * `<picture>` with one `<source type srcset>` per `{ type, srcset }` in `sources`, in order
 * (the browser takes the first type it can decode), and `image(fallback, attrs)` last for
 * browsers that take none of them. Returns the picture and its <img>.
 */
export function picture(sources, fallback, attrs = {}) {
  const element = document.createElement('picture');
  for (const { type, srcset, sizes } of sources) {
    const source = document.createElement('source');
    source.type = type;
    source.srcset = srcset;
    if (sizes) source.sizes = sizes;
    element.append(source);
  }
  return { picture: element, img: image(fallback, attrs, element) };
}
