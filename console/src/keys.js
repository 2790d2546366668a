/**
 * PEM key files (PROTOCOL.md §1) imported into WebCrypto.
 *
 * Exported API (see the JSDoc of each function):
 *
 * - `parsePem(text) → {label, der, encryptedHeaders}[]`
 * - `isEncryptedPem(text) → boolean`
 * - `importPrivateKeyPem(text, {passphrase}?) → Promise<PrivateIdentity>`:
 *   `{privateKey: CryptoKey (ECDSA P-256, sign, non-extractable),
 *     publicKey: CryptoKey (verify), publicRaw: Uint8Array(65),
 *     spki: Uint8Array, fingerprint: string}`
 * - `importPublicKeyPem(text) → Promise<PublicIdentity>`:
 *   `{publicKey, publicRaw, spki, fingerprint}`
 * - `importPublicKeyRaw(raw: Uint8Array) → Promise<PublicIdentity>`
 * - `spkiFromRaw(raw) → Uint8Array`, `fingerprintOfSpki(spki) → Promise<string>`
 * - `publicKeyPem(raw) → string` (SPKI `PUBLIC KEY` PEM, as `remo keygen` writes)
 * - `KEY_LIMITS`
 *
 * Errors: `KeyFileError` (codes in errors.js).
 */
export const KEY_LIMITS = {};
export function parsePem() { throw new Error('not implemented yet'); }
export function isEncryptedPem() { throw new Error('not implemented yet'); }
export async function importPrivateKeyPem() { throw new Error('not implemented yet'); }
export async function importPublicKeyPem() { throw new Error('not implemented yet'); }
export async function importPublicKeyRaw() { throw new Error('not implemented yet'); }
export function spkiFromRaw() { throw new Error('not implemented yet'); }
export async function fingerprintOfSpki() { throw new Error('not implemented yet'); }
export function publicKeyPem() { throw new Error('not implemented yet'); }
