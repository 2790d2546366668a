/**
 * A remo/1 client session over `fetch` (PROTOCOL.md §2–§6): discovery,
 * login with the server key pinned, and sealed requests whose responses
 * are opened record by record as they stream in.
 *
 * Exported API:
 *
 * - `getInfo(base: string, {fetch?, signal?} = {}): Promise<Info>` — `GET
 *   {base}/info`. `Info = {name, version, protocol, key: string (b64 SEC1),
 *   fingerprint: string (computed from `key`; a server stating another one
 *   is a protocol error), framings: string[] (['text'] if absent),
 *   certificates: boolean, serverKey: PublicIdentity (keys.js), json:
 *   object (the whole answer)}`. Use it to show the fingerprint for trust
 *   on first use before logging in.
 * - `login({base, user, key, publicRaw?, serverKeyPin?, fetch?, framing?,
 *   cert?, certSig?, time?, signal?}): Promise<Session>`:
 *   - `base` — the URL prefix the server is mounted at (`http://h:8080`,
 *     `https://h/remo`); a trailing `/` is ignored.
 *   - `key` — the user's identity `CryptoKey` (`importPrivateKeyPem`).
 *   - `publicRaw` — its 65-byte public point; optional, used to check a
 *     certificate is for this key before it is sent.
 *   - `serverKeyPin` — the pinned fingerprint (`'SHA256:…'`); another key
 *     is `SessionError('server_key_changed')` with `pinned` and `offered`.
 *     Without a pin the key is trusted as offered: pin
 *     `session.serverFingerprint` afterwards (trust on first use).
 *   - `fetch` — defaults to `globalThis.fetch`.
 *   - `framing` — `'auto'` (default: binary when `/info` offers it),
 *     `'text'` or `'binary'` (refused with `'protocol'` if not offered).
 *   - `cert`, `certSig` — a §7 certificate's exact bytes and the CA's
 *     64-byte signature (`parseCertFile(...)`: `cert.bytes`, `sig`).
 *   - `time` — Unix seconds for M1 (default: now).
 *   Errors: `SessionError` `'auth_failed'` (401), `'server_key_changed'`,
 *   `'bad_server_signature'`, `'protocol'`, `'http'`, `'bad_user'`;
 *   `CertError` if `cert` does not parse or is not for `user`/`publicRaw`.
 * - `class Session` (made by `login`): properties `base`, `user`, `sid`,
 *   `timeout` (idle seconds), `framing` ('text'|'binary', may be changed
 *   between requests), `info`, `serverFingerprint`, `closed`, `nextR` (the
 *   next request number; the first request is R = 1).
 *   - `request(op: string, descriptor: object, {body?, onData?, signal?,
 *     stream?} = {}): Promise<object>` — one operation; resolves to the
 *     final JSON result (`{ok: true, …}`), or throws `OpError` with the
 *     result's `error.code`/`error.message` (and `result`). Requests may
 *     overlap: each takes the next request number when it is called (the
 *     server accepts them out of order within a window of 1,024).
 *     - `body` — `undefined` (descriptor only), a `Uint8Array` (sealed into
 *       records of at most 65,537 bytes; the whole request is sealed into
 *       one buffer, so keep it bounded — upload big files in parts), or an
 *       `AsyncIterable<Uint8Array>` / `Iterable` / `ReadableStream` (each
 *       chunk cut into records as it comes).
 *     - `stream` — with an iterable body: `true` sends it as a
 *       `ReadableStream` with `duplex: 'half'` while it is produced
 *       (Chromium streams request bodies only over HTTP/2); `false`
 *       (default) collects it first and sends one buffer.
 *     - `onData(channel: 1|2, bytes: Uint8Array)` — called for each output
 *       record as it arrives (1 = data / stdout, 2 = stderr); a returned
 *       promise is awaited before the next record is read (backpressure).
 *       If it throws, the response is cancelled and the error propagates.
 *     - `signal` — an `AbortSignal`; aborting rejects with the platform's
 *       `AbortError`.
 *     Errors: `SessionError` `'http'` (`status`; 401 = the session is gone,
 *     409 = request number reused), `'protocol'` (`cause`: the
 *     `RecordError` when a record does not open, is out of order, the
 *     response is truncated…), `'closed'`; `OpError`.
 *   - `logout({signal}?): Promise<object>` — the `logout` operation; the
 *     session is closed afterwards whatever the outcome.
 */

