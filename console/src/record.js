/**
 * Sealed records (PROTOCOL.md §4): one record is `N ‖ C` with
 * `N = u64be(R) ‖ u32be(i)`, `C = AES-256-GCM(K, N, plaintext, AAD)` and
 * `AAD = "remo/1 " ‖ OP ‖ (" more" | " last")`. Both framings (framing.js)
 * carry the same `N ‖ C`; this module seals and opens it.
 *
 * A `Sealer` numbers the records of one message 0, 1, 2, … and refuses
 * anything after the `last` one; an `Opener` checks `R`, the index and the
 * `last`/`more` rule before and after decrypting. Both are used one record
 * at a time, awaiting each call before the next (WebCrypto is async).
 *
 * Exported API:
 *
 * - `MAX_PLAINTEXT` (65,537), `NONCE_LEN` (12), `TAG_LEN` (16),
 *   `MIN_RECORD_LEN` (28 = `N ‖ C` of an empty plaintext),
 *   `MAX_RECORD_LEN` (65,565), `CHANNEL_STDOUT` (1), `CHANNEL_STDERR` (2).
 * - `importRecordKey(bytes: Uint8Array(32)): Promise<CryptoKey>` — AES-GCM,
 *   non-extractable.
 * - `recordNonce(r: number|bigint, i: number): Uint8Array` — the 12-byte `N`.
 * - `recordAad(op: string, last: boolean): Uint8Array`.
 * - `sealRecord(key, r, i, op, last, plaintext): Promise<Uint8Array>` — one `N ‖ C`.
 * - `class Sealer(key: CryptoKey, r: number|bigint, op: string)`:
 *   `seal(plaintext: Uint8Array, last: boolean): Promise<Uint8Array>` (the
 *   next record's `N ‖ C`; `RecordError` `'too_large'`, `'after_last'`,
 *   `'too_many_records'`); properties `index` (next index), `finished`.
 * - `class Opener(key: CryptoKey, r: number|bigint|null, op: string)`:
 *   `open(raw: Uint8Array): Promise<{index: number, last: boolean,
 *   plaintext: Uint8Array}>` (`RecordError` `'malformed'`, `'too_large'`,
 *   `'wrong_request'`, `'out_of_order'`, `'after_last'`, `'auth'`,
 *   `'too_many_records'`); `finish()` at the end of the message (`'empty'`
 *   if no record, `'truncated'` if no `last` record); properties `done`,
 *   `r` (a bigint once known). With `r = null` the first record fixes `R`.
 * - `recordError(code, extra?): RecordError` — the error with its standard
 *   message (framing.js uses it).
 */

import { RecordError } from './errors.js';
import { utf8 } from './b64.js';

export const MAX_PLAINTEXT = 65_537;
export const NONCE_LEN = 12;
export const TAG_LEN = 16;
export const MIN_RECORD_LEN = NONCE_LEN + TAG_LEN;
export const MAX_RECORD_LEN = NONCE_LEN + MAX_PLAINTEXT + TAG_LEN;
export const CHANNEL_STDOUT = 0x01;
export const CHANNEL_STDERR = 0x02;

const U32_MAX = 0xffffffff;
const U64_MAX = (1n << 64n) - 1n;

const MESSAGES = {
  line_too_long: 'record line longer than 87420 characters',
  partial_line: 'body does not end with CRLF',
  partial_record: 'body ends inside a binary record',
  malformed: 'malformed record',
  too_large: 'record plaintext too large',
  auth: 'record does not authenticate',
  wrong_request: 'record belongs to another request',
  out_of_order: 'record out of order',
  after_last: 'record after the last record',
  truncated: 'message truncated: no last record',
  empty: 'empty message',
  too_many_records: 'too many records in one message',
};

/** A RecordError with the standard message for `code`. */
export function recordError(code, extra) {
  return new RecordError(code, MESSAGES[code] ?? code, extra);
}

/**
 * An AES-256-GCM key for records, non-extractable.
 * @param {Uint8Array} bytes 32 bytes
 * @returns {Promise<CryptoKey>}
 */
