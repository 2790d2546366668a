// End to end: session.js in node against the real remod with its embedded
// HTTP front door, quick-start style (`remod serve --http ADDR --dir DIR`,
// first run), in both framings: login with key files made by remod itself
// and by openssl (registered with `remod user add`), `cmd` with stdout,
// stderr, stdin and the exit code, streamed output, operation errors,
// logout, and a server whose key changed under a pin.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { OpError, SessionError } from '../src/errors.js';
import { fromUtf8, concatBytes } from '../src/b64.js';
import { importPrivateKeyPem, importPublicKeyPem } from '../src/keys.js';
import { getInfo, login } from '../src/session.js';
import { binary, run, scratch } from '../test-support/helpers.js';

const START_TIMEOUT_MS = 30_000;

/** A free port on 127.0.0.1 (the OS picks; a race is unlikely and shows as a bind error). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The environment for remod and remo without the caller's REMO_* settings. */
function cleanEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REMO_')) delete env[k];
  return { ...env, ...extra };
}

/**
 * `remod serve --http 127.0.0.1:PORT --dir DIR` in its own process group,
 * waited for until `/info` answers; `stop()` ends the group, `log()` reads
 * its output.
 */
async function startRemod(dir, logFile) {
  const remod = binary('remod');
  const port = await freePort();
  const fd = openSync(logFile, 'a');
  const child = spawn(remod, ['serve', '--http', `127.0.0.1:${port}`, '--dir', dir], {
    env: cleanEnv({ RUST_LOG: 'info' }),
    stdio: ['ignore', fd, fd],
    detached: true,
  });
  closeSync(fd);
  let exited = null;
  child.on('exit', (code, signal) => (exited = { code, signal }));
  const base = `http://127.0.0.1:${port}`;
  const log = () => readFileSync(logFile, 'utf8');
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exited) throw new Error(`remod exited early (${JSON.stringify(exited)}):\n${log()}`);
    try {
      await getInfo(base);
      break;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`remod did not answer /info within ${START_TIMEOUT_MS} ms (${e}):\n${log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const stop = async () => {
    if (exited) return;
    const gone = new Promise((r) => child.once('exit', r));
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 5000);
    await gone;
    clearTimeout(timer);
  };
  return { base, stop, log, running: () => !exited };
}

/** Runs `fn`; on failure, adds the server's log to the error. */
async function withLog(server, fn) {
  try {
    return await fn();
  } catch (e) {
    e.message += `\n----- remod log -----\n${server.log()}`;
    throw e;
  }
}

const SH = '/bin/sh';

/** `cmd` collecting both channels. */
async function cmd(session, descriptor, options = {}) {
  const out = { 1: [], 2: [] };
  const result = await session.request('cmd', descriptor, {
    ...options,
    onData: (ch, bytes) => {
      out[ch].push(bytes.slice());
    },
  });
  return { result, stdout: concatBytes(out[1]), stderr: concatBytes(out[2]) };
}

async function checkSession(session, framing) {
  assert.equal(session.framing, framing);
  assert.equal(session.nextR, 1);

  // stdout, stderr and the exit code, argv executed directly.
  const r1 = await cmd(session, { argv: [SH, '-c', 'printf out1; printf err1 >&2; printf out2; exit 3'] });
  assert.equal(fromUtf8(r1.stdout), 'out1out2', framing);
  assert.equal(fromUtf8(r1.stderr), 'err1', framing);
  assert.equal(r1.result.ok, true);
  assert.equal(r1.result.exit, 3);
  assert.equal(r1.result.signal, null);
  assert.equal(r1.result.timed_out, false);
  assert.equal(session.nextR, 2);

  // stdin: a body of several records comes back byte for byte.
  const data = new Uint8Array(randomBytes(300_000));
  const r2 = await cmd(session, { argv: ['cat'] }, { body: data });
  assert.equal(r2.result.exit, 0);
  assert.equal(r2.stdout.length, data.length);
  assert.equal(createHash('sha256').update(r2.stdout).digest('hex'), createHash('sha256').update(data).digest('hex'));

  // A streamed body (ReadableStream, duplex: 'half'), from an async generator.
  async function* produce() {
    for (let k = 0; k < 5; k++) {
      await new Promise((r) => setTimeout(r, 20));
      yield new TextEncoder().encode(`line ${k}\n`);
    }
  }
  const r3 = await cmd(session, { argv: ['cat'] }, { body: produce(), stream: true });
  assert.equal(fromUtf8(r3.stdout), 'line 0\nline 1\nline 2\nline 3\nline 4\n');
  const r3b = await cmd(session, { argv: ['wc', '-c'] }, { body: produce() });
  assert.equal(fromUtf8(r3b.stdout).trim(), '35');

  // Output is delivered as it is produced, not at the end.
  const times = [];
  const t0 = Date.now();
  const r4 = await session.request('cmd', { argv: [SH, '-c', 'printf first; sleep 1; printf second'] }, {
    onData: (ch, bytes) => times.push([fromUtf8(bytes), Date.now() - t0]),
  });
  const done = Date.now() - t0;
  assert.equal(r4.exit, 0);
  assert.equal(times[0][0], 'first');
  assert.ok(times[0][1] < done - 500, `the first output came at ${times[0][1]} ms, the result at ${done} ms`);

  // An operation's failure is an OpError with its code.
  await assert.rejects(session.request('get', { path: '/nonexistent/remo-console-test' }), (e) => {
    assert.ok(e instanceof OpError, String(e));
    assert.equal(e.code, 'not_found', e.message);
    assert.equal(e.result.ok, false);
    return true;
  });
  await assert.rejects(session.request('cmd', { argv: ['true'], bogus: 1 }), (e) => e instanceof OpError && e.code === 'bad_request');

  // Logout ends the session on the server too.
  const out = await session.logout();
  assert.equal(out.ok, true);
  assert.equal(session.closed, true);
  await assert.rejects(session.request('cmd', { argv: ['true'] }), (e) => e instanceof SessionError && e.code === 'closed');
  session.closed = false; // pretend we did not know: the server refuses it
  await assert.rejects(session.request('cmd', { argv: ['true'] }), (e) => {
    assert.ok(e instanceof SessionError, String(e));
    assert.equal(e.code, 'http');
    assert.equal(e.status, 401);
    return true;
  });
}

test('session.js against the real remod, both framings, and a changed server key', async (t) => {
  const { dir, cleanup } = scratch('e2e');
  t.after(cleanup);
  const data = join(dir, 'data');
  let server = await startRemod(data, join(dir, 'remod.log'));
  t.after(() => server.stop());

  await withLog(server, async () => {
    const info = await getInfo(server.base);
    assert.deepEqual(info.framings, ['text', 'binary']);
    assert.equal(info.protocol, 'remo/1');
    // The fingerprint of the key remod wrote, computed from its file.
    const serverPub = await importPublicKeyPem(readFileSync(join(data, 'server.pub'), 'utf8'));
    assert.equal(info.fingerprint, serverPub.fingerprint);
    const pin = info.fingerprint;

    // A user registered with `remod user add`, whose key openssl made and
    // encrypted (PBES2, AES-256-CBC, PBKDF2-HMAC-SHA256).
    run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(dir, 'alice.plain')]);
    run('openssl', ['pkcs8', '-topk8', '-in', join(dir, 'alice.plain'), '-v2', 'aes-256-cbc', '-v2prf', 'hmacWithSHA256', '-passout', 'pass:alice pw', '-out', join(dir, 'alice.key')]);
    run('openssl', ['pkey', '-in', join(dir, 'alice.plain'), '-pubout', '-out', join(dir, 'alice.pub')]);
    run(binary('remod'), ['user', '--db', join(data, 'users.db'), 'add', 'alice', '--allow', 'admin', '--key', join(dir, 'alice.pub')], { env: cleanEnv() });
    const alice = await importPrivateKeyPem(readFileSync(join(dir, 'alice.key'), 'utf8'), { passphrase: 'alice pw' });
    // The first user of the quick start, with the key file remod wrote.
    const admin = await importPrivateKeyPem(readFileSync(join(data, 'client', 'admin.key'), 'utf8'));

    for (const [user, id, framing] of [
      ['alice', alice, 'text'],
      ['alice', alice, 'binary'],
      ['admin', admin, 'auto'],
    ]) {
      const session = await login({ base: server.base, user, key: id.privateKey, publicRaw: id.publicRaw, serverKeyPin: pin, framing });
      assert.equal(session.serverFingerprint, pin);
      assert.ok(session.timeout > 0);
      await checkSession(session, framing === 'auto' ? 'binary' : framing);
    }

    // Trust on first use: no pin, and the session says what to pin.
    const tofu = await login({ base: `${server.base}/`, user: 'alice', key: alice.privateKey });
    assert.equal(tofu.serverFingerprint, pin);
    await tofu.logout();

    // A key the server does not know for the user: the one 401.
    await assert.rejects(login({ base: server.base, user: 'alice', key: admin.privateKey, serverKeyPin: pin }), (e) => {
      assert.ok(e instanceof SessionError, String(e));
      assert.equal(e.code, 'auth_failed');
      return true;
    });
    await assert.rejects(login({ base: server.base, user: 'nobody', key: admin.privateKey, serverKeyPin: pin }), { code: 'auth_failed' });

    // The server is re-keyed and restarted at the same address: refused
    // under the old pin, naming both fingerprints.
    await server.stop();
    run(binary('remo'), ['keygen', '--no-passphrase', '--force', '-o', join(data, 'server.key')], { env: cleanEnv({ HOME: dir }) });
    const newKey = await importPrivateKeyPem(readFileSync(join(data, 'server.key'), 'utf8'));
    assert.notEqual(newKey.fingerprint, pin);
    server = await startRemod(data, join(dir, 'remod2.log'));
  });

  await withLog(server, async () => {
    const alice = await importPrivateKeyPem(readFileSync(join(dir, 'alice.key'), 'utf8'), { passphrase: 'alice pw' });
    const pin = (await importPublicKeyPem(readFileSync(join(data, 'server.pub'), 'utf8'))).fingerprint;
    const offered = (await getInfo(server.base)).fingerprint;
    assert.notEqual(offered, pin, 'the restarted server has the new key');
    for (const framing of ['text', 'binary']) {
      await assert.rejects(login({ base: server.base, user: 'alice', key: alice.privateKey, serverKeyPin: pin, framing }), (e) => {
        assert.ok(e instanceof SessionError, String(e));
        assert.equal(e.code, 'server_key_changed');
        assert.equal(e.pinned, pin);
        assert.equal(e.offered, offered);
        assert.ok(e.message.includes(pin) && e.message.includes(offered), e.message);
        return true;
      });
    }
    // Under the new pin it works again.
    const s = await login({ base: server.base, user: 'alice', key: alice.privateKey, serverKeyPin: offered, framing: 'binary' });
    const r = await cmd(s, { argv: ['echo', 'rekeyed'] });
    assert.equal(fromUtf8(r.stdout), 'rekeyed\n');
    await s.logout();
    assert.ok(server.running());
  });
});
