// The streaming side of records and framings: bodies cut at every byte,
// the line and length limits at their exact boundaries, order and `last`
// rules, and strict base64url.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { B64Error, RecordError } from '../src/errors.js';
import { b64decode, b64encode, concatBytes, fromHex, toHex, utf8 } from '../src/b64.js';
import { MAX_PLAINTEXT, Opener, Sealer, importRecordKey } from '../src/record.js';
import {
  BinarySplitter,
  LineSplitter,
  MAX_LINE,
  RecordSplitter,
  framedLength,
  framingOfContentType,
  openMessage,
  openRecords,
  sealMessage,
} from '../src/framing.js';

const v = JSON.parse(readFileSync(fileURLToPath(new URL('../../tests/vectors/protocol-vectors.json', import.meta.url)), 'utf8'));
const key = await importRecordKey(fromHex(v.handshake.K_c2s_hex));

function code(c) {
  return (e) => {
    assert.ok(e instanceof RecordError, String(e));
    assert.equal(e.code, c, e.message);
    return true;
  };
}

/** All records a splitter gives for `chunks`, then finish(). */
function splitAll(splitter, chunks) {
  const out = [];
  for (const c of chunks) {
    splitter.push(c);
    for (let r = splitter.next(); r !== null; r = splitter.next()) out.push(toHex(r));
  }
  splitter.finish();
  return out;
}

test('splitters give the same records however the body is cut', () => {
  const text = utf8(v.records.put_request_R2.body);
  const bin = fromHex(v.binary_framing.put_request_R2.body_hex);
  for (const [framing, body] of [
    ['text', text],
    ['binary', bin],
  ]) {
    const whole = splitAll(new RecordSplitter(framing), [body]);
    assert.equal(whole.length, 4);
    for (let k = 0; k <= body.length; k++) {
      for (const j of [k, Math.min(k + 1, body.length), Math.min(k + 30, body.length)]) {
        const got = splitAll(new RecordSplitter(framing), [body.subarray(0, k), body.subarray(k, j), body.subarray(j)]);
        assert.deepEqual(got, whole, `${framing} cut at ${k}, ${j}`);
      }
    }
    const bytes = [...body].map((b) => Uint8Array.of(b));
    assert.deepEqual(splitAll(new RecordSplitter(framing), bytes), whole, `${framing} byte by byte`);
  }
});

test('text framing: the 87,420-character line limit, before decoding', () => {
  const a = (n) => new Uint8Array(n).fill(65);
  const crlf = utf8('\r\n');
  // Exactly the limit: a line.
  let s = new LineSplitter();
  s.push(concatBytes([a(MAX_LINE), crlf]));
  assert.equal(s.next().length, MAX_LINE);
  // One more: refused, whether the CRLF is in or not.
  s = new LineSplitter();
  s.push(concatBytes([a(MAX_LINE + 1), crlf]));
  assert.throws(() => s.next(), code('line_too_long'));
  s = new LineSplitter();
  s.push(a(MAX_LINE + 1));
  assert.equal(s.next(), null, 'a full line and a CR may be in');
  s.push(a(1));
  assert.throws(() => s.next(), code('line_too_long'));
  // Fed in small chunks, refused as soon as it is known, long before 1 MB.
  s = new LineSplitter();
  let threw = false;
  for (let k = 0; k < 1000 && !threw; k++) {
    s.push(a(1000));
    try {
      s.next();
    } catch (e) {
      code('line_too_long')(e);
      threw = true;
      assert.ok(k <= 88, `refused after ${k} KB`);
    }
  }
  assert.ok(threw);
  // A cut line at the end; a bad character inside a line.
  s = new LineSplitter();
  s.push(utf8('QUJD\r\nQUJ'));
  assert.equal(s.next().length, 4);
  assert.equal(s.next(), null);
  assert.throws(() => s.finish(), code('partial_line'));
  const r = new RecordSplitter('text');
  r.push(utf8('QUJD=\r\n'));
  assert.throws(() => r.next(), code('malformed'));
});

test('the largest record fills the largest line and the largest binary length exactly', async () => {
  const big = new Uint8Array(MAX_PLAINTEXT).fill(7);
  assert.equal(framedLength(MAX_PLAINTEXT, 'text'), MAX_LINE + 2);
  assert.equal(framedLength(MAX_PLAINTEXT, 'binary'), 4 + 65_565);
  for (const framing of ['text', 'binary']) {
    const body = await sealMessage(key, 9, 'put', [utf8('{}'), big], framing);
    const opened = await openMessage(key, 9, 'put', body, framing);
    assert.equal(opened[1].length, MAX_PLAINTEXT);
  }
  await assert.rejects(sealMessage(key, 9, 'put', [new Uint8Array(MAX_PLAINTEXT + 1)], 'text'), code('too_large'));
  // A binary length of 65,565 is read; 65,566 is not (the vectors' case).
  const s = new BinarySplitter();
  s.push(fromHex('0001001d'));
  assert.equal(s.next(), null);
});

