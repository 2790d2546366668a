/*
 * The remo console's service worker (docs/console.md, "Downloads"): it
 * turns a file the page receives from `get`, record by record, into a
 * download the browser writes to disk, without the file ever being whole
 * in memory.
 *
 * The page posts {type: 'download', id, name, size} with a MessagePort;
 * the worker answers 'ready' on the port, and the page then navigates a
 * hidden frame to `dl/ID/NAME` below this worker's scope. The worker
 * answers that request with a ReadableStream that asks the page for each
 * chunk ('pull') when the browser wants more: the page sends
 * {chunk: Uint8Array} or {done: true} (once the file's SHA-256 checked
 * out) in answer to a pull, and {error: text} at any time (the download
 * fails at once). The browser cancelling the
 * download is told to the page ({cancel: true}). Any other request is
 * left to the network.
 */
'use strict';

const pending = new Map();

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (ev) => ev.waitUntil(self.clients.claim()));

self.addEventListener('message', (ev) => {
  const d = ev.data;
  const port = ev.ports[0];
  if (!d || d.type !== 'download' || !port || typeof d.id !== 'string') return;
  let wake = null;
  let ctl = null;
  const stream = new ReadableStream(
    {
      start(controller) {
        ctl = controller;
      },
      pull(controller) {
        return new Promise((resolve) => {
          wake = (m) => {
            if (m.chunk instanceof Uint8Array) controller.enqueue(m.chunk);
            else if (m.done) controller.close();
            resolve();
          };
          port.postMessage('pull');
        });
      },
      cancel() {
        port.postMessage({ cancel: true });
        port.close();
      },
    },
    { highWaterMark: 1 },
  );
  port.onmessage = (m) => {
    const data = m.data ?? {};
    const w = wake;
    if (data.chunk instanceof Uint8Array || data.done) {
      // Sent only in answer to a pull.
      wake = null;
      if (w) w(data);
      return;
    }
    // An error (the page's transfer failed or was cancelled there) ends the
    // download at once: the page does not wait for a pull to report it, and
    // the browser may hold a chunk and not pull for a while — an error kept
    // for the next pull was lost, and the download hung in progress.
    wake = null;
    try {
      ctl.error(new Error(String(data.error ?? 'download failed')));
    } catch {
      // Already closed or errored.
    }
    if (w) w({});
    port.close();
  };
  pending.set(d.id, { stream, name: String(d.name), size: d.size });
  // Unclaimed for a minute: forget it.
  setTimeout(() => pending.delete(d.id), 60_000);
  port.postMessage('ready');
});

self.addEventListener('fetch', (ev) => {
  const url = new URL(ev.request.url);
  const scope = new URL(self.registration.scope);
  if (url.origin !== scope.origin || !url.pathname.startsWith(`${scope.pathname}dl/`)) return;
  const id = url.pathname.slice(scope.pathname.length + 3).split('/')[0];
  const d = pending.get(id);
  if (!d) {
    ev.respondWith(new Response('no such download\n', { status: 404, headers: { 'Content-Type': 'text/plain' } }));
    return;
  }
  pending.delete(id);
  const headers = {
    'Content-Type': 'application/octet-stream',
    'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(d.name)}`,
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': "default-src 'none'; sandbox",
  };
  if (Number.isSafeInteger(d.size) && d.size >= 0) headers['Content-Length'] = String(d.size);
  ev.respondWith(new Response(d.stream, { headers }));
});
