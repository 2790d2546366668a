/**
 * Strict base64url without padding (PROTOCOL.md §1), and the byte helpers
 * the other modules share.
 *
 * The wire format allows exactly one spelling of every byte string, so the
 * decoder refuses padding, characters outside `A-Z a-z 0-9 - _`, a length
 * of 1 mod 4 and non-zero trailing bits, as the server does.
 *
 * Exported API:
 *
 * - `b64encode(bytes: Uint8Array): string` — unpadded base64url.
 * - `b64decode(text: string): Uint8Array` — throws `B64Error` (code `'b64'`).
 * - `b64encodeAscii(bytes: Uint8Array): Uint8Array` — the same text as
 *   ASCII bytes (a text-framing line without building a string).
 * - `b64decodeAscii(ascii: Uint8Array): Uint8Array` — decodes ASCII bytes
 *   (a record line as it arrives); throws `B64Error`.
 * - `base64StdEncode(bytes): string` / `base64StdDecode(text): Uint8Array`
 *   — the standard alphabet with `=` padding, for PEM bodies (whitespace
 *   is ignored by the decoder; anything else foreign throws `B64Error`).
 * - `utf8(text: string): Uint8Array`, `fromUtf8(bytes: Uint8Array): string`
 *   — UTF-8; `fromUtf8` throws a `TypeError` on invalid UTF-8.
 * - `toHex(bytes): string`, `fromHex(text): Uint8Array` — lowercase hex
 *   (tests, display); `fromHex` throws `TypeError` on bad hex.
 * - `concatBytes(parts: Uint8Array[]): Uint8Array`.
 * - `bytesEqual(a: Uint8Array, b: Uint8Array): boolean`.
 */

import { B64Error } from './errors.js';

const URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const STD_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** ASCII code of each 6-bit value. */
const URL_ENC = Uint8Array.from(URL_ALPHABET, (c) => c.charCodeAt(0));
const STD_ENC = Uint8Array.from(STD_ALPHABET, (c) => c.charCodeAt(0));

/** 6-bit value of each ASCII code, 255 for a foreign character. */
function decodeTable(alphabet) {
  const t = new Uint8Array(256).fill(255);
  for (let i = 0; i < alphabet.length; i++) t[alphabet.charCodeAt(i)] = i;
  return t;
}
const URL_DEC = decodeTable(URL_ALPHABET);
const STD_DEC = decodeTable(STD_ALPHABET);

const textEncoder = new TextEncoder();
const asciiDecoder = new TextDecoder('utf-8');
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes `bytes` with table `enc` into ASCII, without padding. */
function encodeAscii(bytes, enc) {
  const n = bytes.length;
  const out = new Uint8Array(Math.ceil((n * 4) / 3));
  let o = 0;
  let i = 0;
  for (; i + 3 <= n; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out[o++] = enc[v >>> 18];
    out[o++] = enc[(v >>> 12) & 63];
    out[o++] = enc[(v >>> 6) & 63];
    out[o++] = enc[v & 63];
  }
  const rest = n - i;
  if (rest === 1) {
    const v = bytes[i];
    out[o++] = enc[v >>> 2];
    out[o++] = enc[(v & 3) << 4];
  } else if (rest === 2) {
    const v = (bytes[i] << 8) | bytes[i + 1];
    out[o++] = enc[v >>> 10];
    out[o++] = enc[(v >>> 4) & 63];
    out[o++] = enc[(v & 15) << 2];
  }
  return out;
}

/**
 * Decodes `len` characters given by `at(k)` (a char code) with table `dec`,
 * strictly: no padding, no foreign character, canonical trailing bits.
 */
