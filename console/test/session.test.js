// session.js attacked by a hostile or broken server: an in-process `fetch`
// that speaks remo/1 with the vector server key (built from the protocol
// layer's own primitives) and then misbehaves on purpose — truncated,
// re-numbered, mis-channelled or mis-typed responses, a bad M2, a lying
// /info. Each must end in the documented typed error, never in a result.
// (The well-behaved paths run against the real remod in e2e.test.js.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { OpError, SessionError } from '../src/errors.js';
import { b64decode, b64encode, fromHex, fromUtf8, utf8 } from '../src/b64.js';
import { importPrivateKeyPem } from '../src/keys.js';
import { ephemeralFromScalar, m2, sessionKeyBytes, sharedSecret, signP1363 } from '../src/handshake.js';
import { importRecordKey } from '../src/record.js';
import { contentTypeOf, framingOfContentType, openMessage, sealMessage } from '../src/framing.js';
import { login } from '../src/session.js';

const v = JSON.parse(readFileSync(fileURLToPath(new URL('../../tests/vectors/protocol-vectors.json', import.meta.url)), 'utf8'));
const user = await importPrivateKeyPem(v.user.private_pem);
const server = await importPrivateKeyPem(v.server.private_pem);
const otherKey = await importPrivateKeyPem(v.certificate.ca.private_pem);
const BASE = 'https://remo.test/remo';
const SID = v.handshake.session;

const json = (status, body) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

/**
 * A fake remod. `opts.answer(op, req)` makes the response of an operation
 * from the opened request (`{r, op, plaintexts, framing}`) and the session
 * keys; the defaults behave.
 */
function fakeServer(opts = {}) {
  const state = { requests: [] };
  const fetch = async (url, init = {}) => {
    const path = new URL(url).pathname;
    if (path === '/remo/info') {
      return json(200, opts.info ?? { name: 'remo', version: '0.1.0', protocol: 'remo/1', key: v.server.public_sec1_b64, fingerprint: v.server.fingerprint, framings: ['text', 'binary'] });
    }
    if (path === '/remo/auth') {
      if (opts.authStatus) return json(opts.authStatus, { error: 'authentication failed' });
      const body = JSON.parse(init.body);
      const eph = await ephemeralFromScalar(fromHex(v.handshake.server_ephemeral_private_hex));
      const qc = b64decode(body.key);
      const z = await sharedSecret(eph.privateKey, qc);
      const k = await sessionKeyBytes(z, qc, eph.publicRaw, SID);
      state.c2s = await importRecordKey(k.c2s);
      state.s2c = await importRecordKey(k.s2c);
      const qsB64 = b64encode(eph.publicRaw);
      const signer = opts.m2Signer ?? server.privateKey;
      const sig = await signP1363(signer, utf8(m2(body.user, body.key, qsB64, SID)));
      return json(200, { session: SID, key: qsB64, sig: b64encode(sig), timeout: 600 });
    }
    const op = path.slice('/remo/'.length);
    assert.equal(init.headers['Remo-Session'], SID);
    const framing = framingOfContentType(init.headers['Content-Type']);
    const raw = init.body instanceof ReadableStream ? new Uint8Array(await new Response(init.body).arrayBuffer()) : init.body;
    const plaintexts = await openMessage(state.c2s, null, op, raw, framing);
    const first = framing === 'binary' ? raw.subarray(4, 12) : b64decode(fromUtf8(raw).split('\r\n')[0]);
    const r = Number(new DataView(first.buffer, first.byteOffset).getBigUint64(0));
    const req = { op, framing, plaintexts, descriptor: JSON.parse(fromUtf8(plaintexts[0])), r };
    state.requests.push(req);
    const answer = opts.answer ?? defaultAnswer;
    return answer(req, state);
  };
  return { fetch, state };
}

/** The first record of a sealed body, the rest cut off. */
function firstRecordOnly(body, framing) {
  if (framing === 'binary') return body.subarray(0, 4 + new DataView(body.buffer, body.byteOffset).getUint32(0));
  return body.subarray(0, body.indexOf(10) + 1);
}

async function sealed(state, r, op, plaintexts, framing, headers = {}) {
  const body = await sealMessage(state.s2c, r, op, plaintexts, framing);
  return new Response(body, { status: 200, headers: { 'Content-Type': contentTypeOf(framing), ...headers } });
}

const out = (ch, text) => new Uint8Array([ch, ...utf8(text)]);
const OK = utf8('{"ok":true,"exit":0,"signal":null,"timed_out":false}');

async function defaultAnswer(req, state) {
  return sealed(state, req.r, req.op, [out(1, 'hi\n'), out(2, 'err\n'), OK], req.framing);
}

