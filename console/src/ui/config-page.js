/**
 * Config: the configuration files the server names for this user (the
 * `config` operation, docs/config-files.md). A file is shown by section
 * and key (ini, env) or whole; every change is shown as a diff first and
 * saved with the version it was made from, so a file someone else changed
 * meanwhile is refused (`conflict`) and offered to reload and redo. A
 * validator's or reload's refusal is shown with its output; the server
 * then left the file as it was. Backups: their diff to the current file,
 * and restore.
 */

import { h, replace, formatBytes, formatTime } from './dom.js';
import { utf8 } from '../b64.js';
import { OpError } from '../errors.js';
import { parseConfig, withValue, newEntry } from './ini.js';

/** Backup ids are UTC timestamps `YYYYMMDDTHHMMSS.ffffffZ`: a readable form. */
function backupTime(id) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})/.exec(id);
  return m ? `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${m[6]}Z` : id;
}

/** A unified diff as lines a reader can tell apart (not by colour alone: the +/- stay). */
function diffView(text) {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((l) =>
    h('span', { class: l.startsWith('@@') ? 'hunk' : l.startsWith('+') && !l.startsWith('+++') ? 'add' : l.startsWith('-') && !l.startsWith('---') ? 'del' : 'ctx' }, `${l}\n`),
  );
}

/** What a modifying action's result says, in one line. */
function outcome(name, r) {
  if (!r.changed) return `${name}: nothing to change.`;
  const parts = [`${name}: saved`];
  if (r.backup) parts.push(`backup ${r.backup}`);
  if (r.reloaded) parts.push('reloaded');
  if (r.restored) parts.push(`restored ${r.restored}`);
  return `${parts.join(', ')}.`;
}

