/**
 * The authentication handshake (PROTOCOL.md §3): M1 and M2, P1363
 * signatures, ECDH and the HKDF-SHA256 session keys, all with WebCrypto.
 *
 * WebCrypto's ECDSA already signs and verifies the 64-byte IEEE P1363 form
 * `r ‖ s` the protocol uses, so no DER conversion is needed. `Z` and the
 * 64 bytes of HKDF output pass through JavaScript memory only inside
 * `finishAuth`, which wipes them once the two AES keys are imported
 * non-extractable.
 *
 * Exported API:
 *
 * - `validUserName(name: string): boolean` — `^[A-Za-z0-9._-]{1,64}$`.
 * - `m1(user, qcB64, time: number): string`,
 *   `m2(user, qcB64, qsB64, sid): string` — the signed texts.
 * - `signP1363(privateKey: CryptoKey, bytes: Uint8Array): Promise<Uint8Array>`
 *   — a 64-byte signature.
 * - `verifyP1363(publicKey: CryptoKey, bytes, sig: Uint8Array):
 *   Promise<boolean>` — false for a wrong length too.
 * - `generateEphemeral(): Promise<{privateKey: CryptoKey, publicRaw:
 *   Uint8Array}>` — a fresh ECDH P-256 pair, private half non-extractable.
 * - `ephemeralFromScalar(d: Uint8Array): Promise<{privateKey, publicRaw}>`
 *   — the same from a given scalar (test vectors only).
 * - `sharedSecret(privateKey, peerRaw: Uint8Array): Promise<Uint8Array>` —
 *   `Z`, the 32-byte X coordinate; a bad point is `SessionError('protocol')`.
 * - `sessionKeyBytes(z, qc, qs, sid): Promise<{c2s: Uint8Array, s2c:
 *   Uint8Array}>` — HKDF-SHA256(IKM = Z, salt = Qc ‖ Qs, info = "remo/1
 *   session " ‖ SID, L = 64) split in two (tests; `sessionKeys` for use).
 * - `sessionKeys(z, qc, qs, sid): Promise<{c2s: CryptoKey, s2c: CryptoKey}>`.
 * - `authRequest({user, key, time?, ephemeral?, cert?, certSig?}):
 *   Promise<{body: object, ephemeral, qcB64: string}>` — the `/auth` JSON
 *   body signed with `key` (the identity `CryptoKey`); `time` defaults to
 *   now in whole seconds; `cert` (the certificate's exact bytes) and
 *   `certSig` (the CA's 64-byte signature) add §7's fields. A bad user name
 *   is `SessionError('bad_user')`.
 * - `finishAuth({user, qcB64, ephemeral, response: object, serverKey:
 *   CryptoKey}): Promise<{sid, timeout, c2s: CryptoKey, s2c: CryptoKey,
 *   qsB64}>` — checks the `/auth` answer's shape (`SessionError('protocol')`),
 *   verifies M2 under the pinned server key
 *   (`SessionError('bad_server_signature')`), derives the keys.
 */

import { SessionError } from './errors.js';
import { b64decode, b64encode, concatBytes, utf8 } from './b64.js';
import { pkcs8FromScalar } from './keys.js';
import { importRecordKey } from './record.js';

const ECDH = { name: 'ECDH', namedCurve: 'P-256' };
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' };

/**
 * @param {string} name
 * @returns {boolean}
 */
export function validUserName(name) {
  return typeof name === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(name);
}

/**
 * `"remo/1 auth\n" ‖ U ‖ "\n" ‖ b64(Qc) ‖ "\n" ‖ decimal(T)`.
 * @param {string} user
 * @param {string} qcB64
 * @param {number} time
 * @returns {string}
 */
export function m1(user, qcB64, time) {
  if (!Number.isSafeInteger(time)) throw new TypeError('time must be an integer');
  return `remo/1 auth\n${user}\n${qcB64}\n${time}`;
}

