/**
 * The console's one connection to its server: sign in with a remembered
 * key, the server key pinned per origin and base (trust on first use, as
 * the CLI's known_servers), re-login when the session has expired, and the
 * idle time left.
 *
 * - `new Connection(store, base)` — `base` is the URL prefix remod is
 *   mounted at (the console lives at `{base}/console/`).
 * - `signIn(user, keyRecord)` — logs in; a first server key is pinned; a
 *   changed one throws `SessionError('server_key_changed')` (with `pinned`
 *   and `offered`) and nothing is sent with the key.
 * - `trustNewKey(fingerprint)` — replaces the pin (after the user checked
 *   the new fingerprint out of band).
 * - `request(op, descriptor, options)` — `Session.request`, with one
 *   transparent re-login when the server says the session is gone (401).
 * - `signOut()`, `signedIn`, `user`, `fingerprint`, `secondsLeft()`.
 * - `onChange` — called after sign in, sign out, re-login.
 */

import { getInfo, login } from '../session.js';
import { SessionError } from '../errors.js';

export class Connection {
  constructor(store, base) {
    this.store = store;
    this.base = base;
    this.server = location.origin + base;
    this.session = null;
    this.keyRecord = null;
    this.lastUse = 0;
    this.relogins = 0;
    this.onChange = () => {};
  }

  get signedIn() {
    return this.session !== null && !this.session.closed;
  }

  get user() {
    return this.session?.user;
  }

  get fingerprint() {
    return this.session?.serverFingerprint;
  }

  /** The pinned fingerprint of this server, if any. */
  async pin() {
    return (await this.store.get('pins', this.server))?.fingerprint;
  }

  /** The server's key as `/info` offers it now (shown before trusting). */
  info() {
    return getInfo(this.base);
  }

  async signIn(user, keyRecord) {
    const session = await this.login(user, keyRecord);
    this.session = session;
    this.keyRecord = keyRecord;
    this.lastUse = Date.now();
    await this.store.setPref(`last:${this.server}`, { user, keyId: keyRecord.id });
    this.onChange();
    return session;
  }

  async login(user, keyRecord) {
    const pinned = await this.pin();
    const session = await login({
      base: this.base,
      user,
      key: keyRecord.privateKey,
      publicRaw: keyRecord.publicRaw,
      serverKeyPin: pinned ?? undefined,
    });
    if (!pinned) {
      await this.store.put('pins', { server: this.server, fingerprint: session.serverFingerprint, first: Date.now() });
    }
    return session;
  }

  async trustNewKey(fingerprint) {
    await this.store.put('pins', { server: this.server, fingerprint, first: Date.now() });
  }

  async request(op, descriptor, options = {}) {
    if (!this.signedIn) throw new SessionError('closed', 'not signed in');
    try {
      const r = await this.session.request(op, descriptor, options);
      this.lastUse = Date.now();
      return r;
    } catch (e) {
      // 401: the session expired or the server restarted; the request was
      // refused before it ran, so it is safe to send again once.
      if (!(e instanceof SessionError && e.code === 'http' && e.status === 401)) throw e;
      this.session = await this.login(this.session.user, this.keyRecord);
      this.relogins++;
      this.onChange();
      const r = await this.session.request(op, descriptor, options);
      this.lastUse = Date.now();
      return r;
    }
  }

  async signOut() {
    const s = this.session;
    this.session = null;
    this.onChange();
    if (s && !s.closed) await s.logout().catch(() => {});
  }

  /** Seconds until the session idles out (re-login is then automatic). */
  secondsLeft() {
    if (!this.signedIn || !this.session.timeout) return null;
    return Math.max(0, Math.round(this.session.timeout - (Date.now() - this.lastUse) / 1000));
  }
}
