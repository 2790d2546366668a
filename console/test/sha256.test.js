// The console's incremental SHA-256 against the FIPS 180-4 examples and
// WebCrypto, on inputs cut at every point.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sha256 } from '../src/sha256.js';
import { toHex } from '../src/b64.js';

const webcrypto = async (b) => new Uint8Array(await crypto.subtle.digest('SHA-256', b));

test('FIPS 180-4 examples', () => {
  const enc = new TextEncoder();
  assert.equal(toHex(new Sha256().digest()), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(toHex(new Sha256().update(enc.encode('abc')).digest()), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(
    toHex(new Sha256().update(enc.encode('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')).digest()),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
  );
  const million = new Uint8Array(1_000_000).fill(0x61);
  assert.equal(toHex(new Sha256().update(million).digest()), 'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0');
});

test('equals WebCrypto at every length and every split', async () => {
  const data = crypto.getRandomValues(new Uint8Array(300));
  for (let n = 0; n <= 200; n++) {
    const want = toHex(await webcrypto(data.subarray(0, n)));
    for (const cut of [0, 1, 55, 56, 63, 64, 65, Math.floor(n / 2), n].filter((c) => c <= n)) {
      const h = new Sha256().update(data.subarray(0, cut)).update(data.subarray(cut, n));
      assert.equal(toHex(h.digest()), want, `n=${n} cut=${cut}`);
    }
  }
});

test('large input in odd pieces', async () => {
  const data = crypto.getRandomValues(new Uint8Array(65536)); // getRandomValues' limit
  const big = new Uint8Array(3 * 65536 + 17);
  for (let at = 0; at < big.length; at += 65536) big.set(data.subarray(0, Math.min(65536, big.length - at)), at);
  const h = new Sha256();
  for (let at = 0, step = 1; at < big.length; at += step, step = (step * 7 + 3) % 9001) h.update(big.subarray(at, at + step));
  assert.equal(toHex(h.digest()), toHex(await webcrypto(big)));
});

test('finished is finished', () => {
  const h = new Sha256();
  h.digest();
  assert.throws(() => h.update(new Uint8Array(1)));
  assert.throws(() => h.digest());
});