export function configPage(app) {
  const conn = app.conn;
  const status = h('p', { id: 'config-status', role: 'status', 'aria-live': 'polite' });
  const fileList = h('div', { id: 'config-files' });
  const fileBox = h('section', { id: 'config-file', 'aria-labelledby': 'config-file-title', hidden: true });
  let cur = null; // {name, format, path, text, version, parsed}
  let view = 'keys';
  let pending = null; // the change under review: {describe, diff, apply, redo}

  /** One `config` request: the result, the data records and the stderr text. */
  async function op(desc, body) {
    const chunks = [];
    let stderr = '';
    const dec = new TextDecoder();
    try {
      const result = await conn.request('config', desc, {
        body,
        onData: (ch, bytes) => {
          if (ch === 2) stderr += dec.decode(bytes, { stream: true });
          else chunks.push(bytes);
        },
      });
      let n = 0;
      for (const c of chunks) n += c.length;
      const data = new Uint8Array(n);
      n = 0;
      for (const c of chunks) {
        data.set(c, n);
        n += c.length;
      }
      return { result, data, stderr };
    } catch (e) {
      e.stderr = stderr;
      throw e;
    }
  }

  async function loadList() {
    if (!conn.signedIn) {
      status.textContent = 'Sign in first.';
      return;
    }
    status.textContent = 'Asking for the files you may edit…';
    try {
      const { result } = await op({ action: 'list' });
      const files = result.files ?? [];
      if (files.length === 0) {
        replace(fileList, h('p', 'This server names no configuration files for you (none configured, or your grants include none).'));
      } else {
        replace(
          fileList,
          h(
            'table',
            { class: 'config-files' },
            h('caption', { class: 'sr' }, 'Configuration files'),
            h('thead', h('tr', h('th', 'Name'), h('th', 'Format'), h('th', { class: 'wide' }, 'Path'), h('th', { class: 'wide' }, 'On change'))),
            h(
              'tbody',
              files.map((f) =>
                h(
                  'tr',
                  h('td', h('button', { type: 'button', class: 'link', dataset: { file: f.name }, onclick: () => openFile(f) }, f.name)),
                  h('td', f.format),
                  h('td', { class: 'wide' }, h('code', f.path)),
                  h('td', { class: 'wide' }, [f.validate && 'validated', f.backup && 'backed up', f.reload && 'reloaded'].filter(Boolean).join(', ') || '—'),
                ),
              ),
            ),
          ),
        );
      }
      status.textContent = `${files.length} file${files.length === 1 ? '' : 's'}.`;
    } catch (e) {
      status.textContent = `Cannot list the configuration files: ${e.message}`;
    }
  }

  // The parts of the open file's panel.
  const title = h('h3', { id: 'config-file-title', tabindex: -1 });
  const meta = h('p', { id: 'config-meta', class: 'muted' });
  const keysBtn = h('button', { type: 'button', id: 'config-view-keys', 'aria-pressed': 'true', onclick: () => setView('keys') }, 'Sections and keys');
  const wholeBtn = h('button', { type: 'button', id: 'config-view-file', 'aria-pressed': 'false', onclick: () => setView('file') }, 'Whole file');
  const reloadBtn = h('button', { type: 'button', id: 'config-reload', class: 'secondary', onclick: () => cur && openFile(cur) }, 'Reload from server');
  const keysBox = h('div', { id: 'config-keys' });
  const text = h('textarea', { id: 'config-text', rows: 16, spellcheck: 'false', 'aria-label': 'File content', autocomplete: 'off' });
  const fileForm = h(
    'form',
    { id: 'config-file-form', hidden: true, onsubmit: (ev) => (ev.preventDefault(), reviewWhole()) },
    h('label', { for: 'config-text' }, 'Content'),
    text,
    h('div', { class: 'buttons' }, h('button', { type: 'submit', id: 'config-review-file' }, 'Review changes')),
  );
  const review = h('section', { id: 'config-review', class: 'review', 'aria-labelledby': 'config-review-title', hidden: true });
  const result = h('div', { id: 'config-result', 'aria-live': 'polite' });
  const backupsBox = h('div', { id: 'config-backups' });

  replace(
    fileBox,
    title,
    meta,
    h('div', { class: 'buttons', role: 'group', 'aria-label': 'View' }, keysBtn, wholeBtn, reloadBtn),
    keysBox,
    fileForm,
    review,
    result,
    h('h4', 'Backups'),
    h('div', { class: 'buttons' }, h('button', { type: 'button', id: 'config-show-backups', class: 'secondary', onclick: () => loadBackups() }, 'Show backups')),
    backupsBox,
  );

  function setView(v) {
    view = v;
    keysBtn.setAttribute('aria-pressed', String(v === 'keys'));
    wholeBtn.setAttribute('aria-pressed', String(v === 'file'));
    const keyed = cur && cur.format !== 'raw' && cur.text !== null;
    keysBox.hidden = v !== 'keys' || !keyed;
    fileForm.hidden = !(v === 'file' || (cur && !keyed));
    keysBtn.disabled = !keyed;
  }

  /** Reads the file (again) and shows it; returns false if it could not. */
  async function openFile(f) {
    closeReview();
    status.textContent = `Reading ${f.name}…`;
    try {
      const { result: r, data } = await op({ action: 'read', name: f.name });
      let content = null;
      try {
        content = new TextDecoder('utf-8', { fatal: true }).decode(data);
      } catch {
        // Not UTF-8: shown, not edited here (the CLI's `config edit` can).
      }
      cur = { name: f.name, format: r.format ?? f.format, path: f.path, text: content, version: r.version, size: r.size };
      cur.parsed = content !== null && cur.format !== 'raw' ? parseConfig(content, cur.format) : null;
      fileBox.hidden = false;
      title.textContent = f.name;
      meta.replaceChildren(
        f.path ? h('code', f.path) : '',
        ` · ${cur.format} · ${formatBytes(r.size ?? data.length)} · version `,
        h('code', { id: 'config-version' }, r.version),
      );
      if (content === null) {
        text.value = '';
        text.disabled = true;
        replace(result, h('p', { class: 'error' }, `${f.name} is not UTF-8 text: the console does not edit it (use remo config edit ${f.name}).`));
      } else {
        text.disabled = false;
        text.value = content;
        replace(result);
      }
      renderKeys();
      setView(view);
      status.textContent = `${f.name} read.`;
      return true;
    } catch (e) {
      status.textContent = `Cannot read ${f.name}: ${e.message}`;
      return false;
    }
  }

  function renderKeys() {
    if (!cur?.parsed) {
      replace(keysBox);
      return;
    }
    const { sections, first } = cur.parsed;
    replace(
      keysBox,
      sections.map((s, si) => {
        const editable = s.address !== null;
        const keyIn = h('input', { type: 'text', id: `cfg-newkey-${si}`, autocomplete: 'off', spellcheck: 'false', placeholder: 'new key', 'aria-label': `New key in ${s.label}` });
        const valIn = h('input', { type: 'text', id: `cfg-newval-${si}`, autocomplete: 'off', spellcheck: 'false', placeholder: 'value', 'aria-label': `Value of the new key in ${s.label}` });
        return h(
          'fieldset',
          { class: 'section', dataset: { address: s.address ?? '' } },
          h('legend', s.label),
          editable ? null : h('p', { class: 'muted' }, 'This section name cannot be addressed; edit the whole file.'),
          h(
            'table',
            { class: 'keys-table' },
            h('caption', { class: 'sr' }, `Keys of ${s.label}`),
            h(
              'tbody',
              s.entries.map((e, ei) => {
                const id = `cfg-v-${si}-${ei}`;
                const input = h('input', { type: 'text', id, value: e.value, autocomplete: 'off', spellcheck: 'false', dataset: { key: e.key }, disabled: !editable || e.dup });
                const form = h(
                  'form',
                  { class: 'inline', onsubmit: (ev) => (ev.preventDefault(), reviewSet(s, e, input.value)) },
                  input,
                  h('button', { type: 'submit', disabled: !editable || e.dup, 'aria-label': `Review the change of ${e.key}` }, 'Review'),
                );
                return h(
                  'tr',
                  h('th', { scope: 'row' }, h('label', { for: id }, e.key)),
                  h(
                    'td',
                    form,
                    e.dup ? h('span', { class: 'muted' }, `${e.key} occurs more than once here: edit the whole file.`) : null,
                  ),
                  h('td', h('button', { type: 'button', class: 'secondary', disabled: !editable, 'aria-label': `Remove ${e.key}`, onclick: () => reviewUnset(s, e) }, 'Remove')),
                );
              }),
            ),
          ),
          editable
            ? h(
                'form',
                { class: 'add-key', onsubmit: (ev) => (ev.preventDefault(), reviewAdd(s, keyIn.value.trim(), valIn.value, first)) },
                h('div', { class: 'inline' }, keyIn, valIn, h('button', { type: 'submit', 'aria-label': `Review adding a key to ${s.label}` }, 'Add key')),
              )
            : null,
        );
      }),
    );
  }

  /** The review panel: the change as a diff, Save and Cancel. */
  function showReview(p, diffText) {
    pending = p;
    replace(result);
    const save = h('button', { type: 'button', id: 'config-save', onclick: () => save_() }, p.saveLabel ?? 'Save');
    const cancel = h('button', { type: 'button', id: 'config-cancel', class: 'secondary', onclick: () => closeReview(true) }, 'Cancel');
    replace(
      review,
      h('h4', { id: 'config-review-title', tabindex: -1 }, p.title),
      diffText === ''
        ? h('p', { id: 'config-nochange' }, 'No changes.')
        : h('pre', { id: 'config-diff', class: 'diff', tabindex: 0, 'aria-label': 'The change' }, diffView(diffText)),
      h('div', { class: 'buttons' }, diffText === '' ? null : save, cancel),
    );
    review.hidden = false;
    review.querySelector('h4').focus();
  }

  function closeReview(focusBack) {
    pending = null;
    review.hidden = true;
    replace(review);
    if (focusBack) title.focus();
  }

  function entryDiff(s, oldLine, newLine) {
    const out = [`--- ${cur.name} (current)`, `+++ ${cur.name} (after the change)`, `@@ ${s.label} @@`];
    if (oldLine !== null) out.push(`-${oldLine.replace(/\r?\n$/, '')}`);
    if (newLine !== null) out.push(`+${newLine.replace(/\r?\n$/, '')}`);
    return `${out.join('\n')}\n`;
  }

  function reviewSet(s, e, value) {
    const line = withValue(e, value);
    showReview(
      {
        title: `Change ${e.key} in ${s.label}`,
        desc: { action: 'set', name: cur.name, section: s.address, key: e.key, value },
        redo: () => redoKey(s, e.key, (s2, e2) => e2 && reviewSet(s2, e2, value)),
      },
      value === e.value ? '' : entryDiff(s, e.raw, line),
    );
  }

  function reviewUnset(s, e) {
    showReview(
      {
        title: `Remove ${e.key} from ${s.label}`,
        saveLabel: 'Remove',
        desc: { action: 'unset', name: cur.name, section: s.address, key: e.key },
        redo: () => redoKey(s, e.key, (s2, e2) => e2 && reviewUnset(s2, e2)),
      },
      entryDiff(s, e.raw, null),
    );
  }

  function reviewAdd(s, key, value, sample) {
    if (!key) {
      status.textContent = 'Name the key to add.';
      return;
    }
    const existing = s.entries.find((e) => e.key === key);
    if (existing) {
      reviewSet(s, existing, value);
      return;
    }
    showReview(
      {
        title: `Add ${key} to ${s.label}`,
        desc: { action: 'set', name: cur.name, section: s.address, key, value },
        redo: () => redoKey(s, key, (s2) => reviewAdd(s2, key, value, cur.parsed.first)),
      },
      entryDiff(s, null, newEntry(key, value, cur.format, sample)),
    );
  }

  /** After a reload: the same section (by address) and key, reviewed again. */
  function redoKey(s, key, again) {
    const s2 = cur.parsed?.sections.find((x) => x.address === s.address);
    if (!s2) {
      status.textContent = `${s.label} is no longer in ${cur.name}: nothing to redo.`;
      return;
    }
    again(s2, s2.entries.find((x) => x.key === key));
  }

  async function reviewWhole() {
    if (!cur) return;
    const mine = text.value;
    try {
      const { data } = await op({ action: 'diff', name: cur.name, candidate: true }, utf8(mine));
      showReview(
        {
          title: `Replace ${cur.name}`,
          desc: { action: 'write', name: cur.name },
          body: utf8(mine),
          redo: () => {
            // The file as it is now, with the edit kept beside it to redo.
            result.append(h('details', { id: 'config-mine', open: true }, h('summary', 'Your edit (not saved)'), h('pre', mine)));
          },
        },
        new TextDecoder().decode(data),
      );
    } catch (e) {
      showFailure(e);
    }
  }

  function showFailure(e) {
    const parts = [];
    if (e instanceof OpError && e.code === 'conflict') {
      const p = pending;
      parts.push(
        h('p', { class: 'error', id: 'config-conflict' }, `Not saved: ${cur.name} was changed by someone else since you read it (${e.message}). Nothing was overwritten.`),
        h(
          'button',
          {
            type: 'button',
            id: 'config-redo',
            onclick: async () => {
              if (await openFile(cur)) p?.redo?.();
            },
          },
          'Reload the file and redo',
        ),
      );
    } else if (e instanceof OpError && (e.code === 'bad_request' || e.code === 'unavailable')) {
      parts.push(
        h('p', { class: 'error', id: 'config-refused' }, `Not saved: ${e.message}. ${e.code === 'unavailable' ? 'The previous content was put back.' : `${cur.name} is unchanged.`}`),
      );
    } else {
      parts.push(h('p', { class: 'error', id: 'config-failed' }, `Failed: ${e.message}`));
    }
    if (e.stderr) parts.push(h('pre', { id: 'config-output', class: 'output stderr-block', 'aria-label': 'Output of the validate or reload command' }, e.stderr));
    replace(result, h('div', { role: 'alert' }, parts));
  }

  async function save_() {
    const p = pending;
    if (!p || !cur) return;
    const desc = { ...p.desc, if_version: cur.version };
    status.textContent = 'Saving…';
    try {
      const { result: r } = await op(desc, p.body);
      closeReview();
      const msg = outcome(cur.name, r);
      await openFile(cur);
      replace(result, h('p', { id: 'config-saved', class: 'ok' }, msg));
      status.textContent = msg;
      if (!backupsBox.hidden && backupsBox.firstChild) loadBackups();
    } catch (e) {
      closeReview();
      pending = p;
      status.textContent = 'Not saved.';
      showFailure(e);
      pending = null;
    }
  }

  async function loadBackups() {
    if (!cur) return;
    try {
      const { result: r } = await op({ action: 'backups', name: cur.name });
      const list = r.backups ?? [];
      replace(
        backupsBox,
        list.length === 0
          ? h('p', 'No backups.')
          : h(
              'table',
              { class: 'backups' },
              h('caption', { class: 'sr' }, `Backups of ${cur.name}`),
              h('thead', h('tr', h('th', 'Taken'), h('th', { class: 'num' }, 'Size'), h('th', h('span', { class: 'sr' }, 'Actions')))),
              h(
                'tbody',
                list.map((b) =>
                  h(
                    'tr',
                    { dataset: { backup: b.id } },
                    h('td', h('span', { title: b.id }, backupTime(b.id))),
                    h('td', { class: 'num' }, formatBytes(b.size)),
                    h(
                      'td',
                      h('button', { type: 'button', class: 'secondary', 'aria-label': `Differences of backup ${b.id}`, onclick: () => reviewRestore(b, false) }, 'Diff'),
                      h('button', { type: 'button', 'aria-label': `Restore backup ${b.id}`, onclick: () => reviewRestore(b, true) }, 'Restore…'),
                    ),
                  ),
                ),
              ),
            ),
      );
    } catch (e) {
      replace(backupsBox, h('p', { class: 'error' }, `Cannot list backups: ${e.message}`));
    }
  }

  async function reviewRestore(b, restore) {
    try {
      const { data } = await op({ action: 'diff', name: cur.name, backup: b.id });
      const d = new TextDecoder().decode(data);
      showReview(
        {
          title: restore ? `Restore backup ${backupTime(b.id)}: the current file (+) goes back to the backup (−)` : `Backup ${backupTime(b.id)} (−) against the current file (+)`,
          saveLabel: 'Restore this backup',
          desc: restore ? { action: 'restore', name: cur.name, backup: b.id } : null,
          redo: () => loadBackups(),
        },
        d,
      );
      if (!restore) review.querySelector('#config-save')?.remove();
    } catch (e) {
      showFailure(e);
    }
  }

  if (conn.signedIn) loadList();
  else status.textContent = 'Sign in first.';
  return h('div', { class: 'page' }, h('h2', { tabindex: -1 }, 'Configuration files'), status, fileList, fileBox);
}