test('order, last and truncation rules', async () => {
  const parts = [utf8('{"path":"x"}'), utf8('a'), utf8('b')];
  for (const framing of ['text', 'binary']) {
    const body = await sealMessage(key, 3, 'put', parts, framing);
    const recs = splitAll(new RecordSplitter(framing), [body]).map(fromHex);
    const frame = async (raws) => {
      // Re-frame raw records.
      if (framing === 'binary') {
        return concatBytes(raws.flatMap((r) => [Uint8Array.of(0, 0, r.length >> 8, r.length & 255), r]));
      }
      return utf8(raws.map((r) => `${b64encode(r)}\r\n`).join(''));
    };
    await assert.rejects(openMessage(key, 3, 'put', await frame([recs[1], recs[0], recs[2]]), framing), code('out_of_order'));
    await assert.rejects(openMessage(key, 3, 'put', await frame([recs[0], recs[2]]), framing), code('out_of_order'));
    await assert.rejects(openMessage(key, 3, 'put', await frame([...recs, recs[2]]), framing), code('after_last'));
    await assert.rejects(openMessage(key, 3, 'put', await frame(recs.slice(0, 2)), framing), code('truncated'));
    await assert.rejects(openMessage(key, 3, 'put', new Uint8Array(0), framing), code('empty'));
    const tampered = recs[1].slice();
    tampered[20] ^= 1;
    await assert.rejects(openMessage(key, 3, 'put', await frame([recs[0], tampered, recs[2]]), framing), code('auth'));
    await assert.rejects(openMessage(key, 3, 'put', concatBytes([body, Uint8Array.of(0)]), framing), code(framing === 'binary' ? 'partial_record' : 'partial_line'));
  }
  const sealer = new Sealer(key, 1, 'cmd');
  await sealer.seal(utf8('{}'), true);
  await assert.rejects(sealer.seal(utf8('x'), false), code('after_last'));
  const opener = new Opener(key, 1, 'cmd');
  await assert.rejects(opener.open(new Uint8Array(27)), code('malformed'));
});

test('openRecords yields each record as soon as its bytes are in', async () => {
  const body = await sealMessage(key, 5, 'cmd', [utf8('{"argv":["x"]}'), utf8('one'), utf8('two')], 'binary');
  const recs = splitAll(new RecordSplitter('binary'), [body]).map(fromHex);
  let release;
  const gate = new Promise((r) => (release = r));
  const events = [];
  async function* chunks() {
    yield concatBytes([Uint8Array.of(0, 0, 0, recs[0].length), recs[0]]);
    events.push('waiting');
    await gate;
    yield body.subarray(4 + recs[0].length);
  }
  const it = openRecords(key, 5, 'cmd', chunks(), 'binary');
  const first = await it.next();
  events.push(`record ${first.value.index}`);
  assert.deepEqual(events, ['record 0'], 'record 0 came before the rest of the body was asked for');
  release();
  const rest = [];
  for await (const r of it) rest.push(r.index);
  assert.deepEqual(rest, [1, 2]);
});

test('b64: strict base64url without padding', () => {
  assert.deepEqual(b64decode('YWI'), utf8('ab'));
  assert.deepEqual(b64decode(''), new Uint8Array(0));
  for (const bad of ['YWI=', 'YWI==', 'YW+', 'YW/', 'YW I', 'YWJ', 'YR', 'Y', 'YQ=', 'é', 'YW\u0100', '\u0000AAA']) {
    assert.throws(() => b64decode(bad), B64Error, JSON.stringify(bad));
  }
  for (let n = 0; n < 70; n++) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 255);
    const s = b64encode(bytes);
    assert.equal(s, Buffer.from(bytes).toString('base64url'));
    assert.deepEqual(b64decode(s), bytes);
  }
});

test('Content-Type names a framing exactly', () => {
  assert.equal(framingOfContentType('application/x-remo'), 'text');
  assert.equal(framingOfContentType('Application/X-Remo-Bin; charset=x'), 'binary');
  assert.equal(framingOfContentType('application/x-remo-binary'), null);
  assert.equal(framingOfContentType('application/json'), null);
  assert.equal(framingOfContentType(null), null);
});
