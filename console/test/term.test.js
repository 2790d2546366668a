// RemoteProcess (src/ui/term.js) against a scripted connection: the
// requests it makes, in which order, with which bodies; output delivered
// in order with backpressure; the end reported once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RemoteProcess, MAX_SEND, MAX_QUEUED, POLL_WAIT_MS } from '../src/ui/term.js';
import { OpError } from '../src/errors.js';

/** A connection whose answers the test gives, request by request. */
function fakeConn() {
  const calls = [];
  const waiting = [];
  const conn = {
    calls,
    request(op, desc, opts = {}) {
      return new Promise((resolve, reject) => {
        const call = { op, desc, body: opts.body, onData: opts.onData, resolve, reject };
        opts.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        calls.push(call);
        const w = waiting.shift();
        if (w) w(call);
      });
    },
    /** The next request made (already made, or the next one). */
    next() {
      const made = calls.find((c) => !c.taken);
      if (made) {
        made.taken = true;
        return Promise.resolve(made);
      }
      return new Promise((r) =>
        waiting.push((c) => {
          c.taken = true;
          r(c);
        }),
      );
    },
  };
  return conn;
}

const ok = (running, extra = {}) => ({ ok: true, id: 'p1', running, exit: null, signal: null, ...extra });

test('start, long poll, output in order, end once', async () => {
  const conn = fakeConn();
  const out = [];
  const ends = [];
  const p = new RemoteProcess(conn, { onOutput: (b) => out.push(new TextDecoder().decode(b)), onEnd: (e) => ends.push(e) });
  const started = p.start({ argv: ['sh'], pty: { rows: 24, cols: 80 } });
  const icm = await conn.next();
  assert.equal(icm.op, 'icm');
  assert.deepEqual(icm.desc, { argv: ['sh'], pty: { rows: 24, cols: 80 }, wait_ms: 0 });
  await icm.onData(1, new TextEncoder().encode('$ '));
  icm.resolve(ok(true));
  await started;
  const poll = await conn.next();
  assert.equal(poll.op, 'idt');
  assert.deepEqual(poll.desc, { id: 'p1', wait_ms: POLL_WAIT_MS });
  await poll.onData(1, new TextEncoder().encode('hi\r\n'));
  poll.resolve(ok(true));
  const poll2 = await conn.next();
  poll2.resolve(ok(false, { exit: 3 }));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(out, ['$ ', 'hi\r\n']);
  assert.deepEqual(ends, [{ exit: 3, signal: null }]);
  assert.equal(p.running, false);
  assert.equal(p.received, 6);
  assert.equal(conn.calls.length, 3, 'no poll after the end');
});

test('input: at once beside the poll, one request at a time, in order, cut at MAX_SEND', async () => {
  const conn = fakeConn();
  const p = new RemoteProcess(conn);
  const started = p.start({ argv: ['cat'] });
  (await conn.next()).resolve(ok(true));
  await started;
  const poll = await conn.next();
  assert.equal(p.send(new Uint8Array([97])), true);
  const first = await conn.next();
  assert.equal(first.op, 'idt');
  assert.deepEqual(first.desc, { id: 'p1', wait_ms: 0 });
  assert.deepEqual([...first.body], [97]);
  // While it is out, more input waits and is then sent together.
  p.send(new Uint8Array([98]));
  p.send(new Uint8Array(MAX_SEND).fill(99));
  assert.equal(conn.calls.filter((c) => !c.taken).length, 0, 'one input request at a time');
  first.resolve(ok(true));
  const second = await conn.next();
  assert.equal(second.body.length, MAX_SEND);
  assert.equal(second.body[0], 98);
  assert.equal(second.body[1], 99);
  second.resolve(ok(true));
  const third = await conn.next();
  assert.deepEqual([...third.body], [99]);
  third.resolve(ok(true));
  // Too much waiting is refused.
  assert.equal(p.send(new Uint8Array(MAX_QUEUED + 1)), false);
  poll.resolve(ok(false, { exit: 0 }));
});

