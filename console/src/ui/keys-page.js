/**
 * Keys: create a P-256 key in this browser (non-extractable, kept in
 * IndexedDB), import a PEM key file (plain or PBES2, via keys.js), show a
 * key's public half with the exact `remod user add` line, forget a key.
 */

import { h, replace } from './dom.js';
import { fingerprintOfSpki, importPrivateKeyPem, isEncryptedPem, publicKeyPem, spkiFromRaw } from '../keys.js';
import { KeyFileError } from '../errors.js';

const USER_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** A new key pair whose private half can never be read out. */
async function createKey(name) {
  const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const publicRaw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  return {
    id: crypto.randomUUID(),
    name,
    source: 'created',
    privateKey: pair.privateKey,
    publicRaw,
    fingerprint: await fingerprintOfSpki(spkiFromRaw(publicRaw)),
    created: Date.now(),
  };
}

export function keysPage(app) {
  const status = h('p', { id: 'keys-status', role: 'status', 'aria-live': 'polite' });
  const list = h('div', { id: 'key-list' });
  const detail = h('section', { id: 'key-detail', 'aria-label': 'Public key' });

  const createName = h('input', { id: 'create-name', type: 'text', autocomplete: 'off', value: 'browser key', required: true });
  const createForm = h(
    'form',
    {
      id: 'create-form',
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          const rec = await createKey(createName.value.trim() || 'browser key');
          await app.store.put('keys', rec);
          status.textContent = `Created the key ${rec.name} (${rec.fingerprint}).`;
          await render();
          show(rec);
        } catch (e) {
          status.textContent = `Could not create a key: ${e.message}`;
        }
      },
    },
    h('h3', 'Create a key in this browser'),
    h('p', 'A P-256 key is generated here and kept in this browser. Its private half cannot be read out — not by you, not by this page.'),
    h('label', { for: 'create-name' }, 'Key name'),
    createName,
    h('button', { id: 'create-key', type: 'submit' }, 'Create key'),
  );

  const file = h('input', { id: 'import-file', type: 'file', accept: '.pem,.key,.p8,text/plain' });
  const pass = h('input', { id: 'import-pass', type: 'password', autocomplete: 'off' });
  const passRow = h('div', { class: 'row', hidden: true }, h('label', { for: 'import-pass' }, 'Passphrase'), pass);
  const importName = h('input', { id: 'import-name', type: 'text', autocomplete: 'off' });
  file.addEventListener('change', async () => {
    const f = file.files?.[0];
    if (!f) return;
    if (!importName.value) importName.value = f.name.replace(/\.(pem|key|p8)$/, '');
    passRow.hidden = !isEncryptedPem(await f.text());
  });
  const importForm = h(
    'form',
    {
      id: 'import-form',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const f = file.files?.[0];
        if (!f) {
          status.textContent = 'Choose a key file first.';
          return;
        }
        try {
          const text = await f.text();
          const id = await importPrivateKeyPem(text, isEncryptedPem(text) ? { passphrase: pass.value } : {});
          pass.value = '';
          const rec = {
            id: crypto.randomUUID(),
            name: importName.value.trim() || f.name,
            source: 'imported',
            privateKey: id.privateKey,
            publicRaw: id.publicRaw,
            fingerprint: id.fingerprint,
            created: Date.now(),
          };
          await app.store.put('keys', rec);
          status.textContent = `Imported ${rec.name} (${rec.fingerprint}).`;
          file.value = '';
          importName.value = '';
          passRow.hidden = true;
          await render();
          show(rec);
        } catch (e) {
          status.textContent =
            e instanceof KeyFileError ? `Cannot use this key file: ${e.message}` : `Import failed: ${e.message}`;
        }
      },
    },
    h('h3', 'Import a key file'),
    h(
      'p',
      'A PKCS#8 PEM file from remo keygen or openssl, plain or encrypted (PBES2: PBKDF2 + AES-CBC). ' +
        'It is imported non-extractable; the file itself is not kept.',
    ),
    h('label', { for: 'import-file' }, 'Key file'),
    file,
    passRow,
    h('label', { for: 'import-name' }, 'Key name'),
    importName,
    h('button', { id: 'import-key', type: 'submit' }, 'Import key'),
  );

  function show(rec) {
    const pem = publicKeyPem(rec.publicRaw);
    const userIn = h('input', {
      id: 'register-user',
      type: 'text',
      autocomplete: 'off',
      value: USER_NAME.test(rec.name) ? rec.name : 'alice',
    });
    const cmd = h('code', { id: 'register-cmd' });
    const update = () => {
      const u = USER_NAME.test(userIn.value) ? userIn.value : 'NAME';
      cmd.textContent = `remod user add ${u} --key ${u}.pub`;
    };
    userIn.addEventListener('input', update);
    update();
    const copied = h('span', { role: 'status', 'aria-live': 'polite' });
    replace(
      detail,
      h('h3', `Public key of ${rec.name}`),
      h('p', 'Fingerprint: ', h('code', { id: 'key-fingerprint' }, rec.fingerprint)),
      h('pre', { id: 'public-pem', tabindex: 0 }, pem),
      h(
        'div',
        { class: 'buttons' },
        h(
          'button',
          {
            type: 'button',
            id: 'copy-pem',
            onclick: async () => {
              try {
                await navigator.clipboard.writeText(pem);
                copied.textContent = 'Copied.';
              } catch {
                copied.textContent = 'The browser did not allow copying: select the text above.';
              }
            },
          },
          'Copy',
        ),
        h(
          'button',
          {
            type: 'button',
            id: 'save-pem',
            onclick: () => {
              const a = h('a', {
                href: URL.createObjectURL(new Blob([pem], { type: 'application/x-pem-file' })),
                download: `${USER_NAME.test(userIn.value) ? userIn.value : 'key'}.pub`,
              });
              a.click();
              setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
            },
          },
          'Save as file',
        ),
        copied,
      ),
      h('label', { for: 'register-user' }, 'User name on the server'),
      userIn,
      h('p', 'Save the key as that file on the server and register it there (as root, or with --db FILE):'),
      h('pre', cmd),
    );
    detail.querySelector('h3')?.setAttribute('tabindex', '-1');
  }

  async function render() {
    const keys = (await app.store.all('keys')).sort((a, b) => a.created - b.created);
    app.keys = keys;
    if (keys.length === 0) {
      replace(list, h('p', 'No key in this browser yet.'));
      return;
    }
    replace(
      list,
      h(
        'table',
        { class: 'keys' },
        h('caption', 'Keys in this browser'),
        h('thead', h('tr', h('th', 'Name'), h('th', 'Fingerprint'), h('th', { class: 'wide' }, 'Kind'), h('th', h('span', { class: 'sr' }, 'Actions')))),
        h(
          'tbody',
          keys.map((k) =>
            h(
              'tr',
              h('td', k.name),
              h('td', h('code', k.fingerprint)),
              h('td', { class: 'wide' }, k.source === 'created' ? 'created here' : 'imported'),
              h(
                'td',
                h('button', { type: 'button', onclick: () => show(k), 'aria-label': `Show public key of ${k.name}` }, 'Public key'),
                h(
                  'button',
                  {
                    type: 'button',
                    class: 'danger',
                    'aria-label': `Forget ${k.name}`,
                    onclick: async () => {
                      if (!confirm(`Forget the key ${k.name}? It cannot be recovered.`)) return;
                      await app.store.delete('keys', k.id);
                      replace(detail);
                      await render();
                    },
                  },
                  'Forget',
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  render();
  return h('div', { class: 'page' }, h('h2', { tabindex: -1 }, 'Keys'), status, list, detail, h('div', { class: 'cols' }, createForm, importForm));
}
