/**
 * Sealed records (§4): nonce, AAD, AES-256-GCM, in-order opening.
 *
 * Exported API:
 *
 * - constants `MAX_PLAINTEXT` (65,537), `NONCE_LEN`, `TAG_LEN`,
 *   `CHANNEL_STDOUT` (1), `CHANNEL_STDERR` (2)
 * - `importRecordKey(bytes32) → Promise<CryptoKey>`
 * - `recordNonce(r, i) → Uint8Array(12)`, `recordAad(op, last) → Uint8Array`
 * - `class Sealer(key, r, op)`: `seal(plaintext, last) → Promise<Uint8Array N‖C>`
 * - `class Opener(key, r|null, op)`: `open(raw) → Promise<{index, last, plaintext}>`, `finish()`
 */
export const MAX_PLAINTEXT = 65537;
export class Sealer {}
export class Opener {}
export async function importRecordKey() { throw new Error('not implemented yet'); }