import { OpError, RecordError, SessionError } from './errors.js';
import { b64decode, fromUtf8, utf8, bytesEqual } from './b64.js';
import { authRequest, finishAuth } from './handshake.js';
import { importPublicKeyRaw } from './keys.js';
import { MAX_PLAINTEXT, Sealer, CHANNEL_STDOUT, CHANNEL_STDERR } from './record.js';
import {
  contentTypeOf,
  frameRecord,
  framingOfContentType,
  openRecords,
  sealMessage,
  streamChunks,
} from './framing.js';
import { parseCertificate } from './cert.js';

/** Largest JSON answer (`/info`, `/auth`) read. */
const MAX_JSON_ANSWER = 64 * 1024;
/** Largest plain error body read for a message. */
const MAX_ERROR_BODY = 4096;

const OP_SYNTAX = /^[a-z][a-z0-9_-]{0,63}$/;

function protocolError(message, cause) {
  return new SessionError('protocol', message, cause === undefined ? undefined : { cause });
}

function joinUrl(base, path) {
  return `${String(base).replace(/\/+$/, '')}/${path}`;
}

/** The fetch to use, bound so a browser's `fetch` is not called detached. */
function fetchOf(f) {
  if (f) return f;
  if (typeof globalThis.fetch !== 'function') throw new TypeError('no fetch available');
  return globalThis.fetch.bind(globalThis);
}

