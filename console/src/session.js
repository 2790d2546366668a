/**
 * A remo/1 client session over fetch.
 *
 * Exported API:
 *
 * - `getInfo(base, {fetch, signal}?) → Promise<Info>`
 * - `login({base, user, key, publicRaw, serverKeyPin, fetch, framing, cert, certSig, signal}) → Promise<Session>`
 * - `class Session`: `request(op, descriptor, {body, onData, signal, stream}) → Promise<result>`, `logout()`
 */
export async function getInfo() { throw new Error('not implemented yet'); }
export async function login() { throw new Error('not implemented yet'); }
export class Session {}
