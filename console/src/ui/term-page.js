/**
 * The Terminal page: shells on a pseudo-terminal and read-only `tail -f`
 * views, each an xterm.js terminal in a tab, each a `RemoteProcess`
 * (term.js). The terminals live in `app.term` and outlive the page: going
 * to another page and back finds them as they were.
 *
 * xterm.js comes from the npm registry (console/package-lock.json) and is
 * embedded by build.rs under `vendor/`; a remod built without it (no
 * `npm ci`) gets a page that says so. Its CSS is a file; its script-made
 * styles go through `installStyleShim` (xterm-csp.js) under the CSP.
 *
 * Keys: everything goes to the program (Ctrl-C, Ctrl-D, Tab, arrows…)
 * except Shift+Tab, which leaves the terminal, and Ctrl+Shift+C /
 * Ctrl+Shift+V, which copy the selection and paste.
 */

import { h, replace } from './dom.js';
import { utf8 } from '../b64.js';
import { RemoteProcess } from './term.js';
import { installStyleShim } from './xterm-csp.js';

/** Terminals open at once: each holds a long poll, and a browser opens at
 * most 6 connections to a server over HTTP/1.1 — two stay for the rest. */
export const MAX_TERMINALS = 4;
/** Lines kept above the screen in each terminal. */
export const SCROLLBACK = 5000;
/** Output handed to xterm and not yet parsed, past which reading waits. */
export const MAX_UNPARSED = 1 << 20;
/** How long the size must be stable before it is sent (`resize`). */
const RESIZE_DEBOUNCE_MS = 80;

/** What `remo shell` runs without a command: the user's login shell. */
const LOGIN_SHELL =
  's=$(getent passwd "$(id -un)" 2>/dev/null | cut -d: -f7); [ -x "$s" ] || s=/bin/sh; SHELL=$s; export SHELL; exec "$s" -l';

let xtermModules = null;

/** What the page says when xterm.js is not embedded (build.rs `VENDOR`). */
export const NO_XTERM =
  'No terminal: this remod was built without xterm.js (console/node_modules/@xterm was missing). Run `npm ci` in console/ on the build machine, `touch build.rs`, and build remod again.';

/** xterm.js and its fit add-on, with its style sheet; null if not embedded. */
async function loadXterm() {
  if (xtermModules) return xtermModules;
  try {
    const [x, fit] = await Promise.all([import('../vendor/xterm.mjs'), import('../vendor/addon-fit.mjs')]);
    installStyleShim();
    const css = new URL('../vendor/xterm.css', import.meta.url).href;
    if (!document.querySelector(`link[href="${css}"]`)) {
      await new Promise((resolve) => {
        const link = h('link', { rel: 'stylesheet', href: css, onload: resolve, onerror: resolve });
        document.head.append(link);
      });
    }
    xtermModules = { Terminal: x.Terminal, FitAddon: fit.FitAddon };
  } catch {
    xtermModules = null;
  }
  return xtermModules;
}

