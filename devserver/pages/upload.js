import { api, explain, image, Refusal, s3Refusal, session, signIn, sized } from './api.js';

// Files above this size go up in parts (the signer's MULTIPART_PART_BYTES default is
// 8 MiB; a part may not be under 5 MiB). ?multipart-above=BYTES changes it.
const MULTIPART_ABOVE = Number(new URLSearchParams(location.search).get('multipart-above') ?? 16 * 1024 * 1024);
const SHOWN = ['640x', '200x200'];

const $ = (id) => document.getElementById(id);
const progress = $('progress');
const progressText = $('progress-text');
const message = $('message');

function showSession() {
  const current = session();
  $('who').textContent = current ? `Signed in as ${current.user}` : 'Signed out: sign in to upload';
}

$('sign-in').addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    await signIn($('user').value.trim());
    message.textContent = '';
  } catch (err) {
    message.textContent = explain(err);
  }
  showSession();
});

function setProgress(sent, total) {
  progress.max = total || 1;
  progress.value = sent;
  progressText.textContent = `${sent.toLocaleString()} of ${total.toLocaleString()} bytes sent`;
}

/**
 * Sends a request with XMLHttpRequest (fetch reports no upload progress), with every header
 * the signer returned: they are signed, so each must arrive exactly as given. Content-Length
 * is the one a page may not set (the browser does, from the body).
 */
function send(method, url, body, onProgress, headers = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers)) {
      if (name.toLowerCase() !== 'content-length') xhr.setRequestHeader(name, value);
    }
    xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.total));
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr);
      else reject(s3Refusal(xhr.status, xhr.responseText));
    });
    // Status 0: no answer the page may read (connection refused, or CORS not allowed).
    xhr.addEventListener('error', () => reject(new Refusal(0, 'network', 'network error', 'store')));
    xhr.send(body);
  });
}

/** Presigned POST: the policy fixes the key, the type and the size range; S3 checks them. */
async function uploadForm(file, context) {
  const form = await api('/api/upload-form', { content_type: file.type || 'application/octet-stream' });
  context.maxBytes = form.max_bytes;
  const body = new FormData();
  for (const [name, value] of form.fields) body.append(name, value);
  body.append('file', file); // last: S3 ignores fields after the file
  // The body is the form's fields and the file: its progress counts both.
  await send('POST', form.url, body, (sent, total) => setProgress(sent, total));
  return form.key;
}

/** Multipart: each part PUT to its own presigned URL, then completed by the signer. */
async function uploadParts(file) {
  const begun = await api('/api/multipart/begin', { content_type: file.type || 'application/octet-stream', size: file.size });
  const done = [];
  let offset = 0;
  try {
    for (const part of begun.parts) {
      const start = offset;
      const xhr = await send('PUT', part.url, file.slice(start, start + part.size), (sent) => setProgress(start + sent, file.size), part.headers);
      offset += part.size;
      // ETag is readable only because the bucket's CORS rule exposes it.
      const etag = xhr.getResponseHeader('ETag');
      if (!etag) throw new Refusal(0, 'no-etag', 'the store did not expose the part\'s ETag (CORS ExposeHeaders)', 'store');
      done.push({ part_number: part.part_number, etag });
    }
    await api('/api/multipart/complete', { key: begun.key, upload_id: begun.upload_id, parts: done });
  } catch (err) {
    await api('/api/multipart/abort', { key: begun.key, upload_id: begun.upload_id }).catch(() => {});
    throw err;
  }
  return begun.key;
}

$('upload').addEventListener('submit', async (event) => {
  event.preventDefault();
  const file = $('file').files[0];
  if (!file) return;
  message.textContent = '';
  $('done').textContent = '';
  $('result').replaceChildren();
  delete document.body.dataset.outcome;
  setProgress(0, file.size);
  const context = { size: file.size, type: file.type };
  $('send').disabled = true;
  try {
    if (!session()) throw new Refusal(401, 'unauthenticated', 'not signed in', 'page');
    const key = file.size > MULTIPART_ABOVE ? await uploadParts(file) : await uploadForm(file, context);
    setProgress(file.size, file.size);
    // Your uploads are yours: cookies for uploads/{you}/ open them wherever the CDN keeps
    // that prefix private.
    await api('/api/sign-cookies', { uploads: true });
    $('done').textContent = `Uploaded ${file.name} as ${key}.`;
    document.body.dataset.key = key;
    showSizes(key);
    document.body.dataset.outcome = 'uploaded';
  } catch (err) {
    message.textContent = explain(err, context);
    document.body.dataset.outcome = 'refused';
  } finally {
    $('send').disabled = false;
  }
});

function showSizes(key) {
  for (const size of SHOWN) {
    const figure = document.createElement('figure');
    const caption = document.createElement('figcaption');
    const img = image(sized(size, key), { alt: `${size} of your upload` });
    caption.textContent = sized(size, key);
    img.addEventListener('load', () => { caption.textContent += ` (${img.naturalWidth}x${img.naturalHeight} px)`; });
    img.addEventListener('error', () => { caption.textContent += ': did not load'; });
    figure.append(img, caption);
    $('result').append(figure);
  }
}

showSession();
