/**
 * What the console remembers, in this browser's IndexedDB (database
 * `remo-console`, per origin):
 *
 * - `keys`: `{id, name, source: 'created'|'imported', privateKey: CryptoKey
 *   (ECDSA P-256, non-extractable), publicRaw: Uint8Array(65),
 *   fingerprint, created}` — the CryptoKey object itself is stored
 *   (structured clone): its private half can be used to sign but never
 *   read, by anyone, this code included.
 * - `pins`: `{server: origin + base, fingerprint, first}` — the server key
 *   trusted on first use, as the CLI's known_servers.
 * - `prefs`: `{name, value}` — last user and key per server, recent
 *   commands, the last directory.
 *
 * Exported API: `open()`, then on the returned `Store`: `all(store)`,
 * `get(store, key)`, `put(store, value)`, `delete(store, key)`,
 * `pref(name, fallback)`, `setPref(name, value)`.
 */

const DB = 'remo-console';
const VERSION = 1;

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

export async function open() {
  const r = indexedDB.open(DB, VERSION);
  r.onupgradeneeded = () => {
    const db = r.result;
    if (!db.objectStoreNames.contains('keys')) db.createObjectStore('keys', { keyPath: 'id' });
    if (!db.objectStoreNames.contains('pins')) db.createObjectStore('pins', { keyPath: 'server' });
    if (!db.objectStoreNames.contains('prefs')) db.createObjectStore('prefs', { keyPath: 'name' });
  };
  return new Store(await req(r));
}

export class Store {
  constructor(db) {
    this.db = db;
  }

  tx(store, mode) {
    return this.db.transaction(store, mode).objectStore(store);
  }

  all(store) {
    return req(this.tx(store, 'readonly').getAll());
  }

  get(store, key) {
    return req(this.tx(store, 'readonly').get(key));
  }

  put(store, value) {
    return req(this.tx(store, 'readwrite').put(value));
  }

  delete(store, key) {
    return req(this.tx(store, 'readwrite').delete(key));
  }

  async pref(name, fallback) {
    const p = await this.get('prefs', name);
    return p === undefined ? fallback : p.value;
  }

  setPref(name, value) {
    return this.put('prefs', { name, value });
  }
}