function decodeStrict(len, at, dec) {
  const rem = len % 4;
  if (rem === 1) throw new B64Error();
  const out = new Uint8Array(((len - rem) / 4) * 3 + (rem === 0 ? 0 : rem - 1));
  let o = 0;
  let k = 0;
  const full = len - rem;
  for (; k < full; k += 4) {
    const a = dec[at(k)];
    const b = dec[at(k + 1)];
    const c = dec[at(k + 2)];
    const d = dec[at(k + 3)];
    if ((a | b | c | d) > 63) throw new B64Error();
    const v = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = v >>> 16;
    out[o++] = (v >>> 8) & 255;
    out[o++] = v & 255;
  }
  if (rem === 2) {
    const a = dec[at(k)];
    const b = dec[at(k + 1)];
    if ((a | b) > 63 || (b & 15) !== 0) throw new B64Error();
    out[o++] = (a << 2) | (b >>> 4);
  } else if (rem === 3) {
    const a = dec[at(k)];
    const b = dec[at(k + 1)];
    const c = dec[at(k + 2)];
    if ((a | b | c) > 63 || (c & 3) !== 0) throw new B64Error();
    out[o++] = (a << 2) | (b >>> 4);
    out[o++] = ((b & 15) << 4) | (c >>> 2);
  }
  return out;
}

/**
 * Unpadded base64url of `bytes`.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function b64encode(bytes) {
  return asciiDecoder.decode(encodeAscii(bytes, URL_ENC));
}

/**
 * The same as {@link b64encode}, as ASCII bytes.
 * @param {Uint8Array} bytes
 * @returns {Uint8Array}
 */
export function b64encodeAscii(bytes) {
  return encodeAscii(bytes, URL_ENC);
}

/**
 * Decodes canonical unpadded base64url.
 * @param {string} text
 * @returns {Uint8Array}
 * @throws {B64Error}
 */
export function b64decode(text) {
  if (typeof text !== 'string') throw new B64Error('base64url: not a string');
  // Char codes above 255 index past the table: undefined > 63 is false, so
  // map them to 255 explicitly.
  return decodeStrict(
    text.length,
    (k) => {
      const c = text.charCodeAt(k);
      return c < 256 ? c : 255;
    },
    URL_DEC,
  );
}

/**
 * Decodes canonical unpadded base64url given as ASCII bytes.
 * @param {Uint8Array} ascii
 * @returns {Uint8Array}
 * @throws {B64Error}
 */
export function b64decodeAscii(ascii) {
  return decodeStrict(ascii.length, (k) => ascii[k], URL_DEC);
}

/**
 * Standard base64 with padding (PEM bodies), 64-character lines are the
 * caller's business.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function base64StdEncode(bytes) {
  const s = asciiDecoder.decode(encodeAscii(bytes, STD_ENC));
  return s + '='.repeat((4 - (s.length % 4)) % 4);
}

/**
 * Decodes standard base64 (PEM body): ASCII whitespace is skipped, padding
 * must make the length a multiple of 4 and may only end the text.
 * @param {string} text
 * @returns {Uint8Array}
 * @throws {B64Error}
 */
export function base64StdDecode(text) {
  const chars = text.replace(/[ \t\r\n]/g, '');
  if (chars.length % 4 !== 0) throw new B64Error('invalid base64 (length)');
  let pad = 0;
  while (pad < 2 && chars.length > pad && chars.charCodeAt(chars.length - 1 - pad) === 61) pad++;
  const body = chars.slice(0, chars.length - pad);
  return decodeStrict(
    body.length,
    (k) => {
      const c = body.charCodeAt(k);
      return c < 256 ? c : 255;
    },
    STD_DEC,
  );
}

/**
 * UTF-8 bytes of a string.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function utf8(text) {
  return textEncoder.encode(text);
}

/**
 * A string from UTF-8 bytes; invalid UTF-8 throws a `TypeError`.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function fromUtf8(bytes) {
  return strictDecoder.decode(bytes);
}

/**
 * Lowercase hex.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function toHex(bytes) {
  let s = '';
  for (const b of bytes) s += (b < 16 ? '0' : '') + b.toString(16);
  return s;
}

/**
 * Bytes from hex (either case).
 * @param {string} text
 * @returns {Uint8Array}
 */
export function fromHex(text) {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) throw new TypeError('bad hex');
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * One array holding `parts` back to back.
 * @param {Uint8Array[]} parts
 * @returns {Uint8Array}
 */
export function concatBytes(parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Byte-wise equality (not constant-time: for public values only).
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 * @returns {boolean}
 */
export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
