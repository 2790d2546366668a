/**
 * User certificates (PROTOCOL.md §7): the strict parser, CA signatures,
 * the validity window, host patterns, and the certificate file `remo ca
 * sign` writes (the certificate's text, then `sig <b64>`).
 *
 * The CA signs the exact bytes, so the grammar has one spelling of every
 * certificate and the parser refuses anything else (other line order,
 * `\r`, leading zeros, doubled spaces, …), as the server does (src/proto/
 * cert.rs): a certificate that parses here is one the server parses.
 * Numbers are `bigint` (serials go up to 2^63 − 1).
 *
 * Exported API:
 *
 * - `MAX_CERT_LEN` (8192), `MAX_CERT_FILE_LEN` (8320), `NOT_BEFORE_GRACE_SECS` (300).
 * - `parseCertificate(input: Uint8Array|string): Promise<Certificate>` where
 *   `Certificate = {ca: string (CA fingerprint), serial: bigint, user:
 *   string, key: Uint8Array (65-byte point), keyB64: string, notBefore:
 *   bigint, notAfter: bigint, hosts: string[], grants: string[], bytes:
 *   Uint8Array (exactly what the CA signed), text: string}`. Async because
 *   the key is checked to be on P-256. Throws `CertError` (codes in errors.js).
 * - `certificateText(cert): string` — the canonical text of the fields
 *   (for a parsed certificate, exactly `cert.text`).
 * - `parseCertFile(input: Uint8Array|string): Promise<{cert: Certificate,
 *   sig: Uint8Array}>` — a `KEY-cert` file; `CertError` `'too_long'`,
 *   `'no_signature'`, `'bad_signature_line'` or the certificate's own.
 * - `verifyCertificateSignature(bytes: Uint8Array, caPublicKey: CryptoKey,
 *   sig: Uint8Array): Promise<boolean>` — the CA's P1363 signature over the
 *   bytes as received.
 * - `verifyCertificate(cert, ca: {publicKey: CryptoKey, fingerprint:
 *   string}, sig): Promise<void>` — `ca` (a `PublicIdentity` from keys.js)
 *   is the key the `ca` line names (`'ca_mismatch'`) and `sig` verifies
 *   (`'bad_signature'`).
 * - `checkValidity(cert, now: number|bigint): void` — usable from
 *   `notBefore − 300` to `notAfter` inclusive, Unix seconds
 *   (`'not_yet_valid'`, `'expired'`).
 * - `hostMatches(pattern: string, host: string): boolean` — `*` matches
 *   any run, the empty one included; whole name; ASCII case-insensitive.
 * - `certMatchesHost(cert, host): boolean` — any of its patterns.
 */

import { CertError } from './errors.js';
import { b64decode, b64encode, fromUtf8, utf8 } from './b64.js';
import { validUserName, verifyP1363 } from './handshake.js';
import { importPublicKeyRaw } from './keys.js';

export const MAX_CERT_LEN = 8192;
export const MAX_CERT_FILE_LEN = MAX_CERT_LEN + 128;
export const NOT_BEFORE_GRACE_SECS = 300;

const FIRST_LINE = 'remo/1 cert';
const FP_PREFIX = 'SHA256:';
const SERIAL_LIMIT = 1n << 63n;
const I64_MAX = (1n << 63n) - 1n;
const U64_MAX = (1n << 64n) - 1n;

function certError(code, message, extra) {
  return new CertError(code, message, extra);
}

/** `SHA256:` ‖ canonical b64 of exactly 32 bytes. */
function validFingerprint(text) {
  if (!text.startsWith(FP_PREFIX)) return false;
  try {
    return b64decode(text.slice(FP_PREFIX.length)).length === 32;
  } catch {
    return false;
  }
}

/** Digits only, no sign, no leading zero; null if beyond u64. */
function decimal(text, field) {
  if (!/^[0-9]+$/.test(text)) throw certError('not_decimal', `certificate ${field}: not a decimal number`, { field });
  if (text.length > 1 && text[0] === '0') {
    throw certError('leading_zero', `certificate ${field}: leading zero`, { field });
  }
  const v = BigInt(text);
  return v > U64_MAX ? null : v;
}

function time(text, field) {
  const v = decimal(text, field);
  if (v === null || v > I64_MAX) throw certError('time_out_of_range', `certificate ${field} out of range`, { field });
  return v;
}

/**
 * Parses a certificate, accepting exactly the §7 grammar.
 * @param {Uint8Array|string} input
 * @returns {Promise<object>} the Certificate (see the module comment)
 * @throws {CertError}
 */