/**
 * `"remo/1 auth-ok\n" ‖ U ‖ "\n" ‖ b64(Qc) ‖ "\n" ‖ b64(Qs) ‖ "\n" ‖ SID`.
 * @returns {string}
 */
export function m2(user, qcB64, qsB64, sid) {
  return `remo/1 auth-ok\n${user}\n${qcB64}\n${qsB64}\n${sid}`;
}

/**
 * @param {CryptoKey} privateKey ECDSA P-256
 * @param {Uint8Array} bytes
 * @returns {Promise<Uint8Array>} r ‖ s
 */
export async function signP1363(privateKey, bytes) {
  return new Uint8Array(await globalThis.crypto.subtle.sign(ECDSA_SHA256, privateKey, bytes));
}

/**
 * @param {CryptoKey} publicKey ECDSA P-256
 * @param {Uint8Array} bytes
 * @param {Uint8Array} sig r ‖ s
 * @returns {Promise<boolean>}
 */
export async function verifyP1363(publicKey, bytes, sig) {
  if (!(sig instanceof Uint8Array) || sig.length !== 64) return false;
  return globalThis.crypto.subtle.verify(ECDSA_SHA256, publicKey, sig, bytes);
}

/** @returns {Promise<{privateKey: CryptoKey, publicRaw: Uint8Array}>} */
export async function generateEphemeral() {
  const subtle = globalThis.crypto.subtle;
  const pair = await subtle.generateKey(ECDH, false, ['deriveBits']);
  const publicRaw = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));
  return { privateKey: pair.privateKey, publicRaw };
}

/**
 * An ephemeral pair from a given scalar, for the test vectors: imported
 * once extractable to learn the public point, then again non-extractable.
 * @param {Uint8Array} d 32 bytes
 */
export async function ephemeralFromScalar(d) {
  const subtle = globalThis.crypto.subtle;
  const tmp = await subtle.importKey('pkcs8', pkcs8FromScalar(d, null), ECDH, true, ['deriveBits']);
  const jwk = await subtle.exportKey('jwk', tmp);
  const publicRaw = concatBytes([new Uint8Array([4]), b64decode(jwk.x), b64decode(jwk.y)]);
  const privateKey = await subtle.importKey('pkcs8', pkcs8FromScalar(d, publicRaw), ECDH, false, ['deriveBits']);
  return { privateKey, publicRaw };
}

/**
 * `Z = ECDH(private, peer)`, the X coordinate.
 * @param {CryptoKey} privateKey ECDH P-256
 * @param {Uint8Array} peerRaw 65-byte SEC1 point
 * @returns {Promise<Uint8Array>}
 */
export async function sharedSecret(privateKey, peerRaw) {
  const subtle = globalThis.crypto.subtle;
  if (!(peerRaw instanceof Uint8Array) || peerRaw.length !== 65 || peerRaw[0] !== 4) {
    throw new SessionError('protocol', 'ephemeral key is not an uncompressed P-256 point');
  }
  let peer;
  try {
    peer = await subtle.importKey('raw', peerRaw, ECDH, true, []);
  } catch {
    throw new SessionError('protocol', 'ephemeral key is not a point on P-256');
  }
  return new Uint8Array(await subtle.deriveBits({ name: 'ECDH', public: peer }, privateKey, 256));
}

/**
 * HKDF-SHA256(IKM = Z, salt = Qc ‖ Qs, info = "remo/1 session " ‖ SID, L = 64).
 * @param {Uint8Array} z
 * @param {Uint8Array} qc
 * @param {Uint8Array} qs
 * @param {string} sid
 * @returns {Promise<{c2s: Uint8Array, s2c: Uint8Array}>}
 */
export async function sessionKeyBytes(z, qc, qs, sid) {
  const subtle = globalThis.crypto.subtle;
  const ikm = await subtle.importKey('raw', z, 'HKDF', false, ['deriveBits']);
  const okm = new Uint8Array(
    await subtle.deriveBits(
      { name: 'HKDF', hash: 'SHA-256', salt: concatBytes([qc, qs]), info: utf8(`remo/1 session ${sid}`) },
      ikm,
      512,
    ),
  );
  return { c2s: okm.subarray(0, 32), s2c: okm.subarray(32, 64) };
}