export function terminalPage(app) {
  const st = (app.term ??= { tabs: [], next: 1, active: null });
  const status = h('p', { id: 'term-status', role: 'status', 'aria-live': 'polite' });
  const tablist = h('div', { id: 'term-tabs', role: 'tablist', 'aria-label': 'Terminals' });
  const panels = h('div', { id: 'term-panels' });
  const newBtn = h('button', { type: 'button', id: 'term-new' }, 'New shell');
  const tailPath = h('input', { id: 'term-tail-path', type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: '/var/log/syslog' });
  const tailBtn = h('button', { type: 'submit', id: 'term-tail' }, 'Follow');

  /** Says why there is no terminal, and offers none. */
  function noXterm() {
    st.noXterm = true;
    status.textContent = NO_XTERM;
    newBtn.disabled = tailBtn.disabled = true;
  }

  function drawTabs() {
    replace(tablist, st.tabs.map((t) => t.tab));
    for (const t of st.tabs) {
      const on = t === st.active;
      t.tab.setAttribute('aria-selected', on ? 'true' : 'false');
      t.tab.tabIndex = on ? 0 : -1;
      t.panel.hidden = !on;
      if (t.panel.parentNode !== panels) panels.append(t.panel);
    }
    newBtn.disabled = tailBtn.disabled = st.noXterm || st.tabs.length >= MAX_TERMINALS;
    if (st.noXterm) status.textContent = NO_XTERM;
    else if (st.tabs.length >= MAX_TERMINALS) status.textContent = `At most ${MAX_TERMINALS} terminals at once: close one first.`;
  }

  function select(t, focus = true) {
    st.active = t;
    drawTabs();
    t.fit();
    if (focus) t.xterm.focus();
  }

  async function open(kind, path) {
    if (!app.conn.signedIn) {
      status.textContent = 'Sign in first.';
      return;
    }
    if (st.tabs.length >= MAX_TERMINALS) return;
    const mods = await loadXterm();
    if (!mods) {
      noXterm();
      return;
    }
    const n = st.next++;
    const name = kind === 'shell' ? `shell ${n}` : `tail ${path.split('/').pop() || path}`;
    // Through `st`: the tab outlives this page, and a later visit's
    // functions are the ones that know the page's elements.
    const t = makeTerminal(app, mods, { n, kind, name, path, onClose: () => st.close(t), onSelect: (x) => st.select(x) });
    st.tabs.push(t);
    select(t, false);
    status.textContent = '';
    try {
      await t.start();
      t.xterm.focus();
    } catch (e) {
      t.setStatus(`Could not start: ${e.message}`, 'ended');
    }
  }

  function closeTab(t) {
    t.dispose();
    const i = st.tabs.indexOf(t);
    st.tabs.splice(i, 1);
    t.tab.remove();
    t.panel.remove();
    if (st.active === t) st.active = st.tabs[Math.min(i, st.tabs.length - 1)] ?? null;
    drawTabs();
    if (st.active) select(st.active);
    else newBtn.focus();
  }

  st.select = select;
  st.close = closeTab;

  // Arrow keys move between tabs (the ARIA tabs pattern).
  tablist.addEventListener('keydown', (ev) => {
    const i = st.tabs.indexOf(st.active);
    const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: st.tabs.length - 1 }[ev.key];
    if (to === undefined || st.tabs.length === 0) return;
    ev.preventDefault();
    const t = st.tabs[(to + st.tabs.length) % st.tabs.length];
    select(t, false);
    t.tab.focus();
  });
  newBtn.addEventListener('click', () => open('shell'));

  const page = h(
    'div',
    { class: 'page term-page' },
    h('h2', { tabindex: -1 }, 'Terminal'),
    h('div', { class: 'buttons' }, newBtn),
    h(
      'form',
      {
        id: 'term-tail-form',
        onsubmit: (ev) => {
          ev.preventDefault();
          const p = tailPath.value.trim();
          if (p) open('tail', p);
        },
      },
      h('label', { for: 'term-tail-path' }, 'Follow a file (tail -f)'),
      h('div', { class: 'inline' }, tailPath, tailBtn),
    ),
    status,
    h('p', { class: 'hint' }, 'In a terminal: Shift+Tab leaves it; Ctrl+Shift+C copies the selection, Ctrl+Shift+V pastes.'),
    tablist,
    panels,
  );
  drawTabs();
  if (st.active) requestAnimationFrame(() => st.active?.fit());
  // Said at once, not at the first click, when this remod has no xterm.js.
  if (!st.noXterm && !xtermModules) loadXterm().then((m) => m || noXterm());
  return page;
}