export async function parseCertificate(input) {
  const bytes = typeof input === 'string' ? utf8(input) : input;
  if (!(bytes instanceof Uint8Array)) throw new TypeError('certificate must be bytes or a string');
  if (bytes.length > MAX_CERT_LEN) {
    throw certError('too_long', `certificate too long: ${bytes.length} bytes (at most ${MAX_CERT_LEN})`);
  }
  let text;
  try {
    text = fromUtf8(bytes);
  } catch {
    throw certError('not_utf8', 'certificate is not valid UTF-8');
  }
  if (text.includes('\r')) throw certError('carriage_return', 'certificate contains a carriage return');
  if (!text.endsWith('\n')) {
    if (text.length === 0) {
      throw certError('missing_line', `certificate line 1: missing the \`${FIRST_LINE}\` line`, {
        line: 1,
        expected: FIRST_LINE,
      });
    }
    throw certError('no_final_newline', 'certificate does not end with a newline');
  }
  const lines = text.slice(0, -1).split('\n');
  let n = 0;
  const nextLine = (expected) => {
    n += 1;
    if (n > lines.length) {
      throw certError('missing_line', `certificate line ${n}: missing the \`${expected}\` line`, { line: n, expected });
    }
    return lines[n - 1];
  };
  const field = (keyword) => {
    const line = nextLine(keyword);
    if (!line.startsWith(`${keyword} `)) {
      throw certError('bad_line', `certificate line ${n}: expected the \`${keyword}\` line`, { line: n, expected: keyword });
    }
    return line.slice(keyword.length + 1);
  };

  if (nextLine(FIRST_LINE) !== FIRST_LINE) {
    throw certError('bad_line', `certificate line 1: expected the \`${FIRST_LINE}\` line`, { line: 1, expected: FIRST_LINE });
  }
  const ca = field('ca');
  if (!validFingerprint(ca)) throw certError('bad_fingerprint', 'certificate `ca` is not a SHA256 fingerprint');

  const serial = decimal(field('serial'), 'serial');
  if (serial === null || serial < 1n || serial >= SERIAL_LIMIT) {
    throw certError('serial_out_of_range', 'certificate serial out of range (1 to 2^63-1)');
  }

  const user = field('user');
  if (!validUserName(user)) throw certError('bad_user', 'certificate user is not a valid user name');

  const keyB64 = field('key');
  let key;
  try {
    key = (await importPublicKeyRaw(b64decode(keyB64))).publicRaw;
  } catch {
    throw certError('bad_key', 'certificate key: not b64 of an uncompressed P-256 point');
  }

  const valid = field('valid');
  const sp = valid.indexOf(' ');
  // A missing separator leaves NA empty, which is not decimal.
  const notBefore = time(sp < 0 ? valid : valid.slice(0, sp), 'not_before');
  const notAfter = time(sp < 0 ? '' : valid.slice(sp + 1), 'not_after');
  if (notBefore >= notAfter) {
    throw certError('validity_order', 'certificate validity: not_before is not before not_after');
  }

  const hostsLine = field('hosts');
  if (hostsLine === '') throw certError('empty_hosts', 'certificate hosts line has no pattern');
  const hosts = hostsLine.split(' ');
  if (hosts.some((p) => p === '')) throw certError('empty_pattern', 'certificate hosts line has an empty pattern');

  const grants = [];
  while (n < lines.length) {
    const line = lines[n];
    n += 1;
    if (!line.startsWith('grant ')) {
      throw certError('bad_line', `certificate line ${n}: expected the \`grant\` line`, { line: n, expected: 'grant' });
    }
    const grant = line.slice('grant '.length);
    if (grant === '') throw certError('empty_grant', `certificate line ${n}: empty grant`, { line: n });
    grants.push(grant);
  }

  return {
    ca,
    serial,
    user,
    key,
    keyB64,
    notBefore,
    notAfter,
    hosts,
    grants,
    bytes: bytes.slice(),
    text,
  };
}

/**
 * The canonical text of a certificate's fields.
 * @param {{ca: string, serial: bigint|number, user: string, key: Uint8Array, notBefore: bigint|number,
 *   notAfter: bigint|number, hosts: string[], grants: string[]}} cert
 * @returns {string}
 */
export function certificateText(cert) {
  let s = `${FIRST_LINE}\nca ${cert.ca}\nserial ${cert.serial}\nuser ${cert.user}\nkey ${b64encode(cert.key)}\n`;
  s += `valid ${cert.notBefore} ${cert.notAfter}\nhosts ${cert.hosts.join(' ')}\n`;
  for (const g of cert.grants) s += `grant ${g}\n`;
  return s;
}