export async function importRecordKey(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) throw new TypeError('record key must be 32 bytes');
  return globalThis.crypto.subtle.importKey('raw', bytes, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

/** `R` as a checked u64 bigint. */
function requestNumber(r) {
  const v = BigInt(r);
  if (v < 0n || v > U64_MAX) throw new RangeError('request number out of range');
  return v;
}

/**
 * The nonce `u64be(R) ‖ u32be(i)`.
 * @param {number|bigint} r
 * @param {number} i
 * @returns {Uint8Array}
 */
export function recordNonce(r, i) {
  const n = new Uint8Array(NONCE_LEN);
  const dv = new DataView(n.buffer);
  dv.setBigUint64(0, requestNumber(r));
  dv.setUint32(8, i);
  return n;
}

/**
 * The AAD `"remo/1 " ‖ OP ‖ (" more" | " last")`.
 * @param {string} op
 * @param {boolean} last
 * @returns {Uint8Array}
 */
export function recordAad(op, last) {
  return utf8(`remo/1 ${op} ${last ? 'last' : 'more'}`);
}

/**
 * Seals one record: `N ‖ C`.
 * @returns {Promise<Uint8Array>}
 */
export async function sealRecord(key, r, i, op, last, plaintext) {
  return sealWith(key, recordNonce(r, i), recordAad(op, last), plaintext);
}

async function sealWith(key, nonce, aad, plaintext) {
  if (plaintext.length > MAX_PLAINTEXT) throw recordError('too_large');
  const c = new Uint8Array(
    await globalThis.crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad }, key, plaintext),
  );
  const out = new Uint8Array(NONCE_LEN + c.length);
  out.set(nonce);
  out.set(c, NONCE_LEN);
  return out;
}

/** Seals the records of one message in order. */
export class Sealer {
  /**
   * @param {CryptoKey} key K_c2s for a request
   * @param {number|bigint} r the request number
   * @param {string} op the operation name
   */
  constructor(key, r, op) {
    this.key = key;
    this.r = requestNumber(r);
    this.index = 0;
    this.finished = false;
    this.aadMore = recordAad(op, false);
    this.aadLast = recordAad(op, true);
  }

  /**
   * Seals the next record.
   * @param {Uint8Array} plaintext at most MAX_PLAINTEXT bytes
   * @param {boolean} last whether it ends the message
   * @returns {Promise<Uint8Array>} N ‖ C
   */
  async seal(plaintext, last) {
    if (this.finished) throw recordError('after_last');
    // Index u32::MAX is kept for a `last` record: past it the nonce repeats.
    if (this.index === U32_MAX && !last) throw recordError('too_many_records');
    if (plaintext.length > MAX_PLAINTEXT) throw recordError('too_large');
    const i = this.index;
    // Claimed before the await, so two overlapping calls cannot share an index.
    this.index = Math.min(i + 1, U32_MAX);
    this.finished = last;
    return sealWith(this.key, recordNonce(this.r, i), last ? this.aadLast : this.aadMore, plaintext);
  }
}

/** Opens the records of one message in order. */
export class Opener {
  /**
   * @param {CryptoKey} key K_s2c for a response
   * @param {number|bigint|null} r the expected request number, or null to
   *   take it from the first record
   * @param {string} op the operation name
   */
  constructor(key, r, op) {
    this.key = key;
    this.r = r === null || r === undefined ? null : requestNumber(r);
    this.next = 0;
    this.done = false;
    this.aadMore = recordAad(op, false);
    this.aadLast = recordAad(op, true);
  }

  /**
   * Checks and decrypts the next record.
   * @param {Uint8Array} raw N ‖ C
   * @returns {Promise<{index: number, last: boolean, plaintext: Uint8Array}>}
   */
  async open(raw) {
    if (this.done) throw recordError('after_last');
    if (raw.length < MIN_RECORD_LEN) throw recordError('malformed');
    if (raw.length > MAX_RECORD_LEN) throw recordError('too_large');
    const nonce = raw.subarray(0, NONCE_LEN);
    const dv = new DataView(raw.buffer, raw.byteOffset, NONCE_LEN);
    const r = dv.getBigUint64(0);
    const i = dv.getUint32(8);
    if (this.r !== null && this.r !== r) throw recordError('wrong_request');
    if (i !== this.next) throw recordError('out_of_order');
    const sealed = raw.subarray(NONCE_LEN);
    const subtle = globalThis.crypto.subtle;
    let last;
    let plain;
    // "more" first: every record but the last is one.
    try {
      plain = await subtle.decrypt({ name: 'AES-GCM', iv: nonce, additionalData: this.aadMore }, this.key, sealed);
      last = false;
    } catch {
      try {
        plain = await subtle.decrypt({ name: 'AES-GCM', iv: nonce, additionalData: this.aadLast }, this.key, sealed);
        last = true;
      } catch {
        throw recordError('auth');
      }
    }
    if (this.done || this.next !== i) throw recordError('out_of_order');
    if (i === U32_MAX && !last) throw recordError('too_many_records');
    this.r = r;
    this.next = Math.min(i + 1, U32_MAX);
    this.done = last;
    return { index: i, last, plaintext: new Uint8Array(plain) };
  }

  /** At the end of the message: it must have ended with its `last` record. */
  finish() {
    if (this.done) return;
    throw recordError(this.next === 0 ? 'empty' : 'truncated');
  }
}
