/**
 * Downloads and uploads of any size, never whole in memory.
 *
 * - `download(conn, path, name, {onProgress, signal})` — `get` streamed
 *   into a browser download through the service worker (`sw.js`): each
 *   record goes to the worker when the browser asks for more, the SHA-256
 *   is computed as it passes and checked against `get`'s before the
 *   download is allowed to complete (a mismatch fails it). Resolves to
 *   `{size, sha256 (hex)}`.
 * - `upload(conn, file, path, {onProgress, signal, partSize})` — the
 *   resumable `put` (`upload: {…}`): parts of `partSize` bytes read from
 *   the `File` one at a time, the SHA-256 computed as they are read and
 *   checked by the server at the commit; a cancelled upload is discarded
 *   on the server. A server without resumable uploads gets one `put` for
 *   a file up to `SMALL_UPLOAD` bytes. Resolves to `{size, sha256 (hex)}`.
 */

import { Sha256 } from '../sha256.js';
import { b64decode, b64encode, toHex } from '../b64.js';
import { OpError } from '../errors.js';

export const PART_SIZE = 8 << 20;
export const SMALL_UPLOAD = 32 << 20;
/** Bytes hashed between two turns of the page's event loop: hashing a
 * whole part at once blocked the page for up to 2 s on a busy machine (no
 * input, no drawing — Cancel could not be pressed). */
export const HASH_SLICE = 256 << 10;

/** Lets the page handle input and draw before going on. */
function yieldToPage() {
  return globalThis.scheduler?.yield ? globalThis.scheduler.yield() : new Promise((r) => setTimeout(r, 0));
}

/** `hash.update(bytes)` in slices, yielding between them; stops if aborted. */
export async function hashInSlices(hash, bytes, signal) {
  for (let at = 0; at < bytes.length; at += HASH_SLICE) {
    hash.update(bytes.subarray(at, at + HASH_SLICE));
    await yieldToPage();
    signal?.throwIfAborted();
  }
}

let worker = null;

/** The active service worker of `{base}/console/`, registered once. */
async function serviceWorker() {
  if (!('serviceWorker' in navigator)) {
    throw new Error('this browser offers no service worker here (a private window, or not HTTPS): downloads are not possible');
  }
  if (!worker) {
    worker = (async () => {
      await navigator.serviceWorker.register('sw.js', { scope: './' });
      const reg = await navigator.serviceWorker.ready;
      return reg.active;
    })();
  }
  return worker;
}

/** Starts registering the worker early, so the first download is quick. */
export function prepareDownloads() {
  serviceWorker().catch(() => {});
}

export async function download(conn, path, name, { onProgress = () => {}, signal, size } = {}) {
  const sw = await serviceWorker();
  const id = crypto.randomUUID();
  const { port1, port2 } = new MessageChannel();
  let credit = 0;
  let waiter = null;
  let cancelled = false;
  const ready = new Promise((resolve) => {
    port1.onmessage = (m) => {
      if (m.data === 'ready') resolve();
      else if (m.data === 'pull') {
        credit++;
        waiter?.();
      } else if (m.data?.cancel) {
        cancelled = true;
        inner.abort();
        waiter?.();
      }
    };
  });
  const inner = new AbortController();
  signal?.addEventListener('abort', () => inner.abort(), { once: true });
  sw.postMessage({ type: 'download', id, name, size }, [port2]);
  await ready;
  const waitPull = async () => {
    while (credit === 0 && !cancelled) await new Promise((r) => (waiter = r));
    waiter = null;
    credit--;
  };
  const frame = document.createElement('iframe');
  frame.hidden = true;
  frame.src = `dl/${id}/${encodeURIComponent(name)}`;
  document.body.append(frame);
  const hash = new Sha256();
  let got = 0;
  try {
    const r = await conn.request('get', { path }, {
      signal: inner.signal,
      onData: async (_ch, bytes) => {
        await waitPull();
        if (cancelled) throw new DOMException('the download was cancelled', 'AbortError');
        hash.update(bytes);
        got += bytes.length;
        const c = bytes.slice();
        port1.postMessage({ chunk: c }, [c.buffer]);
        onProgress(got, size);
      },
    });
    const mine = hash.digest();
    const theirs = b64decode(r.sha256);
    await waitPull();
    if (toHex(mine) !== toHex(theirs) || got !== r.length) {
      port1.postMessage({ error: 'checksum mismatch' });
      throw new Error(`SHA-256 mismatch: received ${toHex(mine)}, the server sent ${toHex(theirs)}`);
    }
    port1.postMessage({ done: true });
    return { size: got, sha256: toHex(mine) };
  } catch (e) {
    if (!cancelled) port1.postMessage({ error: e.message });
    throw e;
  } finally {
    setTimeout(() => {
      frame.remove();
      port1.close();
    }, 5000);
  }
}

export async function upload(conn, file, path, { onProgress = () => {}, signal, partSize = PART_SIZE } = {}) {
  const hash = new Sha256();
  const total = file.size;
  let id = null;
  let offset = 0;
  try {
    do {
      signal?.throwIfAborted();
      const end = Math.min(offset + partSize, total);
      const part = new Uint8Array(await file.slice(offset, end).arrayBuffer());
      await hashInSlices(hash, part, signal);
      const last = end === total;
      const step = id === null ? {} : { id, offset };
      const desc = { path, upload: step };
      let sha;
      if (last) {
        sha = hash.digest();
        step.commit = true;
        desc.sha256 = b64encode(sha);
      }
      let r;
      try {
        r = await conn.request('put', desc, { body: part, signal });
      } catch (e) {
        if (id === null && e instanceof OpError && e.code === 'bad_request' && /upload/.test(e.message)) {
          return await uploadWhole(conn, file, path, { onProgress, signal });
        }
        throw e;
      }
      offset = end;
      onProgress(offset, total);
      if (last) return { size: r.size, sha256: toHex(sha) };
      if (typeof r.upload !== 'string' || r.size !== offset) throw new Error('the server did not take the part as sent');
      id = r.upload;
    } while (offset <= total);
  } catch (e) {
    if (id !== null) conn.request('put', { path, upload: { id, abort: true } }).catch(() => {});
    throw e;
  }
  throw new Error('unreachable');
}

/** One `put` for a server without resumable uploads (bounded size). */
async function uploadWhole(conn, file, path, { onProgress, signal }) {
  if (file.size > SMALL_UPLOAD) {
    throw new Error(`this server has no resumable uploads: files larger than ${SMALL_UPLOAD >> 20} MiB cannot be uploaded from the browser`);
  }
  const data = new Uint8Array(await file.arrayBuffer());
  const sha = await crypto.subtle.digest('SHA-256', data);
  const r = await conn.request('put', { path, sha256: b64encode(new Uint8Array(sha)) }, { body: data, signal });
  onProgress(file.size, file.size);
  return { size: r.size, sha256: toHex(new Uint8Array(sha)) };
}
