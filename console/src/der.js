/**
 * A minimal, total DER reader and a tiny DER writer, for the key files of
 * keys.js (PKCS#8, SEC1, PBES2, SPKI).
 *
 * Exported API:
 *
 * - `class DerReader(bytes: Uint8Array)` — reads one level of TLVs.
 * - `derSequence(...parts)`, `derInteger(value)`, `derOctetString(bytes)`,
 *   `derBitString(bytes)`, `derOid(dotted)`, `derNull()`,
 *   `derContext(n, ...parts)` — writers returning `Uint8Array`.
 * - `TAG` — the tag numbers used.
 */
export const TAG = {};
export class DerReader {}
export function derSequence() { throw new Error('not implemented yet'); }