/**
 * The two record keys, non-extractable.
 * @returns {Promise<{c2s: CryptoKey, s2c: CryptoKey}>}
 */
export async function sessionKeys(z, qc, qs, sid) {
  const bytes = await sessionKeyBytes(z, qc, qs, sid);
  try {
    return { c2s: await importRecordKey(bytes.c2s), s2c: await importRecordKey(bytes.s2c) };
  } finally {
    bytes.c2s.fill(0);
    bytes.s2c.fill(0);
  }
}

/**
 * The `/auth` request body.
 * @param {{user: string, key: CryptoKey, time?: number, ephemeral?: {privateKey: CryptoKey, publicRaw: Uint8Array},
 *   cert?: Uint8Array, certSig?: Uint8Array}} args
 * @returns {Promise<{body: object, ephemeral: {privateKey: CryptoKey, publicRaw: Uint8Array}, qcB64: string}>}
 */
export async function authRequest({ user, key, time, ephemeral, cert, certSig }) {
  if (!validUserName(user)) {
    throw new SessionError('bad_user', 'user names are 1 to 64 of A-Z a-z 0-9 . _ -');
  }
  const t = time ?? Math.floor(Date.now() / 1000);
  const eph = ephemeral ?? (await generateEphemeral());
  const qcB64 = b64encode(eph.publicRaw);
  const sig = await signP1363(key, utf8(m1(user, qcB64, t)));
  const body = { user, key: qcB64, time: t, sig: b64encode(sig) };
  if (cert !== undefined && cert !== null) {
    if (!(cert instanceof Uint8Array) || !(certSig instanceof Uint8Array) || certSig.length !== 64) {
      throw new TypeError('cert must be the certificate bytes and certSig its 64-byte CA signature');
    }
    body.cert = b64encode(cert);
    body.cert_sig = b64encode(certSig);
  }
  return { body, ephemeral: eph, qcB64 };
}

const SID_SYNTAX = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Checks the `/auth` answer and derives the session keys.
 * @param {{user: string, qcB64: string, ephemeral: {privateKey: CryptoKey, publicRaw: Uint8Array},
 *   response: any, serverKey: CryptoKey}} args
 * @returns {Promise<{sid: string, timeout: number, c2s: CryptoKey, s2c: CryptoKey, qsB64: string}>}
 */
export async function finishAuth({ user, qcB64, ephemeral, response, serverKey }) {
  const bad = (what) => new SessionError('protocol', `malformed /auth answer: ${what}`);
  if (typeof response !== 'object' || response === null || Array.isArray(response)) throw bad('not an object');
  const { session: sid, key: qsB64, sig: sigB64, timeout } = response;
  if (typeof sid !== 'string' || !SID_SYNTAX.test(sid)) throw bad('session');
  if (typeof qsB64 !== 'string' || typeof sigB64 !== 'string') throw bad('key or sig');
  if (!Number.isSafeInteger(timeout) || timeout < 0) throw bad('timeout');
  let qs;
  let sig;
  try {
    qs = b64decode(qsB64);
    sig = b64decode(sigB64);
  } catch {
    throw bad('key or sig is not base64url');
  }
  if (!(await verifyP1363(serverKey, utf8(m2(user, qcB64, qsB64, sid)), sig))) {
    throw new SessionError(
      'bad_server_signature',
      'the server signature does not verify against the pinned server key',
    );
  }
  const z = await sharedSecret(ephemeral.privateKey, qs);
  try {
    const keys = await sessionKeys(z, ephemeral.publicRaw, qs, sid);
    return { sid, timeout, c2s: keys.c2s, s2c: keys.s2c, qsB64 };
  } finally {
    z.fill(0);
  }
}
