/**
 * The console's reading of an `ini` or `env` file, for showing its
 * sections and keys: the same line grammar as the server's `cfgedit`
 * (docs/config-files.md), so what the page shows is what a `set` or
 * `unset` of that address edits. Edits themselves are always made by the
 * server; this module only parses and describes them.
 *
 * - `parseConfig(text, format)` → `{lines, first (the first entry),
 *   sections: [{name, header, index, count, address, label, entries:
 *   [{key, value, line, raw, dup}]}]}`;
 *   `format` is `'ini'` or `'env'`. The global part (before any header)
 *   comes first, with `name: ''`, when it has entries or there is no
 *   header at all. `address` is what the `config` operation takes
 *   (`NAME`, `NAME[INDEX]` for a repeated name, `''` for the global part),
 *   or null when the name cannot be addressed (it holds `[`); `dup` marks
 *   a key that occurs more than once in its section (`set` refuses it).
 * - `withValue(entry, value)` — an entry's line with its value's text
 *   replaced, keeping spacing and the line ending (what `set` does).
 * - `newEntry(key, value, format, sample)` — the line `set` inserts for a
 *   new key (`key = value`, `key=value` if `sample`, the file's first
 *   entry, has no blank before `=`; `KEY=VALUE` in env files).
 */

const WS = /[ \t]/;

function trimRange(s, start, end) {
  while (start < end && WS.test(s[start])) start++;
  while (end > start && WS.test(s[end - 1])) end--;
  return [start, end];
}

function contentEnd(raw) {
  let end = raw.length;
  if (raw.endsWith('\n')) end--;
  if (end > 0 && raw[end - 1] === '\r') end--;
  return end;
}

function entryOf(raw, start, end) {
  const eq = raw.indexOf('=', start);
  if (eq < 0 || eq >= end) return null;
  const [ks, ke] = trimRange(raw, start, eq);
  if (ks === ke) return null;
  const [vs, ve] = trimRange(raw, eq + 1, end);
  return { key: raw.slice(ks, ke), value: raw.slice(vs, ve), vs, ve, eq };
}

/** One line's kind: `{kind: 'blank'|'comment'|'header'|'entry'|'other', …}`. */
function classify(raw, format) {
  const [start, end] = trimRange(raw, 0, contentEnd(raw));
  if (start === end) return { kind: 'blank' };
  const first = raw[start];
  if (format === 'ini') {
    if (first === '#' || first === ';') return { kind: 'comment' };
    if (first === '[') {
      const close = raw.indexOf(']', start);
      if (close < 0 || close >= end) return { kind: 'other' };
      const rest = raw.slice(close + 1, end).trimStart();
      if (rest !== '' && rest[0] !== '#' && rest[0] !== ';') return { kind: 'other' };
      const [ns, ne] = trimRange(raw, start + 1, close);
      return { kind: 'header', name: raw.slice(ns, ne) };
    }
  } else {
    if (first === '#') return { kind: 'comment' };
    let s = start;
    if (raw.startsWith('export', start) && WS.test(raw[start + 6] ?? '')) s = trimRange(raw, start + 6, end)[0];
    const e = entryOf(raw, s, end);
    return e ? { kind: 'entry', ...e } : { kind: 'other' };
  }
  const e = entryOf(raw, start, end);
  return e ? { kind: 'entry', ...e } : { kind: 'other' };
}

/** The file's lines, each with its line ending. */
export function splitLines(text) {
  const lines = [];
  let at = 0;
  while (at < text.length) {
    const nl = text.indexOf('\n', at);
    const end = nl < 0 ? text.length : nl + 1;
    lines.push(text.slice(at, end));
    at = end;
  }
  return lines;
}

export function parseConfig(text, format) {
  const sections = [];
  let cur = { name: '', header: null, entries: [] };
  const lines = splitLines(text);
  lines.forEach((raw, i) => {
    const c = classify(raw, format);
    if (c.kind === 'header') {
      sections.push(cur);
      cur = { name: c.name, header: i, entries: [] };
    } else if (c.kind === 'entry') {
      cur.entries.push({ key: c.key, value: c.value, line: i, raw, vs: c.vs, ve: c.ve, eq: c.eq });
    }
  });
  sections.push(cur);
  const counts = new Map();
  for (const s of sections) counts.set(s.name, (counts.get(s.name) ?? 0) + 1);
  const seen = new Map();
  const out = [];
  for (const s of sections) {
    const index = seen.get(s.name) ?? 0;
    seen.set(s.name, index + 1);
    if (s.header === null && s.entries.length === 0 && sections.length > 1) continue;
    const count = counts.get(s.name);
    let address;
    if (s.name === '') address = '';
    else if (s.name.includes('[')) address = null;
    else address = count > 1 ? `${s.name}[${index}]` : s.name;
    const keys = new Map();
    for (const e of s.entries) keys.set(e.key, (keys.get(e.key) ?? 0) + 1);
    for (const e of s.entries) e.dup = keys.get(e.key) > 1;
    // A readable label: which of the repeated sections this is.
    let label = s.name === '' ? (format === 'env' ? 'Variables' : 'Before the first section') : `[${s.name}]`;
    if (count > 1 && s.entries.length) label += ` ${s.entries[0].key} = ${s.entries[0].value}`;
    out.push({ ...s, index, count, address, label });
  }
  return { sections: out, lines, first: sections.flatMap((s) => s.entries)[0] };
}

export function withValue(entry, value) {
  return entry.raw.slice(0, entry.vs) + value + entry.raw.slice(entry.ve);
}

export function newEntry(key, value, format, sample) {
  if (format === 'env') return `${key}=${value}`;
  const tight = sample !== undefined && sample.eq > 0 && !WS.test(sample.raw[sample.eq - 1]);
  return tight ? `${key}=${value}` : `${key} = ${value}`;
}