/** Up to `max` bytes of a response body; null if it is longer. */
async function readAtMost(resp, max) {
  if (!resp.body) return new Uint8Array(0);
  const parts = [];
  let n = 0;
  for await (const chunk of streamChunks(resp.body)) {
    n += chunk.length;
    if (n > max) return null;
    parts.push(chunk);
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The server's `{"error": "..."}` text of a refusal, if any. */
async function errorMessage(resp) {
  try {
    const bytes = await readAtMost(resp, MAX_ERROR_BODY);
    if (bytes === null) return undefined;
    const j = JSON.parse(fromUtf8(bytes));
    return typeof j?.error === 'string' ? j.error : undefined;
  } catch {
    return undefined;
  }
}

async function httpError(what, resp) {
  const serverMessage = await errorMessage(resp);
  return new SessionError('http', `${what}: HTTP ${resp.status}${serverMessage ? ` (${serverMessage})` : ''}`, {
    status: resp.status,
    serverMessage,
  });
}

/** A JSON object answer, bounded. */
async function readJson(what, resp) {
  const bytes = await readAtMost(resp, MAX_JSON_ANSWER);
  if (bytes === null) throw protocolError(`${what}: answer larger than ${MAX_JSON_ANSWER} bytes`);
  let j;
  try {
    j = JSON.parse(fromUtf8(bytes));
  } catch (e) {
    throw protocolError(`${what}: answer is not JSON`, e);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw protocolError(`${what}: answer is not an object`);
  return j;
}

/**
 * `GET {base}/info`.
 * @param {string} base
 * @param {{fetch?: Function, signal?: AbortSignal}} [options]
 */
export async function getInfo(base, { fetch, signal } = {}) {
  const f = fetchOf(fetch);
  const resp = await f(joinUrl(base, 'info'), { method: 'GET', headers: { Accept: 'application/json' }, signal });
  if (resp.status !== 200) throw await httpError('/info', resp);
  const json = await readJson('/info', resp);
  if (json.protocol !== 'remo/1') {
    throw protocolError(`/info: the server speaks ${JSON.stringify(json.protocol)}, not remo/1`);
  }
  if (typeof json.key !== 'string') throw protocolError('/info: no server key');
  let serverKey;
  try {
    serverKey = await importPublicKeyRaw(b64decode(json.key));
  } catch (e) {
    throw protocolError('/info: the server key is not a P-256 point', e);
  }
  if (json.fingerprint !== undefined && json.fingerprint !== serverKey.fingerprint) {
    throw protocolError('/info: the stated fingerprint is not that of the key');
  }
  let framings = ['text'];
  if (json.framings !== undefined) {
    if (!Array.isArray(json.framings) || json.framings.some((x) => typeof x !== 'string')) {
      throw protocolError('/info: framings is not a list of names');
    }
    framings = json.framings;
  }
  return {
    name: json.name,
    version: json.version,
    protocol: json.protocol,
    key: json.key,
    fingerprint: serverKey.fingerprint,
    framings,
    certificates: json.certificates === true,
    serverKey,
    json,
  };
}

/**
 * Logs in: `/info`, the pin check, `/auth`, M2 under the server key.
 * @param {object} options see the module comment
 * @returns {Promise<Session>}
 */
export async function login({
  base,
  user,
  key,
  publicRaw,
  serverKeyPin,
  fetch,
  framing = 'auto',
  cert,
  certSig,
  time,
  signal,
}) {
  const f = fetchOf(fetch);
  const info = await getInfo(base, { fetch: f, signal });
  if (serverKeyPin !== undefined && serverKeyPin !== null && serverKeyPin !== info.fingerprint) {
    throw new SessionError(
      'server_key_changed',
      `the server key changed: pinned ${serverKeyPin}, offered ${info.fingerprint}; ` +
        'if the server was re-keyed on purpose, check the new fingerprint out of band before trusting it',
      { pinned: serverKeyPin, offered: info.fingerprint },
    );
  }
  let chosen;
  if (framing === 'auto') {
    chosen = info.framings.includes('binary') ? 'binary' : 'text';
  } else if (framing === 'text' || framing === 'binary') {
    if (framing === 'binary' && !info.framings.includes('binary')) {
      throw protocolError('the server does not offer the binary framing');
    }
    chosen = framing;
  } else {
    throw new TypeError(`unknown framing ${framing}`);
  }
  if (cert !== undefined && cert !== null) {
    const parsed = await parseCertificate(cert);
    if (parsed.user !== user) throw new SessionError('bad_user', `the certificate is for ${parsed.user}, not ${user}`);
    if (publicRaw && !bytesEqual(parsed.key, publicRaw)) {
      throw new SessionError('bad_user', 'the certificate is for another key than this one');
    }
  }

  const { body, ephemeral, qcB64 } = await authRequest({ user, key, time, cert, certSig });
  const resp = await f(joinUrl(base, 'auth'), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
  if (resp.status === 401) {
    await resp.body?.cancel().catch(() => {});
    throw new SessionError('auth_failed', 'authentication failed (unknown or disabled user, wrong key, clock off by more than 5 minutes, or a refused certificate)', { status: 401 });
  }
  if (resp.status !== 200) throw await httpError('/auth', resp);
  const answer = await readJson('/auth', resp);
  const done = await finishAuth({ user, qcB64, ephemeral, response: answer, serverKey: info.serverKey.publicKey });
  return new Session({ base, user, fetch: f, info, framing: chosen, ...done });
}

/** Cuts a body's chunks into record-sized pieces. */
async function* pieces(source) {
  for await (const chunk of source) {
    const c = chunk instanceof Uint8Array ? chunk : chunk instanceof ArrayBuffer ? new Uint8Array(chunk) : null;
    if (c === null) throw new TypeError('body chunks must be Uint8Array');
    for (let at = 0; at < c.length; at += MAX_PLAINTEXT) yield c.subarray(at, Math.min(at + MAX_PLAINTEXT, c.length));
  }
}

/** Whether `x` is something `for await` can walk. */
function isIterable(x) {
  return x !== null && typeof x === 'object' && (Symbol.asyncIterator in x || Symbol.iterator in x);
}

/** One logged-in session. Made by {@link login}. */
export class Session {
  /** @param {object} s internal: what login established */
  constructor(s) {
    this.base = s.base;
    this.user = s.user;
    this.sid = s.sid;
    this.timeout = s.timeout;
    this.framing = s.framing;
    this.info = s.info;
    this.serverFingerprint = s.info.fingerprint;
    this.closed = false;
    this.nextR = 1;
    // Not enumerable: keep the keys out of logs and JSON.
    Object.defineProperties(this, {
      fetchFn: { value: s.fetch },
      c2s: { value: s.c2s },
      s2c: { value: s.s2c },
    });
  }

  /**
   * Runs one operation.
   * @param {string} op operation name (`cmd`, `get`, `put`, …)
   * @param {object} descriptor the operation's JSON descriptor
   * @param {{body?: Uint8Array|AsyncIterable<Uint8Array>|Iterable<Uint8Array>|ReadableStream<Uint8Array>,
   *   onData?: (channel: number, bytes: Uint8Array) => (void|Promise<void>),
   *   signal?: AbortSignal, stream?: boolean}} [options]
   * @returns {Promise<object>} the final result, `ok: true`
   */
  async request(op, descriptor, { body, onData, signal, stream = false } = {}) {
    if (this.closed) throw new SessionError('closed', 'the session was logged out');
    if (typeof op !== 'string' || !OP_SYNTAX.test(op)) throw new TypeError(`bad operation name ${op}`);
    const desc = utf8(JSON.stringify(descriptor ?? {}));
    if (desc.length > MAX_PLAINTEXT) throw new TypeError('descriptor larger than one record');
    const framing = this.framing;
    const r = this.nextR++;

    let source = null;
    let whole = null;
    if (body === undefined || body === null) {
      whole = [];
    } else if (body instanceof Uint8Array || body instanceof ArrayBuffer) {
      const b = body instanceof ArrayBuffer ? new Uint8Array(body) : body;
      whole = [];
      for (let at = 0; at < b.length; at += MAX_PLAINTEXT) whole.push(b.subarray(at, Math.min(at + MAX_PLAINTEXT, b.length)));
    } else if (typeof ReadableStream !== 'undefined' && body instanceof ReadableStream) {
      source = streamChunks(body);
    } else if (isIterable(body)) {
      source = body;
    } else {
      throw new TypeError('body must be a Uint8Array, an iterable of Uint8Array or a ReadableStream');
    }

    const init = {
      method: 'POST',
      headers: { 'Content-Type': contentTypeOf(framing), 'Remo-Session': this.sid },
      signal,
    };
    if (whole === null && !stream) {
      // Collected first: copies, since a producer may reuse its buffers.
      whole = [];
      for await (const p of pieces(source)) whole.push(p.slice());
    }
    if (whole !== null) {
      init.body = await sealMessage(this.c2s, r, op, [desc, ...whole], framing);
    } else {
      init.body = sealedStream(new Sealer(this.c2s, r, op), desc, pieces(source), framing);
      init.duplex = 'half';
    }

    const resp = await this.fetchFn(joinUrl(this.base, op), init);
    if (resp.status !== 200) throw await httpError(op, resp);
    const got = framingOfContentType(resp.headers.get('content-type'));
    if (got !== framing) {
      await resp.body?.cancel().catch(() => {});
      throw protocolError(`${op}: response Content-Type ${resp.headers.get('content-type')} is not the ${framing} framing`);
    }
    const chunks = resp.body ? streamChunks(resp.body) : [];
    let result = null;
    try {
      for await (const rec of openRecords(this.s2c, r, op, chunks, framing)) {
        const p = rec.plaintext;
        if (!rec.last) {
          const ch = p[0];
          if (p.length === 0 || (ch !== CHANNEL_STDOUT && ch !== CHANNEL_STDERR)) {
            throw protocolError(`${op}: response record with unknown channel`);
          }
          if (onData) await onData(ch, p.subarray(1));
          continue;
        }
        try {
          result = JSON.parse(fromUtf8(p));
        } catch (e) {
          throw protocolError(`${op}: the final result is not JSON`, e);
        }
      }
    } catch (e) {
      if (e instanceof RecordError) throw protocolError(`${op}: ${e.message}`, e);
      throw e;
    }
    if (typeof result !== 'object' || result === null || Array.isArray(result) || typeof result.ok !== 'boolean') {
      throw protocolError(`${op}: the final result has no boolean ok`);
    }
    if (result.ok) return result;
    const e = result.error;
    if (typeof e !== 'object' || e === null || typeof e.code !== 'string') {
      throw protocolError(`${op}: a failed result without an error code`);
    }
    throw new OpError(e.code, typeof e.message === 'string' ? e.message : e.code, result);
  }

  /**
   * Ends the session on the server; closed here whatever the outcome.
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<object>}
   */
  async logout({ signal } = {}) {
    try {
      return await this.request('logout', {}, { signal });
    } finally {
      this.closed = true;
    }
  }
}

/**
 * The framed records of a request as a ReadableStream: the descriptor, then
 * the pieces, the final one marked `last` (held back one step to know it).
 */
function sealedStream(sealer, desc, source, framing) {
  const it = source[Symbol.asyncIterator]();
  let pending = desc;
  let finished = false;
  return new ReadableStream({
    async pull(controller) {
      if (finished) return;
      try {
        const n = await it.next();
        if (n.done) {
          finished = true;
          controller.enqueue(frameRecord(await sealer.seal(pending, true), framing));
          controller.close();
          return;
        }
        controller.enqueue(frameRecord(await sealer.seal(pending, false), framing));
        // A copy: the producer may reuse its buffer once asked for more.
        pending = n.value.slice();
      } catch (e) {
        finished = true;
        controller.error(e);
      }
    },
    async cancel() {
      finished = true;
      await it.return?.();
    },
  });
}
