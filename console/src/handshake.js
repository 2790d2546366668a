/**
 * The §3 handshake: M1/M2, P1363 signatures, ECDH and the HKDF session keys.
 *
 * Exported API:
 *
 * - `validUserName(name) → boolean`
 * - `m1(user, qcB64, time) → string`, `m2(user, qcB64, qsB64, sid) → string`
 * - `signP1363(privateKey, bytes) → Promise<Uint8Array(64)>`
 * - `verifyP1363(publicKey, bytes, sig) → Promise<boolean>`
 * - `generateEphemeral() → Promise<{privateKey, publicRaw}>`
 * - `ephemeralFromScalar(d: Uint8Array(32)) → Promise<{privateKey, publicRaw}>` (test vectors)
 * - `sharedSecret(privateKey, peerRaw) → Promise<Uint8Array(32)>`
 * - `sessionKeyBytes(z, qc, qs, sid) → Promise<{c2s: Uint8Array, s2c: Uint8Array}>`
 * - `sessionKeys(z, qc, qs, sid) → Promise<{c2s: CryptoKey, s2c: CryptoKey}>`
 * - `authRequest({user, key, time, ephemeral?, cert?, certSig?}) → Promise<{body, ephemeral, qcB64}>`
 * - `finishAuth({user, qcB64, ephemeral, response, serverKey}) → Promise<{sid, timeout, c2s, s2c, qsB64}>`
 */
export function validUserName() { throw new Error('not implemented yet'); }
export function m1() { throw new Error('not implemented yet'); }
export function m2() { throw new Error('not implemented yet'); }
export async function signP1363() { throw new Error('not implemented yet'); }
export async function verifyP1363() { throw new Error('not implemented yet'); }
export async function generateEphemeral() { throw new Error('not implemented yet'); }
export async function ephemeralFromScalar() { throw new Error('not implemented yet'); }
export async function sharedSecret() { throw new Error('not implemented yet'); }
export async function sessionKeyBytes() { throw new Error('not implemented yet'); }
export async function sessionKeys() { throw new Error('not implemented yet'); }
export async function authRequest() { throw new Error('not implemented yet'); }
export async function finishAuth() { throw new Error('not implemented yet'); }
