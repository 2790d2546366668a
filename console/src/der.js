/**
 * A minimal, total DER reader and a tiny DER writer, for the key files of
 * keys.js (PKCS#8, SEC1 `ECPrivateKey`, PBES2 parameters, SPKI).
 *
 * The reader is strict DER: single-byte tags, definite minimal lengths,
 * minimal INTEGERs and OID arcs. Every length is checked against what is
 * left before anything is read, nothing is read past the end, and every
 * failure is a `DerError` (a `KeyFileError` with code `'malformed'`), never
 * a `RangeError` or a wrong value.
 *
 * Exported API:
 *
 * - `TAG` — `{INTEGER, BIT_STRING, OCTET_STRING, NULL, OID, SEQUENCE}`.
 * - `class DerReader(bytes: Uint8Array)` — reads the TLVs of one level:
 *   - `atEnd: boolean`, `peekTag(): number` (-1 at the end)
 *   - `read(tag): Uint8Array` — the content of the next TLV, which must
 *     have `tag`
 *   - `sequence(): DerReader` — the next SEQUENCE's contents
 *   - `context(n): DerReader|null` — the contents of an explicit `[n]`
 *     (constructed) if it comes next, else `null`
 *   - `integer(): Uint8Array` — a non-negative INTEGER's magnitude, big-endian,
 *     without the sign byte
 *   - `smallInteger(max): number` — a non-negative INTEGER ≤ `max`
 *   - `oid(): string` — dotted decimal
 *   - `octetString(): Uint8Array`, `bitString(): Uint8Array` (0 unused bits)
 *   - `nullValue()`, `end()` — throws unless everything was read
 * - Writers, each returning the TLV as `Uint8Array`: `derSequence(...parts)`,
 *   `derInteger(value: number|Uint8Array)`, `derOctetString(bytes)`,
 *   `derBitString(bytes)`, `derOid(dotted)`, `derNull()`,
 *   `derContext(n, ...parts)` (explicit, constructed).
 */

import { DerError } from './errors.js';
import { concatBytes } from './b64.js';

/** Universal tags (with the constructed bit for SEQUENCE). */
export const TAG = Object.freeze({
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  SEQUENCE: 0x30,
});

/** Reads the TLVs of one level of a DER structure. */
export class DerReader {
  /**
   * @param {Uint8Array} bytes the contents to read
   * @param {number} [base] offset of `bytes` in the whole DER, for messages
   */
  constructor(bytes, base = 0) {
    if (!(bytes instanceof Uint8Array)) throw new DerError('not bytes', base);
    this.bytes = bytes;
    this.pos = 0;
    this.base = base;
  }

  /** True once every byte has been read. */
  get atEnd() {
    return this.pos >= this.bytes.length;
  }

  /** The next tag, or -1 at the end. */
  peekTag() {
    return this.atEnd ? -1 : this.bytes[this.pos];
  }

  /** Throws a DerError at the current position. */
  fail(what) {
    throw new DerError(what, this.base + this.pos);
  }

  /**
   * The next TLV, which must have tag `tag`: its content and the offset of
   * the content in the whole DER.
   */
  readTlv(tag) {
    const b = this.bytes;
    if (this.atEnd) this.fail(`expected tag 0x${tag.toString(16)}, found the end`);
    const t = b[this.pos];
    if ((t & 0x1f) === 0x1f) this.fail('multi-byte tag');
    if (t !== tag) this.fail(`expected tag 0x${tag.toString(16)}, found 0x${t.toString(16)}`);
    let p = this.pos + 1;
    if (p >= b.length) this.fail('missing length');
    const first = b[p++];
    let len;
    if (first < 0x80) {
      len = first;
    } else {
      const count = first & 0x7f;
      if (count === 0) this.fail('indefinite length');
      if (count > 4) this.fail('length too large');
      if (p + count > b.length) this.fail('length runs past the end');
      len = 0;
      for (let k = 0; k < count; k++) len = len * 256 + b[p++];
      if (b[p - count] === 0) this.fail('non-minimal length');
      if (len < 0x80) this.fail('non-minimal length');
    }
    if (len > b.length - p) this.fail('content runs past the end');
    const content = b.subarray(p, p + len);
    const at = this.base + p;
    this.pos = p + len;
    return { content, at };
  }

  /**
   * The content of the next TLV, which must have tag `tag`.
   * @param {number} tag
   * @returns {Uint8Array}
   */
  read(tag) {
    return this.readTlv(tag).content;
  }

  /** The next SEQUENCE's contents, as a reader. */
  sequence() {
    const { content, at } = this.readTlv(TAG.SEQUENCE);
    return new DerReader(content, at);
  }

  /**
   * The contents of an explicitly tagged `[n]` if it comes next, else null.
   * @param {number} n
   * @returns {DerReader|null}
   */
  context(n) {
    const tag = 0xa0 | n;
    if (this.peekTag() !== tag) return null;
    const { content, at } = this.readTlv(tag);
    return new DerReader(content, at);
  }

