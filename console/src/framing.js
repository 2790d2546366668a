/**
 * The two framings of a sealed message (PROTOCOL.md §4, §4.1), streaming
 * splitters, and whole-message helpers.
 *
 * Text (`application/x-remo`): each record is `b64(N ‖ C) "\r\n"`; a line
 * longer than 87,420 characters is refused as soon as that is known, before
 * it is decoded or buffered further. Binary (`application/x-remo-bin`):
 * each record is `u32be(L) ‖ N ‖ C` with `28 ≤ L ≤ 65,565`, checked as soon
 * as its 4 length bytes are in, before the record is awaited. Splitters take
 * `Uint8Array` chunks as they come off a `ReadableStream` (any cut, even
 * inside a CRLF or a length) and hold at most one record plus a chunk.
 *
 * Exported API:
 *
 * - `TEXT_CONTENT_TYPE`, `BINARY_CONTENT_TYPE`, `MAX_LINE` (87,420),
 *   `LENGTH_PREFIX` (4); `MIN_RECORD_LEN`, `MAX_RECORD_LEN` re-exported.
 * - `contentTypeOf(framing: 'text'|'binary'): string`.
 * - `framingOfContentType(value: string|null): 'text'|'binary'|null` — the
 *   media type before any `;`, ASCII case-insensitive, exactly one of the two.
 * - `frameRecord(raw: Uint8Array, framing): Uint8Array` — one `N ‖ C` framed.
 * - `framedLength(plaintextLength: number, framing): number` — wire bytes
 *   of one record.
 * - `class LineSplitter`, `class BinarySplitter`, `class
 *   RecordSplitter(framing)` — `push(chunk: Uint8Array)`, `next():
 *   Uint8Array|null` (the next record's `N ‖ C` — a line for
 *   `LineSplitter` — or null if more input is needed; throws
 *   `RecordError` `'line_too_long'`, `'length_too_small'` /
 *   `'length_too_large'` (with `length`), `'malformed'` (bad base64)),
 *   `finish()` at the end of the stream (`'partial_line'` /
 *   `'partial_record'` if bytes are left).
 * - `sealMessage(key, r, op, plaintexts: Uint8Array[], framing):
 *   Promise<Uint8Array>` — a whole message, records sealed in parallel.
 * - `openMessage(key, r|null, op, body: Uint8Array, framing):
 *   Promise<Uint8Array[]>` — every plaintext of a whole message, with all
 *   the checks of a stream.
 * - `openRecords(key, r|null, op, chunks: AsyncIterable<Uint8Array>,
 *   framing): AsyncGenerator<{index, last, plaintext}>` — opens records as
 *   their bytes arrive; throws at the end if the message was truncated.
 * - `streamChunks(stream: ReadableStream<Uint8Array>):
 *   AsyncGenerator<Uint8Array>` — a stream's chunks through its reader (also
 *   where `ReadableStream` is not async-iterable); leaving the loop early
 *   cancels the stream.
 */

import { RecordError } from './errors.js';
import { b64decodeAscii, b64encodeAscii } from './b64.js';
import { MAX_RECORD_LEN, MIN_RECORD_LEN, NONCE_LEN, Opener, Sealer, TAG_LEN, recordError } from './record.js';

export { MAX_RECORD_LEN, MIN_RECORD_LEN };

export const TEXT_CONTENT_TYPE = 'application/x-remo';
export const BINARY_CONTENT_TYPE = 'application/x-remo-bin';
export const MAX_LINE = 87_420;
export const LENGTH_PREFIX = 4;

/**
 * @param {'text'|'binary'} framing
 * @returns {string}
 */
export function contentTypeOf(framing) {
  if (framing === 'text') return TEXT_CONTENT_TYPE;
  if (framing === 'binary') return BINARY_CONTENT_TYPE;
  throw new TypeError(`unknown framing ${framing}`);
}

/**
 * @param {string|null|undefined} value a Content-Type header
 * @returns {'text'|'binary'|null}
 */
export function framingOfContentType(value) {
  if (typeof value !== 'string') return null;
  const media = value.split(';')[0].trim().toLowerCase();
  if (media === TEXT_CONTENT_TYPE) return 'text';
  if (media === BINARY_CONTENT_TYPE) return 'binary';
  return null;
}

