// The upload's hashing in slices (src/ui/transfer.js): the same digest as
// one update, the page's other tasks run between slices, and an abort
// stops it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { hashInSlices, HASH_SLICE } from '../src/ui/transfer.js';
import { Sha256 } from '../src/sha256.js';
import { toHex } from '../src/b64.js';

const data = new Uint8Array(4 * HASH_SLICE + 3).map((_, i) => (i * 7919) & 0xff);

test('the digest of a part hashed in slices is its SHA-256', async () => {
  const h = new Sha256();
  await hashInSlices(h, data);
  assert.equal(toHex(h.digest()), createHash('sha256').update(data).digest('hex'));
});

test('other tasks run between slices', async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  try {
    await hashInSlices(new Sha256(), data);
  } finally {
    clearInterval(timer);
  }
  assert.ok(ticks >= 2, `the event loop turned ${ticks} times`);
});

test('an abort stops the hashing', async () => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error('stop')), 0);
  await assert.rejects(hashInSlices(new Sha256(), data, ac.signal), /stop/);
});