/** One tab: its xterm, its process, its toolbar. */
function makeTerminal(app, { Terminal, FitAddon }, { n, kind, name, path, onClose, onSelect }) {
  const readOnly = kind === 'tail';
  const xterm = new Terminal({
    scrollback: SCROLLBACK,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
    fontSize: 14,
    disableStdin: readOnly,
    // Without a pseudo-terminal nobody turns "\n" into "\r\n".
    convertEol: readOnly,
    cursorBlink: false,
    screenReaderMode: false,
  });
  const fit = new FitAddon();
  xterm.loadAddon(fit);
  const host = h('div', { class: 'term-host', id: `term-host-${n}` });
  const statusEl = h('span', { class: 'term-state', id: `term-state-${n}`, role: 'status' }, 'starting…');
  const tab = h('button', { type: 'button', role: 'tab', id: `term-tab-${n}`, 'aria-controls': `term-panel-${n}`, class: 'term-tab' }, name);
  const panel = h(
    'div',
    { role: 'tabpanel', id: `term-panel-${n}`, 'aria-labelledby': `term-tab-${n}`, class: 'term-panel', dataset: { kind } },
    h(
      'div',
      { class: 'buttons term-bar' },
      statusEl,
      h('button', { type: 'button', class: 'term-copy', onclick: () => copy() }, 'Copy'),
      readOnly ? null : h('button', { type: 'button', class: 'term-paste', onclick: () => paste() }, 'Paste'),
      readOnly ? null : h('button', { type: 'button', class: 'term-intr', onclick: () => proc.send(new Uint8Array([3])) }, 'Ctrl-C'),
      h('button', { type: 'button', class: 'term-close danger', 'aria-label': `Close ${name}`, onclick: () => onClose() }, 'Close'),
    ),
    host,
  );
  tab.addEventListener('click', () => onSelect(t));

  // Output: handed to xterm as it comes; past MAX_UNPARSED not yet parsed,
  // reading waits (and so does the process, on the server).
  let unparsed = 0;
  let resume = null;
  let parsed = 0;
  const proc = new RemoteProcess(app.conn, {
    onOutput: (bytes) => {
      unparsed += bytes.length;
      xterm.write(bytes, () => {
        unparsed -= bytes.length;
        parsed += bytes.length;
        panel.dataset.parsed = parsed;
        if (resume && unparsed <= MAX_UNPARSED / 2) {
          resume();
          resume = null;
        }
      });
      if (unparsed > MAX_UNPARSED) return new Promise((r) => (resume = r));
      return undefined;
    },
    onEnd: ({ exit, signal, error }) => {
      const how = error ?? (signal != null ? `ended by signal ${signal}` : `exit code ${exit}`);
      t.setStatus(`${kind === 'shell' ? 'Ended' : 'Stopped'}: ${how}`, 'ended');
      tab.textContent = `${name} (ended)`;
      observer.disconnect();
    },
  });

  // Input typed while a paste waits for the clipboard (an asynchronous
  // read): held, and sent after the pasted text, so keys keep their order
  // (Ctrl+Shift+V then Enter runs the pasted line).
  let held = null;
  const sendBytes = (bytes) => {
    if (held) held.push(bytes);
    else if (!proc.send(bytes)) t.setStatus('Input refused: more than 1 MiB waiting to be sent.', 'running');
  };
  if (!readOnly) {
    xterm.onData((text) => sendBytes(utf8(text)));
    xterm.onBinary((s) => sendBytes(Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff)));
  }
  async function copy() {
    const s = xterm.getSelection();
    if (s) await navigator.clipboard?.writeText(s).catch(() => {});
  }
  async function paste() {
    if (held) return; // one paste at a time
    held = [];
    let s = '';
    try {
      s = (await navigator.clipboard?.readText()) ?? '';
    } catch {
      // no permission, or no clipboard: nothing to paste
    }
    const after = held;
    held = null;
    if (s) xterm.paste(s); // through onData, now in order
    for (const b of after) sendBytes(b);
    xterm.focus();
  }
  xterm.attachCustomKeyEventHandler((ev) => {
    if (ev.key === 'Tab' && ev.shiftKey && !ev.ctrlKey && !ev.altKey) return false; // the browser moves focus
    if (ev.ctrlKey && ev.shiftKey && (ev.code === 'KeyC' || ev.code === 'KeyV')) {
      if (ev.type === 'keydown') {
        ev.preventDefault();
        if (ev.code === 'KeyC') copy();
        else if (!readOnly) paste();
      }
      return false;
    }
    return true;
  });

  // The size follows the page: fit xterm to its box, tell the server.
  let timer = null;
  xterm.onResize(({ rows, cols }) => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      try {
        if (kind === 'shell') await proc.resize(rows, cols);
      } catch {
        return; // the process is gone: its end is reported
      }
      // What the program sees now (`data-size`: the browser test waits for it).
      if (xterm.rows !== rows || xterm.cols !== cols) return; // a later resize follows
      panel.dataset.size = `${cols}x${rows}`;
      if (proc.running) t.setStatus(`running · ${cols}×${rows}`, 'running');
    }, RESIZE_DEBOUNCE_MS);
  });
  const observer = new ResizeObserver(() => t.fit());

  const t = {
    n,
    name,
    tab,
    panel,
    xterm,
    proc,
    opened: false,
    fit() {
      if (panel.hidden || !host.isConnected || host.clientWidth === 0) return;
      if (!this.opened) {
        xterm.open(host);
        this.opened = true;
        observer.observe(host);
      }
      try {
        fit.fit();
      } catch {
        // not laid out yet
      }
    },
    setStatus(text, state) {
      statusEl.textContent = text;
      panel.dataset.state = state;
    },
    async start() {
      this.fit();
      const desc =
        kind === 'shell'
          ? { argv: ['/bin/sh', '-c', LOGIN_SHELL], pty: { rows: xterm.rows, cols: xterm.cols }, env: { TERM: 'xterm-256color', COLORTERM: 'truecolor' } }
          : { argv: ['tail', '-n', '50', '-F', '--', path] };
      await proc.start(desc);
      if (kind === 'shell') panel.dataset.size = `${xterm.cols}x${xterm.rows}`;
      if (proc.running) this.setStatus(kind === 'shell' ? `running · ${xterm.cols}×${xterm.rows}` : `following ${path}`, 'running');
    },
    dispose() {
      observer.disconnect();
      proc.close();
      xterm.dispose();
    },
  };
  // For the browser test: the xterm and the process behind a panel.
  panel.remoTerminal = t;
  return t;
}