  /** A non-negative INTEGER's magnitude (big-endian, no sign byte). */
  integer() {
    const { content, at } = this.readTlv(TAG.INTEGER);
    if (content.length === 0) throw new DerError('empty INTEGER', at);
    if (content[0] & 0x80) throw new DerError('negative INTEGER', at);
    if (content.length > 1 && content[0] === 0 && !(content[1] & 0x80)) {
      throw new DerError('non-minimal INTEGER', at);
    }
    return content[0] === 0 && content.length > 1 ? content.subarray(1) : content;
  }

  /**
   * A non-negative INTEGER no larger than `max` (≤ 2^53 − 1).
   * @param {number} max
   * @returns {number}
   */
  smallInteger(max) {
    const start = this.base + this.pos;
    const mag = this.integer();
    if (mag.length > 7) throw new DerError(`INTEGER above ${max}`, start);
    let v = 0;
    for (const x of mag) v = v * 256 + x;
    if (v > max) throw new DerError(`INTEGER above ${max}`, start);
    return v;
  }

  /** An OBJECT IDENTIFIER in dotted decimal. */
  oid() {
    const { content, at } = this.readTlv(TAG.OID);
    if (content.length === 0) throw new DerError('empty OID', at);
    const arcs = [];
    let v = 0;
    let fresh = true;
    for (let k = 0; k < content.length; k++) {
      const x = content[k];
      if (fresh && x === 0x80) throw new DerError('non-minimal OID arc', at + k);
      fresh = false;
      if (v > (Number.MAX_SAFE_INTEGER - 127) / 128) throw new DerError('OID arc too large', at + k);
      v = v * 128 + (x & 0x7f);
      if (!(x & 0x80)) {
        arcs.push(v);
        v = 0;
        fresh = true;
      }
    }
    if (!fresh) throw new DerError('truncated OID', at + content.length);
    const first = arcs[0];
    const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
    return [...head, ...arcs.slice(1)].join('.');
  }

  /** An OCTET STRING's content. */
  octetString() {
    return this.read(TAG.OCTET_STRING);
  }

  /** A BIT STRING's content, which must have no unused bits. */
  bitString() {
    const { content, at } = this.readTlv(TAG.BIT_STRING);
    if (content.length === 0) throw new DerError('empty BIT STRING', at);
    if (content[0] !== 0) throw new DerError('BIT STRING with unused bits', at);
    return content.subarray(1);
  }

  /** A NULL. */
  nullValue() {
    const { content, at } = this.readTlv(TAG.NULL);
    if (content.length !== 0) throw new DerError('NULL with content', at);
  }

  /** Throws unless every byte of this level was read. */
  end() {
    if (!this.atEnd) this.fail('trailing data');
  }
}

/** One TLV with `tag` around the concatenation of `parts`. */
function tlv(tag, parts) {
  const content = concatBytes(parts);
  const n = content.length;
  let head;
  if (n < 0x80) {
    head = [tag, n];
  } else {
    const len = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) len.unshift(v % 256);
    head = [tag, 0x80 | len.length, ...len];
  }
  return concatBytes([Uint8Array.from(head), content]);
}

/** A SEQUENCE of the given encoded parts. */
export function derSequence(...parts) {
  return tlv(TAG.SEQUENCE, parts);
}

/**
 * A non-negative INTEGER from a safe integer or a big-endian magnitude.
 * @param {number|Uint8Array} value
 */
export function derInteger(value) {
  let mag;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError('derInteger: bad value');
    const bytes = [];
    for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
    mag = Uint8Array.from(bytes);
  } else {
    let k = 0;
    while (k < value.length && value[k] === 0) k++;
    mag = value.subarray(k);
  }
  if (mag.length === 0) mag = new Uint8Array([0]);
  else if (mag[0] & 0x80) mag = concatBytes([new Uint8Array([0]), mag]);
  return tlv(TAG.INTEGER, [mag]);
}

/** An OCTET STRING. */
export function derOctetString(bytes) {
  return tlv(TAG.OCTET_STRING, [bytes]);
}

/** A BIT STRING with no unused bits. */
export function derBitString(bytes) {
  return tlv(TAG.BIT_STRING, [new Uint8Array([0]), bytes]);
}

/** A NULL. */
export function derNull() {
  return new Uint8Array([TAG.NULL, 0]);
}

/**
 * An OBJECT IDENTIFIER from dotted decimal.
 * @param {string} dotted
 */
export function derOid(dotted) {
  const arcs = dotted.split('.').map(Number);
  const out = [];
  const push = (v) => {
    const groups = [v % 128];
    for (v = Math.floor(v / 128); v > 0; v = Math.floor(v / 128)) groups.unshift(0x80 | v % 128);
    out.push(...groups);
  };
  push(arcs[0] * 40 + arcs[1]);
  for (const a of arcs.slice(2)) push(a);
  return tlv(TAG.OID, [Uint8Array.from(out)]);
}

/**
 * An explicit context tag `[n]` (constructed) around `parts`.
 * @param {number} n
 */
export function derContext(n, ...parts) {
  return tlv(0xa0 | n, parts);
}
