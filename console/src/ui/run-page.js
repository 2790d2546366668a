/**
 * Run a command: argv (split like a shell would, without one) or a shell
 * line; cwd, env, timeout, stdin; stdout and stderr shown as they arrive,
 * told apart; the exit code, signal or time-out; recent commands.
 */

import { h, replace } from './dom.js';
import { utf8 } from '../b64.js';

const RECENT = 20;

/** Splits a command line into words: quotes and backslashes, no expansion. */
export function splitWords(line) {
  const words = [];
  let cur = null;
  let quote = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) cur += line[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      cur ??= '';
    } else if (c === '\\' && i + 1 < line.length) {
      cur = (cur ?? '') + line[++i];
    } else if (/\s/.test(c)) {
      if (cur !== null) words.push(cur);
      cur = null;
    } else {
      cur = (cur ?? '') + c;
    }
  }
  if (quote) throw new Error(`unterminated ${quote} quote`);
  if (cur !== null) words.push(cur);
  return words;
}

export function runPage(app) {
  const conn = app.conn;
  const mode = h('select', { id: 'run-mode' }, h('option', { value: 'argv' }, 'Program and arguments (no shell)'), h('option', { value: 'sh' }, 'Shell command line (/bin/sh -c)'));
  const line = h('input', { id: 'run-line', type: 'text', autocomplete: 'off', spellcheck: 'false', required: true });
  const cwd = h('input', { id: 'run-cwd', type: 'text', autocomplete: 'off', placeholder: 'home directory' });
  const env = h('textarea', { id: 'run-env', rows: 2, spellcheck: 'false', placeholder: 'NAME=value, one a line' });
  const timeout = h('input', { id: 'run-timeout', type: 'number', min: '0', step: 'any', placeholder: 'none' });
  const stdin = h('textarea', { id: 'run-stdin', rows: 2, spellcheck: 'false' });
  const out = h('pre', { id: 'run-output', class: 'output', tabindex: 0, 'aria-label': 'Output', 'aria-live': 'off' });
  const result = h('p', { id: 'run-result', role: 'status', 'aria-live': 'polite' });
  const recent = h('ul', { id: 'run-recent', class: 'recent' });
  const runBtn = h('button', { type: 'submit', id: 'run' }, 'Run');
  const stopBtn = h('button', { type: 'button', id: 'run-stop', disabled: true }, 'Stop');
  let abort = null;
  stopBtn.addEventListener('click', () => abort?.abort());

  async function showRecent() {
    const list = await app.store.pref('recent', []);
    replace(
      recent,
      list.map((r) =>
        h(
          'li',
          h(
            'button',
            {
              type: 'button',
              class: 'link',
              onclick: () => {
                mode.value = r.mode;
                line.value = r.line;
                cwd.value = r.cwd ?? '';
                line.focus();
              },
            },
            `${r.mode === 'sh' ? '$ ' : ''}${r.line}`,
          ),
        ),
      ),
    );
  }

  async function run(ev) {
    ev.preventDefault();
    if (!conn.signedIn) {
      result.textContent = 'Sign in first.';
      return;
    }
    const desc = {};
    try {
      if (mode.value === 'sh') desc.sh = line.value;
      else {
        desc.argv = splitWords(line.value);
        if (desc.argv.length === 0) throw new Error('no program given');
      }
      if (cwd.value.trim()) desc.cwd = cwd.value.trim();
      const envLines = env.value.split('\n').filter((l) => l.trim());
      if (envLines.length) {
        desc.env = {};
        for (const l of envLines) {
          const eq = l.indexOf('=');
          if (eq <= 0) throw new Error(`environment line without NAME=: ${l}`);
          desc.env[l.slice(0, eq)] = l.slice(eq + 1);
        }
      }
      if (timeout.value !== '') desc.timeout = Number(timeout.value);
    } catch (e) {
      result.textContent = `Cannot run: ${e.message}`;
      return;
    }
    replace(out);
    result.textContent = 'Running…';
    runBtn.disabled = true;
    stopBtn.disabled = false;
    abort = new AbortController();
    const decoders = { 1: new TextDecoder(), 2: new TextDecoder() };
    const started = performance.now();
    const list = (await app.store.pref('recent', [])).filter((r) => !(r.line === line.value && r.mode === mode.value));
    list.unshift({ mode: mode.value, line: line.value, cwd: cwd.value.trim() || undefined });
    await app.store.setPref('recent', list.slice(0, RECENT));
    showRecent();
    try {
      const r = await conn.request('cmd', desc, {
        body: stdin.value ? utf8(stdin.value) : undefined,
        signal: abort.signal,
        onData: (ch, bytes) => {
          const text = decoders[ch].decode(bytes, { stream: true });
          if (text) out.append(h('span', { class: ch === 2 ? 'stderr' : 'stdout' }, text));
        },
      });
      const secs = ((performance.now() - started) / 1000).toFixed(2);
      const how = r.timed_out
        ? `timed out (killed${r.signal != null ? ` by signal ${r.signal}` : ''})`
        : r.signal != null
          ? `ended by signal ${r.signal}`
          : `exit code ${r.exit}`;
      result.textContent = `${how} · ${secs} s`;
      result.dataset.exit = r.exit ?? '';
    } catch (e) {
      result.textContent = e.name === 'AbortError' ? 'Stopped.' : `Failed: ${e.message}`;
    } finally {
      runBtn.disabled = false;
      stopBtn.disabled = true;
      abort = null;
    }
  }

  showRecent();
  return h(
    'div',
    { class: 'page' },
    h('h2', { tabindex: -1 }, 'Run a command'),
    h(
      'form',
      { id: 'run-form', onsubmit: run },
      h('label', { for: 'run-mode' }, 'Kind'),
      mode,
      h('label', { for: 'run-line' }, 'Command'),
      line,
      h(
        'details',
        h('summary', 'Directory, environment, time limit, input'),
        h('label', { for: 'run-cwd' }, 'Working directory'),
        cwd,
        h('label', { for: 'run-env' }, 'Environment'),
        env,
        h('label', { for: 'run-timeout' }, 'Time limit (seconds)'),
        timeout,
        h('label', { for: 'run-stdin' }, 'Standard input'),
        stdin,
      ),
      h('div', { class: 'buttons' }, runBtn, stopBtn),
    ),
    result,
    out,
    h('h3', 'Recent commands'),
    recent,
  );
}