async function session(opts, framing = 'binary') {
  const f = fakeServer(opts);
  const s = await login({ base: BASE, user: 'alice', key: user.privateKey, serverKeyPin: v.server.fingerprint, fetch: f.fetch, framing });
  return { s, state: f.state };
}

async function protocolRefusal(promise, cause) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof SessionError, String(e?.stack ?? e));
    assert.equal(e.code, 'protocol', e.message);
    if (cause) assert.equal(e.cause?.code, cause, e.message);
    return true;
  });
}

test('a well-behaved server: requests are sealed as the protocol says, output and result come back', async () => {
  for (const framing of ['text', 'binary']) {
    const { s, state } = await session({}, framing);
    const got = [];
    const result = await s.request('cmd', { argv: ['x'] }, { body: utf8('stdin'), onData: (ch, b) => got.push([ch, fromUtf8(b)]) });
    assert.deepEqual(got, [[1, 'hi\n'], [2, 'err\n']]);
    assert.equal(result.exit, 0);
    const req = state.requests[0];
    assert.equal(req.framing, framing);
    assert.deepEqual(req.descriptor, { argv: ['x'] });
    assert.deepEqual(req.plaintexts.slice(1).map(fromUtf8), ['stdin']);
    // A body of 3 records and a descriptor-only request.
    await s.request('put', { path: 'f' }, { body: new Uint8Array(65_537 * 2 + 5) });
    assert.deepEqual(state.requests[1].plaintexts.map((p) => p.length), [12, 65_537, 65_537, 5]);
    await s.request('cmd', { argv: ['y'] });
    assert.equal(state.requests[2].plaintexts.length, 1);
    assert.equal(s.nextR, 4);
  }
});

test('login: a lying /info, a bad M2, a refused login', async () => {
  const base = { name: 'remo', version: '0', protocol: 'remo/1', key: v.server.public_sec1_b64, fingerprint: v.server.fingerprint };
  const attempt = (opts, pin = v.server.fingerprint) => {
    const f = fakeServer(opts);
    return login({ base: BASE, user: 'alice', key: user.privateKey, serverKeyPin: pin, fetch: f.fetch });
  };
  await protocolRefusal(attempt({ info: { ...base, fingerprint: v.user.fingerprint } }));
  await protocolRefusal(attempt({ info: { ...base, protocol: 'remo/2' } }));
  await protocolRefusal(attempt({ info: { ...base, key: 'BAAA' } }));
  await protocolRefusal(attempt({ info: { ...base, framings: 'binary' } }));
  // Another key than the pin: refused before /auth is even tried.
  await assert.rejects(attempt({ info: { ...base, key: v.user.public_sec1_b64, fingerprint: undefined } }), (e) => {
    assert.equal(e.code, 'server_key_changed');
    assert.equal(e.pinned, v.server.fingerprint);
    assert.equal(e.offered, v.user.fingerprint);
    return true;
  });
  // M2 signed by another key than the one /info gave: no session.
  await assert.rejects(attempt({ m2Signer: otherKey.privateKey }), { code: 'bad_server_signature' });
  await assert.rejects(attempt({ authStatus: 401 }), { code: 'auth_failed' });
  await assert.rejects(attempt({ authStatus: 400 }), (e) => e.code === 'http' && e.status === 400 && e.serverMessage === 'authentication failed');
  // Text only: binary cannot be forced, auto picks text.
  const textOnly = fakeServer({ info: base });
  await protocolRefusal(login({ base: BASE, user: 'alice', key: user.privateKey, fetch: textOnly.fetch, framing: 'binary' }));
  const s = await login({ base: BASE, user: 'alice', key: user.privateKey, fetch: textOnly.fetch });
  assert.equal(s.framing, 'text');
});

