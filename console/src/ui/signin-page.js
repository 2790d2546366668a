/**
 * Sign in and out: a user name and a remembered key; the server key is
 * pinned on first use and a changed key blocks with both fingerprints.
 */

import { h, replace } from './dom.js';
import { SessionError } from '../errors.js';

export function signinPage(app) {
  const conn = app.conn;
  const status = h('p', { id: 'signin-status', role: 'status', 'aria-live': 'polite' });
  const warning = h('div', { id: 'key-warning' });
  const body = h('div');

  async function render() {
    const keys = app.keys;
    const last = (await app.store.pref(`last:${conn.server}`, null)) ?? {};
    const pin = await conn.pin();
    if (conn.signedIn) {
      replace(
        body,
        h('p', { id: 'signed-in' }, 'Signed in as ', h('strong', conn.user), ' on ', h('code', conn.server), '.'),
        h('p', 'Server key: ', h('code', { id: 'server-fp' }, conn.fingerprint)),
        h(
          'button',
          {
            type: 'button',
            id: 'sign-out',
            onclick: async () => {
              await conn.signOut();
              status.textContent = 'Signed out.';
              render();
            },
          },
          'Sign out',
        ),
      );
      return;
    }
    if (keys.length === 0) {
      replace(body, h('p', 'There is no key in this browser: create or import one on the ', h('a', { href: '#keys' }, 'Keys'), ' page first.'));
      return;
    }
    const user = h('input', { id: 'signin-user', type: 'text', autocomplete: 'username', required: true, value: last.user ?? '' });
    const key = h(
      'select',
      { id: 'signin-key' },
      keys.map((k) => h('option', { value: k.id, selected: k.id === last.keyId }, `${k.name} (${k.fingerprint.slice(0, 19)}…)`)),
    );
    replace(
      body,
      h(
        'form',
        {
          id: 'signin-form',
          onsubmit: async (ev) => {
            ev.preventDefault();
            const rec = keys.find((k) => k.id === key.value);
            status.textContent = 'Signing in…';
            try {
              await conn.signIn(user.value.trim(), rec);
              status.textContent = `Signed in as ${conn.user}.`;
              render();
            } catch (e) {
              if (e instanceof SessionError && e.code === 'server_key_changed') {
                status.textContent = 'Not signed in: the server key changed.';
                showWarning(e, user.value.trim(), rec);
              } else {
                status.textContent = `Sign-in failed: ${e.message}`;
              }
            }
          },
        },
        h('label', { for: 'signin-user' }, 'User'),
        user,
        h('label', { for: 'signin-key' }, 'Key'),
        key,
        h('button', { type: 'submit', id: 'sign-in' }, 'Sign in'),
      ),
      h(
        'p',
        pin
          ? ['Server key (pinned): ', h('code', { id: 'server-fp' }, pin)]
          : 'This server was not used from this browser before: its key will be pinned at the first sign-in (compare it with the fingerprint remod printed).',
      ),
    );
  }

  /** The blocking warning: nothing goes on until the user decides. */
  function showWarning(e, user, rec) {
    app.blocked = true;
    // The form cannot be used (nor focused) while the warning stands.
    body.inert = true;
    const trust = h(
      'button',
      {
        type: 'button',
        id: 'trust-new-key',
        class: 'danger',
        onclick: async () => {
          await conn.trustNewKey(e.offered);
          app.blocked = false;
          body.inert = false;
          replace(warning);
          status.textContent = 'The new server key is pinned. Sign in again.';
          render();
        },
      },
      'I checked the new key: trust it',
    );
    const cancel = h(
      'button',
      {
        type: 'button',
        id: 'keep-old-key',
        onclick: () => {
          app.blocked = false;
          body.inert = false;
          replace(warning);
          status.textContent = 'Kept the old key; not signed in.';
        },
      },
      'Keep the old key (do not sign in)',
    );
    replace(
      warning,
      h(
        'div',
        { class: 'warning', role: 'alertdialog', 'aria-modal': 'true', 'aria-labelledby': 'warning-title', 'aria-describedby': 'warning-text' },
        h('h3', { id: 'warning-title' }, 'WARNING: the server key changed'),
        h(
          'div',
          { id: 'warning-text' },
          h('p', `The server at ${conn.server} offered another key than the one pinned in this browser. Someone may be impersonating it, or it was re-keyed.`),
          h('p', 'Pinned: ', h('code', { id: 'pinned-fp' }, e.pinned)),
          h('p', 'Offered: ', h('code', { id: 'offered-fp' }, e.offered)),
          h('p', 'Compare the offered fingerprint with the one remod prints on the server before you trust it. Nothing was sent with your key.'),
        ),
        h('div', { class: 'buttons' }, cancel, trust),
      ),
    );
    cancel.focus();
  }

  conn.onChangeSignin = render;
  render();
  return h('div', { class: 'page' }, h('h2', { tabindex: -1 }, 'Sign in'), warning, status, body);
}
