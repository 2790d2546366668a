/**
 * The console's entry module (loaded by index.html): the page shell — the
 * navigation, the session line with its time left — and one page at a
 * time from the location's hash (#keys, #signin, #run, #files, #terminal,
 * #config, #doors, #admin).
 *
 * The server is the one this page came from: the console lives at
 * `{base}/console/`, so `{base}` is this page's path without `console/`.
 */

import { h, replace } from './ui/dom.js';
import { open } from './ui/store.js';
import { Connection } from './ui/conn.js';
import { keysPage } from './ui/keys-page.js';
import { signinPage } from './ui/signin-page.js';
import { runPage } from './ui/run-page.js';
import { filesPage } from './ui/files-page.js';
import { configPage } from './ui/config-page.js';
import { doorsPage } from './ui/doors-page.js';
import { adminPage, adminNav } from './ui/admin-page.js';
import { terminalPage } from './ui/term-page.js';

const PAGES = [
  ['keys', 'Keys', keysPage],
  ['signin', 'Sign in', signinPage],
  ['run', 'Run', runPage],
  ['files', 'Files', filesPage],
  ['terminal', 'Terminal', terminalPage],
  ['config', 'Config', configPage],
  ['doors', 'Doors', doorsPage],
  ['admin', 'Admin', adminPage],
];

async function main() {
  const root = document.getElementById('app');
  if (!globalThis.isSecureContext || !crypto?.subtle) {
    replace(root, h('p', { class: 'warning' }, 'The remo console needs a secure context (HTTPS, or http://localhost) for WebCrypto.'));
    return;
  }
  const base = location.pathname.replace(/\/console\/[^]*$/, '');
  const store = await open();
  const app = {
    store,
    base,
    conn: new Connection(store, base),
    keys: (await store.all('keys')).sort((a, b) => a.created - b.created),
    blocked: false,
    cwd: null,
  };

  const nav = h(
    'nav',
    { 'aria-label': 'Pages' },
    h('ul', PAGES.map(([id, label]) => h('li', h('a', { href: `#${id}`, id: `nav-${id}` }, label)))),
  );
  const who = h('span', { id: 'session-user' });
  const left = h('span', { id: 'session-left' });
  const signOut = h('button', { type: 'button', id: 'header-sign-out', hidden: true, onclick: () => app.conn.signOut() }, 'Sign out');
  const main = h('main', { id: 'main' });
  replace(
    root,
    h('a', { href: '#main', class: 'skip' }, 'Skip to the page'),
    h('header', h('h1', 'remo console'), nav, h('p', { class: 'session', 'aria-live': 'polite' }, who, ' ', left, ' ', signOut)),
    main,
  );

  function sessionLine() {
    const c = app.conn;
    if (!c.signedIn) {
      who.textContent = 'Not signed in.';
      left.textContent = '';
      signOut.hidden = true;
      return;
    }
    who.textContent = `Signed in as ${c.user}.`;
    const s = c.secondsLeft();
    left.textContent = s === null ? '' : `Session: ${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')} left idle${c.relogins ? ` (renewed ${c.relogins}×)` : ''}`;
    signOut.hidden = false;
  }
  setInterval(sessionLine, 1000);

  let current = null;
  let shown = 0; // which call of show() is the latest
  async function show() {
    let id = location.hash.slice(1);
    if (!PAGES.some(([p]) => p === id)) id = app.keys.length === 0 ? 'keys' : app.conn.signedIn ? 'run' : 'signin';
    if (app.blocked && id !== 'signin') {
      location.hash = '#signin';
      return;
    }
    if (id === current && main.firstChild) return;
    current = id;
    const mine = ++shown;
    app.keys = (await store.all('keys')).sort((a, b) => a.created - b.created);
    // Another page was asked for meanwhile: that one is shown, not this one.
    if (mine !== shown) return;
    for (const [p] of PAGES) {
      const a = document.getElementById(`nav-${p}`);
      if (p === id) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const page = PAGES.find(([p]) => p === id)[2](app);
    replace(main, page);
    document.title = `${PAGES.find(([p]) => p === id)[1]} · remo console`;
    page.querySelector('h2')?.focus();
  }
  app.conn.onChange = () => {
    sessionLine();
    adminNav(app);
    if (!app.conn.signedIn && current !== 'signin' && current !== 'keys') {
      current = null;
      location.hash = '#signin';
      show();
    }
  };
  window.addEventListener('hashchange', show);
  sessionLine();
  adminNav(app);
  await show();
  document.documentElement.dataset.ready = '1';
}

main().catch((e) => {
  const root = document.getElementById('app');
  if (root) root.textContent = `The console failed to start: ${e.message}`;
});