test('hostile responses end in typed errors, never in a result', async () => {
  const r1 = async (req) => req.r;
  const cases = [
    ['truncated (no last record)', async (req, st) => {
      const body = await sealMessage(st.s2c, req.r, req.op, [out(1, 'a'), OK], req.framing);
      return new Response(firstRecordOnly(body, req.framing), { headers: { 'Content-Type': contentTypeOf(req.framing) } });
    }, 'truncated'],
    ['cut inside a record', async (req, st) => {
      const body = await sealMessage(st.s2c, req.r, req.op, [out(1, 'a'), OK], req.framing);
      return new Response(body.subarray(0, body.length - 3), { headers: { 'Content-Type': contentTypeOf(req.framing) } });
    }, (f) => (f === 'binary' ? 'partial_record' : 'partial_line')],
    ['another request number', async (req, st) => sealed(st, 99, req.op, [OK], req.framing), 'wrong_request'],
    ['another operation', async (req, st) => sealed(st, await r1(req, st), 'get', [OK], req.framing), 'auth'],
    ['sealed with the request key', async (req, st) => new Response(await sealMessage(st.c2s, await r1(req, st), req.op, [OK], req.framing), { headers: { 'Content-Type': contentTypeOf(req.framing) } }), 'auth'],
    ['bytes after the last record', async (req, st) => {
      const body = await sealMessage(st.s2c, await r1(req, st), req.op, [OK], req.framing);
      return new Response(new Uint8Array([...body, ...body]), { headers: { 'Content-Type': contentTypeOf(req.framing) } });
    }, 'after_last'],
    ['an empty body', async (req) => new Response(new Uint8Array(0), { headers: { 'Content-Type': contentTypeOf(req.framing) } }), 'empty'],
    ['an unknown channel', async (req, st) => sealed(st, await r1(req, st), req.op, [out(3, 'x'), OK], req.framing), undefined],
    ['an empty output record', async (req, st) => sealed(st, await r1(req, st), req.op, [new Uint8Array(0), OK], req.framing), undefined],
    ['a final record that is not JSON', async (req, st) => sealed(st, await r1(req, st), req.op, [utf8('{ok')], req.framing), undefined],
    ['a result without ok', async (req, st) => sealed(st, await r1(req, st), req.op, [utf8('{"exit":0}')], req.framing), undefined],
    ['an ok that is not a boolean', async (req, st) => sealed(st, await r1(req, st), req.op, [utf8('{"ok":"yes"}')], req.framing), undefined],
    ['records under another Content-Type', async (req, st) => sealed(st, await r1(req, st), req.op, [OK], req.framing, { 'Content-Type': 'text/plain' }), undefined],
    ['a failure without a code', async (req, st) => sealed(st, await r1(req, st), req.op, [utf8('{"ok":false}')], req.framing), undefined],
    ['the other framing', async (req, st) => sealed(st, await r1(req, st), req.op, [OK], req.framing === 'binary' ? 'text' : 'binary'), undefined],
    ['JSON instead of records', async () => json(200, { ok: true }), undefined],
  ];
  for (const framing of ['text', 'binary']) {
    for (const [name, answer, cause] of cases) {
      const { s } = await session({ answer }, framing);
      const seen = [];
      const want = typeof cause === 'function' ? cause(framing) : cause;
      await protocolRefusal(s.request('cmd', { argv: ['x'] }, { onData: (ch, b) => seen.push(b) }), want).catch((e) => {
        e.message = `${framing}, ${name}: ${e.message}`;
        throw e;
      });
    }
  }
});

test('statuses, operation errors, and a caller that gives up', async () => {
  const { s } = await session({
    answer: async (req, st) => {
      const r = req.r;
      if (req.descriptor.status) return json(req.descriptor.status, { error: 'request number reused' });
      if (req.descriptor.fail) {
        return sealed(st, r, req.op, [utf8('{"ok":false,"error":{"code":"forbidden","message":"not for you"}}')], req.framing);
      }
      return sealed(st, r, req.op, [out(1, 'one'), out(1, 'two'), OK], req.framing);
    },
  });
  await assert.rejects(s.request('cmd', { status: 409 }), (e) => {
    assert.ok(e instanceof SessionError);
    assert.equal(e.code, 'http');
    assert.equal(e.status, 409);
    assert.equal(e.serverMessage, 'request number reused');
    return true;
  });
  await assert.rejects(s.request('cmd', { fail: true }), (e) => {
    assert.ok(e instanceof OpError);
    assert.equal(e.code, 'forbidden');
    assert.equal(e.message, 'not for you');
    assert.equal(e.result.ok, false);
    return true;
  });
  // An onData that throws stops the request with its own error.
  const mine = new Error('stop here');
  await assert.rejects(s.request('cmd', {}, { onData: () => { throw mine; } }), (e) => e === mine);
  // Abort before sending.
  const ac = new AbortController();
  ac.abort();
  const f = fakeServer();
  const s2 = await login({ base: BASE, user: 'alice', key: user.privateKey, fetch: async (url, init) => {
    if (init?.signal?.aborted) throw init.signal.reason;
    return f.fetch(url, init);
  } });
  await assert.rejects(s2.request('cmd', {}, { signal: ac.signal }), (e) => e.name === 'AbortError');
  // Bad arguments are TypeErrors, not requests.
  await assert.rejects(s.request('../info', {}), TypeError);
  await assert.rejects(s.request('cmd', {}, { body: 42 }), TypeError);
});