/**
 * Parses a certificate file: the certificate, then `sig <b64>` and a newline.
 * The signature is not checked (the client has no CA key; the server checks).
 * @param {Uint8Array|string} input
 * @returns {Promise<{cert: object, sig: Uint8Array}>}
 */
export async function parseCertFile(input) {
  const bytes = typeof input === 'string' ? utf8(input) : input;
  if (!(bytes instanceof Uint8Array)) throw new TypeError('certificate file must be bytes or a string');
  if (bytes.length > MAX_CERT_FILE_LEN) {
    throw certError('too_long', `file too large for a certificate (${bytes.length} bytes)`);
  }
  const noSig = () =>
    certError('no_signature', 'no `sig` line after the certificate (the file ends with `sig <b64>` and a newline)');
  if (bytes.length === 0 || bytes[bytes.length - 1] !== 10) throw noSig();
  const body = bytes.subarray(0, bytes.length - 1);
  const start = body.lastIndexOf(10) + 1;
  const sigLine = body.subarray(start);
  const prefix = utf8('sig ');
  if (sigLine.length < prefix.length || !prefix.every((b, k) => sigLine[k] === b)) throw noSig();
  let sig;
  try {
    sig = b64decode(fromUtf8(sigLine.subarray(prefix.length)));
  } catch {
    sig = null;
  }
  if (sig === null || sig.length !== 64) {
    throw certError('bad_signature_line', 'the `sig` line is not b64 of a 64-byte signature');
  }
  const cert = await parseCertificate(bytes.subarray(0, start));
  return { cert, sig };
}

/**
 * Whether `sig` is the CA's signature over `bytes`.
 * @param {Uint8Array} bytes
 * @param {CryptoKey} caPublicKey
 * @param {Uint8Array} sig
 * @returns {Promise<boolean>}
 */
export async function verifyCertificateSignature(bytes, caPublicKey, sig) {
  return verifyP1363(caPublicKey, bytes, sig);
}

/**
 * Checks that `ca` is the CA the certificate names and that `sig` is its
 * signature over the certificate.
 * @param {{bytes: Uint8Array, ca: string}} cert
 * @param {{publicKey: CryptoKey, fingerprint: string}} ca
 * @param {Uint8Array} sig
 * @returns {Promise<void>}
 */
export async function verifyCertificate(cert, ca, sig) {
  if (ca.fingerprint !== cert.ca) throw certError('ca_mismatch', 'certificate names another CA');
  if (!(await verifyP1363(ca.publicKey, cert.bytes, sig))) {
    throw certError('bad_signature', 'certificate signature: signature does not verify');
  }
}

/**
 * §7: usable from `NB − 300` to `NA`, both included.
 * @param {{notBefore: bigint, notAfter: bigint}} cert
 * @param {number|bigint} now Unix seconds
 */
export function checkValidity(cert, now) {
  const t = BigInt(typeof now === 'number' ? Math.floor(now) : now);
  if (t < cert.notBefore - BigInt(NOT_BEFORE_GRACE_SECS)) {
    throw certError('not_yet_valid', `certificate not yet valid (not_before ${cert.notBefore}, now ${t})`);
  }
  if (t > cert.notAfter) {
    throw certError('expired', `certificate expired (not_after ${cert.notAfter}, now ${t})`);
  }
}

function lowerAscii(b) {
  return b >= 65 && b <= 90 ? b + 32 : b;
}

/**
 * Whether a host pattern matches the whole of `host`, ASCII
 * case-insensitively; `*` matches any run. Greedy with backtracking to the
 * last `*` only: O(len(pattern) · len(host)), as on the server.
 * @param {string} pattern
 * @param {string} host
 * @returns {boolean}
 */
export function hostMatches(pattern, host) {
  const p = utf8(pattern);
  const h = utf8(host);
  let pi = 0;
  let hi = 0;
  let starP = -1;
  let starH = -1;
  while (hi < h.length) {
    if (pi < p.length && p[pi] === 42) {
      pi += 1;
      starP = pi;
      starH = hi;
    } else if (pi < p.length && lowerAscii(p[pi]) === lowerAscii(h[hi])) {
      pi += 1;
      hi += 1;
    } else if (starP >= 0) {
      pi = starP;
      starH += 1;
      hi = starH;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === 42) pi += 1;
  return pi === p.length;
}

/**
 * Whether any of the certificate's patterns matches `host`.
 * @param {{hosts: string[]}} cert
 * @param {string} host
 * @returns {boolean}
 */
export function certMatchesHost(cert, host) {
  return cert.hosts.some((p) => hostMatches(p, host));
}