/**
 * Wire bytes of one record with `plaintextLength` bytes.
 * @param {number} plaintextLength
 * @param {'text'|'binary'} framing
 */
export function framedLength(plaintextLength, framing) {
  const raw = NONCE_LEN + plaintextLength + TAG_LEN;
  return framing === 'binary' ? LENGTH_PREFIX + raw : Math.ceil((raw * 4) / 3) + 2;
}

/** Writes the framed `raw` into `out` at `at`; returns the end offset. */
function frameInto(raw, framing, out, at) {
  if (framing === 'binary') {
    new DataView(out.buffer, out.byteOffset).setUint32(at, raw.length);
    out.set(raw, at + LENGTH_PREFIX);
    return at + LENGTH_PREFIX + raw.length;
  }
  const line = b64encodeAscii(raw);
  out.set(line, at);
  out[at + line.length] = 13;
  out[at + line.length + 1] = 10;
  return at + line.length + 2;
}

/**
 * One record `N ‖ C` in `framing`.
 * @param {Uint8Array} raw
 * @param {'text'|'binary'} framing
 * @returns {Uint8Array}
 */
export function frameRecord(raw, framing) {
  const out = new Uint8Array(framedLength(raw.length - NONCE_LEN - TAG_LEN, framing));
  frameInto(raw, framing, out, 0);
  return out;
}

/** A byte queue: appended at the end, consumed from the front. */
class ByteQueue {
  constructor() {
    this.buf = new Uint8Array(0);
    this.start = 0;
    this.end = 0;
  }

  get length() {
    return this.end - this.start;
  }

  push(chunk) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError('chunks must be Uint8Array');
    if (chunk.length === 0) return;
    if (this.end + chunk.length > this.buf.length) {
      const live = this.length;
      const need = live + chunk.length;
      if (need <= this.buf.length) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        const next = new Uint8Array(Math.max(need, this.buf.length * 2, 4096));
        next.set(this.buf.subarray(this.start, this.end));
        this.buf = next;
      }
      this.start = 0;
      this.end = live;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  /** A copy of the next `n` bytes, consumed. */
  take(n) {
    const out = this.buf.slice(this.start, this.start + n);
    this.start += n;
    if (this.start === this.end) this.start = this.end = 0;
    return out;
  }

  skip(n) {
    this.start += n;
    if (this.start === this.end) this.start = this.end = 0;
  }

  byteAt(k) {
    return this.buf[this.start + k];
  }
}

/** Cuts a byte stream into CRLF-terminated lines (without the CRLF). */
export class LineSplitter {
  constructor() {
    this.q = new ByteQueue();
    this.scanned = 0;
  }

  /** @param {Uint8Array} chunk */
  push(chunk) {
    this.q.push(chunk);
  }

  /** @returns {Uint8Array|null} the next line, or null if more input is needed */
  next() {
    const q = this.q;
    const live = q.buf.subarray(0, q.end);
    // Resume where the last scan stopped, minus one byte for a CR that
    // ended the previous chunk.
    let from = q.start + Math.max(this.scanned - 1, 0);
    for (;;) {
      const nl = live.indexOf(10, from);
      if (nl === -1) break;
      if (nl > q.start && live[nl - 1] === 13) {
        const len = nl - 1 - q.start;
        if (len > MAX_LINE) throw recordError('line_too_long');
        const line = q.take(len);
        q.skip(2);
        this.scanned = 0;
        return line;
      }
      from = nl + 1;
    }
    this.scanned = q.length;
    // A whole line and its CR may be in, waiting for the LF; more is too long.
    if (q.length > MAX_LINE + 1) throw recordError('line_too_long');
    return null;
  }

  /** At the end of the stream: leftover bytes are a cut line. */
  finish() {
    if (this.q.length !== 0) throw recordError('partial_line');
  }
}

/** Cuts a binary body into records `N ‖ C` (length prefix removed). */
export class BinarySplitter {
  constructor() {
    this.q = new ByteQueue();
  }

  /** @param {Uint8Array} chunk */
  push(chunk) {
    this.q.push(chunk);
  }

