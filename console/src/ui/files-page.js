/**
 * Files: a directory browser on `list`, downloads streamed to disk,
 * uploads in parts, each with progress, cancel and the SHA-256.
 */

import { h, replace, formatBytes, formatMode, formatTime } from './dom.js';
import { download, upload, prepareDownloads } from './transfer.js';


/** `dir` + `name` as a remote path (relative paths are below home). */
function join(dir, name) {
  if (dir === '' || dir === '.') return name;
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

function parent(dir) {
  if (dir === '' || dir === '.') return '..';
  if (dir === '/') return '/';
  const parts = dir.replace(/\/+$/, '').split('/');
  if (parts.at(-1) === '..') return `${dir}/..`;
  parts.pop();
  if (parts.length === 0) return '.';
  if (parts.length === 1 && parts[0] === '') return '/';
  return parts.join('/');
}

export function filesPage(app) {
  const conn = app.conn;
  prepareDownloads();
  const pathIn = h('input', { id: 'files-path', type: 'text', autocomplete: 'off', spellcheck: 'false', value: app.cwd ?? '.' });
  const status = h('p', { id: 'files-status', role: 'status', 'aria-live': 'polite' });
  const table = h('div', { id: 'files-list' });
  const transfers = h('ul', { id: 'transfers', class: 'transfers', 'aria-label': 'Transfers' });
  const fileIn = h('input', { id: 'upload-file', type: 'file' });

  // Only the latest listing asked for is shown (the first one starts by
  // itself and may answer after one the user asked for).
  let generation = 0;
  // Whether the user has asked for a listing: then the automatic first one,
  // which waits for the remembered directory (IndexedDB), is not made at
  // all — started later, it would be the latest and hide the user's.
  let asked = false;
  // Whether the directory field was typed in since a listing was last asked
  // for: a listing that lands then leaves the field alone (the automatic
  // first one used to replace a path being typed, and Enter listed that).
  let edited = false;
  pathIn.addEventListener('input', () => {
    edited = true;
  });
  async function list(dir) {
    const mine = ++generation;
    if (!conn.signedIn) {
      status.textContent = 'Sign in first.';
      return;
    }
    status.textContent = `Listing ${dir}…`;
    const entries = [];
    let buf = '';
    const dec = new TextDecoder();
    try {
      const r = await conn.request('list', { path: dir }, {
        onData: (_ch, bytes) => {
          buf += dec.decode(bytes, { stream: true });
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line) entries.push(JSON.parse(line));
          }
        },
      });
      if (mine !== generation) return;
      app.cwd = dir;
      if (!edited) pathIn.value = dir;
      app.store.setPref('cwd', dir);
      entries.sort((a, b) => (a.type === 'dir') !== (b.type === 'dir') ? (a.type === 'dir' ? -1 : 1) : a.name < b.name ? -1 : 1);
      render(dir, entries);
      status.textContent = `${dir}: ${r.count} entries${r.truncated ? ' (truncated: the directory holds more than the server lists)' : ''}.`;
    } catch (e) {
      if (mine !== generation) return;
      status.textContent = `Cannot list ${dir}: ${e.message}`;
    }
  }

  function render(dir, entries) {
    replace(
      table,
      h(
        'table',
        { class: 'files' },
        h('caption', { class: 'sr' }, `Contents of ${dir}`),
        h('thead', h('tr', h('th', 'Name'), h('th', { class: 'num' }, 'Size'), h('th', { class: 'wide' }, 'Mode'), h('th', { class: 'wide' }, 'Modified'), h('th', h('span', { class: 'sr' }, 'Actions')))),
        h(
          'tbody',
          h('tr', h('td', h('button', { type: 'button', class: 'link', onclick: () => ask(parent(dir)) }, '..')), h('td'), h('td', { class: 'wide' }), h('td', { class: 'wide' }), h('td')),
          entries.map((e) => {
            const p = join(dir, e.name);
            const name =
              e.type === 'dir'
                ? h('button', { type: 'button', class: 'link dir', onclick: () => ask(p) }, `${e.name}/`)
                : h('span', { class: e.type }, e.name, e.type === 'symlink' && e.target !== undefined ? ` → ${e.target}` : '');
            return h(
              'tr',
              h('td', name),
              h('td', { class: 'num' }, e.type === 'file' ? formatBytes(e.size) : ''),
              h('td', { class: 'wide' }, h('code', formatMode(e.type, e.mode))),
              h('td', { class: 'wide' }, formatTime(e.mtime)),
              h('td', e.type === 'file' ? h('button', { type: 'button', 'aria-label': `Download ${e.name}`, onclick: () => startDownload(p, e.name, e.size) }, 'Download') : ''),
            );
          }),
        ),
      ),
    );
  }

  /** A row in the transfer list with a progress bar and a cancel button. */
  function transferRow(label, total) {
    const abort = new AbortController();
    const bar = h('progress', { max: String(total || 1), value: '0' });
    const text = h('span', { class: 'progress-text' }, 'starting…');
    const cancel = h('button', { type: 'button', onclick: () => abort.abort() }, 'Cancel');
    // The text, whose width changes with every update, comes last: the
    // Cancel button before it stays where it is while the bar moves.
    const li = h('li', { class: 'transfer' }, h('span', label), bar, cancel, text);
    transfers.prepend(li);
    return {
      signal: abort.signal,
      progress(n, t) {
        bar.max = t || 1;
        bar.value = n;
        text.textContent = `${formatBytes(n)} of ${formatBytes(t)}`;
      },
      done(msg, ok) {
        cancel.remove();
        text.textContent = msg;
        li.classList.add(ok ? 'ok' : 'failed');
        li.dataset.state = ok ? 'done' : 'failed';
      },
    };
  }

  async function startDownload(path, name, size) {
    const row = transferRow(`↓ ${name}`, size);
    try {
      const r = await download(conn, path, name, { size, signal: row.signal, onProgress: row.progress });
      row.done(`${formatBytes(r.size)} · SHA-256 ${r.sha256} ✓ checked`, true);
      row.sha = r.sha256;
    } catch (e) {
      row.done(e.name === 'AbortError' ? 'cancelled' : `failed: ${e.message}`, false);
    }
  }

  async function startUpload() {
    const f = fileIn.files?.[0];
    if (!f) {
      status.textContent = 'Choose a file to upload.';
      return;
    }
    if (!conn.signedIn) {
      status.textContent = 'Sign in first.';
      return;
    }
    const dir = app.cwd ?? '.';
    const row = transferRow(`↑ ${f.name}`, f.size);
    try {
      const r = await upload(conn, f, join(dir, f.name), { signal: row.signal, onProgress: row.progress });
      row.done(`${formatBytes(r.size)} · SHA-256 ${r.sha256} ✓ checked by the server`, true);
      fileIn.value = '';
      if ((app.cwd ?? '.') === dir) list(dir);
    } catch (e) {
      row.done(e.name === 'AbortError' ? 'cancelled (nothing was written)' : `failed: ${e.message}`, false);
    }
  }

  /** A listing the user asked for (form, directory links). */
  function ask(dir) {
    asked = true;
    edited = false;
    list(dir);
  }

  app.store.pref('cwd', '.').then((d) => {
    if (conn.signedIn && !asked) list(app.cwd ?? d);
  });
  return h(
    'div',
    { class: 'page' },
    h('h2', { tabindex: -1 }, 'Files'),
    h(
      'form',
      {
        id: 'files-form',
        onsubmit: (ev) => {
          ev.preventDefault();
          ask(pathIn.value.trim() || '.');
        },
      },
      h('label', { for: 'files-path' }, 'Directory'),
      h('div', { class: 'inline' }, pathIn, h('button', { type: 'submit', id: 'files-go' }, 'List')),
    ),
    status,
    table,
    h(
      'form',
      {
        id: 'upload-form',
        onsubmit: (ev) => {
          ev.preventDefault();
          startUpload();
        },
      },
      h('h3', 'Upload to this directory'),
      h('label', { for: 'upload-file' }, 'File'),
      fileIn,
      h('button', { type: 'submit', id: 'upload' }, 'Upload'),
    ),
    h('h3', 'Transfers'),
    transfers,
  );
}

