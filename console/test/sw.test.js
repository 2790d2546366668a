// The service worker (sw.js) that turns the page's `get` records into a
// browser download: run in node's vm with a stand-in for `self`, the page
// side played by the test through the MessageChannel the page would use.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const source = readFileSync(new URL('../sw.js', import.meta.url), 'utf8');

/** Loads sw.js; returns its listeners by event type. */
function loadWorker() {
  const listeners = {};
  const self = {
    addEventListener: (type, fn) => {
      listeners[type] = fn;
    },
    registration: { scope: 'https://example.test/remo/console/' },
    clients: { claim: async () => {} },
    skipWaiting: () => {},
  };
  vm.runInNewContext(source, { self, ReadableStream, Response, URL, Error, String, Map, Uint8Array, Number, setTimeout: (f, ms) => setTimeout(f, ms).unref(), encodeURIComponent });
  return listeners;
}

/** Starts a download as the page does; returns the page's port, the
 * response the worker gives the browser, and the page's received messages. */
async function startDownload(size) {
  const l = loadWorker();
  const { port1, port2 } = new MessageChannel();
  const got = [];
  let onMsg = null;
  port1.onmessage = (m) => {
    got.push(m.data);
    onMsg?.(m.data);
  };
  const next = (what) =>
    new Promise((resolve) => {
      const seen = got.findIndex((d) => d === what || (what === 'cancel' && d?.cancel));
      if (seen >= 0) {
        got.splice(seen, 1);
        resolve();
        return;
      }
      onMsg = (d) => {
        if (d === what || (what === 'cancel' && d?.cancel)) {
          got.splice(got.indexOf(d), 1);
          onMsg = null;
          resolve();
        }
      };
    });
  l.message({ data: { type: 'download', id: 'x1', name: 'f.bin', size }, ports: [port2] });
  await next('ready');
  let response = null;
  l.fetch({ request: { url: 'https://example.test/remo/console/dl/x1/f.bin' }, respondWith: (r) => (response = r) });
  assert.ok(response, 'the worker answered the download request');
  return { port: port1, response, next, close: () => port1.close() };
}

/** A promise's outcome within `ms`, or 'pending'. */
function within(p, ms) {
  return Promise.race([
    p.then(
      (v) => ({ ok: v }),
      (e) => ({ err: e }),
    ),
    new Promise((r) => setTimeout(() => r('pending'), ms)),
  ]);
}

test('chunks the page sends on pulls become the download, done completes it', async () => {
  const d = await startDownload(6);
  const reader = d.response.body.getReader();
  await d.next('pull');
  d.port.postMessage({ chunk: new Uint8Array([1, 2, 3]) });
  assert.deepEqual([...(await reader.read()).value], [1, 2, 3]);
  await d.next('pull');
  d.port.postMessage({ chunk: new Uint8Array([4, 5, 6]) });
  assert.deepEqual([...(await reader.read()).value], [4, 5, 6]);
  await d.next('pull');
  d.port.postMessage({ done: true });
  assert.equal((await reader.read()).done, true);
  d.close();
});

test('an error the page sends while no pull is waiting still fails the download', async () => {
  // The browser has not asked for more yet (its queue holds a chunk) when
  // the user cancels in the page: the page reports the error at once, and
  // the download must fail then, not hang in progress for ever.
  const d = await startDownload(1 << 20);
  await d.next('pull');
  d.port.postMessage({ chunk: new Uint8Array(16) });
  await new Promise((r) => setTimeout(r, 50)); // the worker has queued it; no pull waits
  d.port.postMessage({ error: 'the download was cancelled' });
  await new Promise((r) => setTimeout(r, 50));
  const reader = d.response.body.getReader();
  const outcome = await within(
    (async () => {
      for (;;) {
        const r = await reader.read();
        if (r.done) return 'done';
      }
    })(),
    2000,
  );
  assert.notEqual(outcome, 'pending', 'the download still hangs after the page reported its error');
  assert.ok(outcome.err, `the download did not fail: ${JSON.stringify(outcome)}`);
  assert.match(String(outcome.err.message), /cancelled/);
  d.close();
});

test('an error the page sends while a pull waits fails the download', async () => {
  const d = await startDownload(1 << 20);
  const reader = d.response.body.getReader();
  await d.next('pull');
  d.port.postMessage({ error: 'checksum mismatch' });
  const outcome = await within(reader.read(), 2000);
  assert.ok(outcome.err, `the download did not fail: ${JSON.stringify(outcome)}`);
  assert.match(String(outcome.err.message), /checksum mismatch/);
  d.close();
});

test('the browser cancelling the download tells the page', async () => {
  const d = await startDownload(1 << 20);
  await d.next('pull');
  await d.response.body.cancel();
  await d.next('cancel');
  d.close();
});