  /** @returns {Uint8Array|null} the next record, or null if more input is needed */
  next() {
    const q = this.q;
    if (q.length < LENGTH_PREFIX) return null;
    const l = ((q.byteAt(0) << 24) | (q.byteAt(1) << 16) | (q.byteAt(2) << 8) | q.byteAt(3)) >>> 0;
    if (l < MIN_RECORD_LEN) {
      throw new RecordError('length_too_small', `binary record length ${l} below ${MIN_RECORD_LEN}`, { length: l });
    }
    if (l > MAX_RECORD_LEN) {
      throw new RecordError('length_too_large', `binary record length ${l} above ${MAX_RECORD_LEN}`, { length: l });
    }
    if (q.length < LENGTH_PREFIX + l) return null;
    q.skip(LENGTH_PREFIX);
    return q.take(l);
  }

  /** At the end of the stream: leftover bytes are a cut record. */
  finish() {
    if (this.q.length !== 0) throw recordError('partial_record');
  }
}

/** Cuts a body in either framing into records `N ‖ C`. */
export class RecordSplitter {
  /** @param {'text'|'binary'} framing */
  constructor(framing) {
    contentTypeOf(framing);
    this.framing = framing;
    this.inner = framing === 'binary' ? new BinarySplitter() : new LineSplitter();
  }

  /** @param {Uint8Array} chunk */
  push(chunk) {
    this.inner.push(chunk);
  }

  /** @returns {Uint8Array|null} the next record's N ‖ C */
  next() {
    const rec = this.inner.next();
    if (rec === null || this.framing === 'binary') return rec;
    try {
      return b64decodeAscii(rec);
    } catch {
      throw recordError('malformed');
    }
  }

  finish() {
    this.inner.finish();
  }
}

/**
 * Seals a whole message.
 * @param {CryptoKey} key
 * @param {number|bigint} r
 * @param {string} op
 * @param {Uint8Array[]} plaintexts at least one
 * @param {'text'|'binary'} framing
 * @returns {Promise<Uint8Array>}
 */
export async function sealMessage(key, r, op, plaintexts, framing) {
  if (plaintexts.length === 0) throw recordError('empty');
  const sealer = new Sealer(key, r, op);
  const n = plaintexts.length;
  // Sealer claims each index synchronously, so the encryptions may overlap.
  const raws = await Promise.all(plaintexts.map((p, k) => sealer.seal(p, k === n - 1)));
  let total = 0;
  for (const p of plaintexts) total += framedLength(p.length, framing);
  const out = new Uint8Array(total);
  let at = 0;
  for (const raw of raws) at = frameInto(raw, framing, out, at);
  return out;
}

/**
 * Opens a whole message held in memory.
 * @param {CryptoKey} key
 * @param {number|bigint|null} r
 * @param {string} op
 * @param {Uint8Array} body
 * @param {'text'|'binary'} framing
 * @returns {Promise<Uint8Array[]>}
 */
export async function openMessage(key, r, op, body, framing) {
  const out = [];
  for await (const rec of openRecords(key, r, op, [body], framing)) out.push(rec.plaintext);
  return out;
}

/**
 * Opens records as their bytes arrive.
 * @param {CryptoKey} key
 * @param {number|bigint|null} r
 * @param {string} op
 * @param {AsyncIterable<Uint8Array>|Iterable<Uint8Array>} chunks
 * @param {'text'|'binary'} framing
 * @returns {AsyncGenerator<{index: number, last: boolean, plaintext: Uint8Array}>}
 */
export async function* openRecords(key, r, op, chunks, framing) {
  const split = new RecordSplitter(framing);
  const opener = new Opener(key, r, op);
  for await (const chunk of chunks) {
    split.push(chunk);
    for (let raw = split.next(); raw !== null; raw = split.next()) yield await opener.open(raw);
  }
  split.finish();
  opener.finish();
}

/**
 * The chunks of a ReadableStream, through its reader.
 * @param {ReadableStream<Uint8Array>} stream
 * @returns {AsyncGenerator<Uint8Array>}
 */
export async function* streamChunks(stream) {
  const reader = stream.getReader();
  let done = false;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) {
        done = true;
        return;
      }
      yield r.value;
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