test('backpressure: the next poll waits for the screen', async () => {
  const conn = fakeConn();
  let release;
  const out = [];
  const p = new RemoteProcess(conn, {
    onOutput: (b) => {
      out.push(b.length);
      return new Promise((r) => (release = r));
    },
  });
  const started = p.start({ argv: ['yes'] });
  const icm = await conn.next();
  await icm.onData(1, new Uint8Array(10));
  icm.resolve(ok(true, { offset: 0 }));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(out, [10]);
  assert.equal(conn.calls.length, 1, 'no poll while the screen is busy');
  release();
  await started;
  const poll = await conn.next();
  assert.equal(poll.op, 'idt');
  poll.resolve(ok(false, { signal: 13 }));
});

/** A started shell with its poll out and one keystroke's request out. */
async function crossing(out) {
  const conn = fakeConn();
  const p = new RemoteProcess(conn, { onOutput: (b) => out.push(new TextDecoder().decode(b)) });
  const started = p.start({ argv: ['sh'] });
  const icm = await conn.next();
  await icm.onData(1, new TextEncoder().encode('$ '));
  return { conn, p, icm, started };
}

test('answers that cross are written in offset order', async () => {
  const out = [];
  const { conn, icm, p, started } = await crossing(out);
  icm.resolve(ok(true, { offset: 0 }));
  await started;
  const poll = await conn.next();
  p.send(new TextEncoder().encode('l'));
  const key = await conn.next();
  // The key's answer took the echo (offset 2), the poll the output after it
  // (offset 3); the poll's result arrives first.
  await key.onData(1, new TextEncoder().encode('l'));
  await poll.onData(1, new TextEncoder().encode('out'));
  poll.resolve(ok(true, { offset: 3 }));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(out, ['$ '], 'held until the output before it is there');
  assert.equal(conn.calls.length, 3, 'no new poll while its answer waits');
  key.resolve(ok(true, { offset: 2 }));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(out, ['$ ', 'l', 'out']);
  assert.equal(p.received, 6);
  const poll2 = await conn.next();
  assert.equal(poll2.op, 'idt');
  poll2.resolve(ok(false, { exit: 0, offset: 6 }));
});

test('without offset (an older server), arrival order', async () => {
  const out = [];
  const { conn, icm, p, started } = await crossing(out);
  icm.resolve(ok(true));
  await started;
  const poll = await conn.next();
  p.send(new TextEncoder().encode('l'));
  const key = await conn.next();
  await key.onData(1, new TextEncoder().encode('l'));
  await poll.onData(1, new TextEncoder().encode('out'));
  poll.resolve(ok(true));
  await new Promise((r) => setTimeout(r, 10));
  key.resolve(ok(true));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(out, ['$ ', 'out', 'l']);
  (await conn.next()).resolve(ok(false, { exit: 0 }));
});

test('a process gone with its session ends the terminal, with the reason', async () => {
  const conn = fakeConn();
  const ends = [];
  const p = new RemoteProcess(conn, { onEnd: (e) => ends.push(e) });
  const started = p.start({ argv: ['sh'] });
  (await conn.next()).resolve(ok(true));
  await started;
  (await conn.next()).reject(new OpError('not_found', 'no such process', {}));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(ends.length, 1);
  assert.match(ends[0].error, /gone/);
  assert.equal(p.send(new Uint8Array([1])), false);
});

test('resize and kill name the process', async () => {
  const conn = fakeConn();
  const p = new RemoteProcess(conn);
  const started = p.start({ argv: ['sh'], pty: { rows: 1, cols: 1 } });
  (await conn.next()).resolve(ok(true));
  await started;
  const poll = await conn.next();
  const r = p.resize(40, 100);
  const rz = await conn.next();
  assert.deepEqual([rz.op, rz.desc], ['resize', { id: 'p1', rows: 40, cols: 100 }]);
  rz.resolve({ ok: true });
  await r;
  const k = p.kill('INT');
  const kl = await conn.next();
  assert.deepEqual([kl.op, kl.desc], ['kill', { id: 'p1', signal: 'INT' }]);
  kl.resolve({ ok: true });
  await k;
  poll.resolve(ok(false, { signal: 2 }));
});
