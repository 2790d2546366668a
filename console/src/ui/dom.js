/**
 * Building the page without HTML strings: the CSP forbids inline script
 * and style, and nothing from a server or a file is ever parsed as HTML
 * (text goes in as text nodes).
 *
 * - `h(tag, attrs?, ...children)` — an element; `attrs` keys: `class`,
 *   `on<event>` (a listener), `dataset` (object), anything else set as an
 *   attribute (`true` → empty attribute, `false`/`null`/`undefined` →
 *   left out); children: nodes, strings (text), arrays, null (skipped).
 * - `clear(node)`, `replace(node, ...children)`.
 * - `formatBytes(n)`, `formatMode(type, mode)`, `formatTime(unixSeconds)`.
 */

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'disabled') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

export function replace(node, ...children) {
  clear(node);
  append(node, children);
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${n.toFixed(1)} ${units[u]}`;
}

export function formatMode(type, mode) {
  const t = { dir: 'd', symlink: 'l', file: '-' }[type] ?? '?';
  let s = '';
  for (let i = 8; i >= 0; i--) s += mode & (1 << i) ? 'rwx'[(8 - i) % 3] : '-';
  return t + s;
}

export function formatTime(secs) {
  if (!Number.isFinite(secs)) return '';
  return new Date(secs * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
