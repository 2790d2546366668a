/**
 * Admin: the server's users and grants (disable, enable), the live
 * sessions and interactive processes (end a session), and the audit log
 * with filters and pages — the `admin` operation, for users with the
 * `admin` grant. The server checks the grant on every action; this page
 * only hides its link from others (`adminNav`) and says so when refused.
 *
 * - `adminPage(app)` — the page.
 * - `adminNav(app)` — after a sign-in, shows the Admin link if the
 *   server answers an admin request (one `sessions` of nobody: small).
 */

import { h, replace, formatTime } from './dom.js';

/** Rows asked for per page (the server caps it at `admin_page_max`). */
const PAGE = 50;

/** Seconds as `1h02m`, `3m05s`, `9s`. */
function ago(secs) {
  if (!Number.isFinite(secs) || secs < 0) return '?';
  const hh = Math.floor(secs / 3600);
  const mm = Math.floor((secs % 3600) / 60);
  const ss = Math.floor(secs % 60);
  if (hh > 0) return `${hh}h${String(mm).padStart(2, '0')}m`;
  if (mm > 0) return `${mm}m${String(ss).padStart(2, '0')}s`;
  return `${ss}s`;
}

/** A `datetime-local` value (local time) as Unix seconds, or undefined. */
function unixOf(v) {
  if (!v) return undefined;
  const t = new Date(v).getTime();
  return Number.isFinite(t) ? Math.floor(t / 1000) : undefined;
}

function failure(e) {
  return e?.code === 'forbidden' ? 'Refused by the server: this needs the admin grant.' : `Failed: ${e?.message ?? e}`;
}

/** Shows the Admin link when the signed-in user is an admin. */
export async function adminNav(app) {
  const li = document.getElementById('nav-admin')?.parentElement;
  if (!li) return;
  const user = app.conn.signedIn ? app.conn.user : null;
  if (app.adminOf === user) {
    li.hidden = !app.isAdmin;
    return;
  }
  app.adminOf = user;
  app.isAdmin = false;
  li.hidden = true;
  delete li.dataset.checked;
  if (!user) return;
  let admin = false;
  try {
    // A user name no account can have: an empty answer, for admins only.
    await app.conn.request('admin', { action: 'sessions', user: '-' });
    admin = true;
  } catch {
    admin = false;
  }
  if (app.adminOf !== user) return; // another user signed in meanwhile
  app.isAdmin = admin;
  li.hidden = !admin;
  // Whom the server was asked about (the browser test waits for it).
  li.dataset.checked = user;
}

export function adminPage(app) {
  const conn = app.conn;
  const status = h('p', { id: 'admin-status', role: 'status', 'aria-live': 'polite' });
  const say = (t) => {
    status.textContent = t;
  };

  // ---- Users
  const users = h('div', { id: 'admin-users' });
  const usersMore = h('button', { type: 'button', id: 'users-more', hidden: true }, 'More users');
  let usersAfter = null;
  let userRows = [];

  async function loadUsers(more = false) {
    try {
      const d = { action: 'users', limit: PAGE };
      if (more && usersAfter) d.after = usersAfter;
      const r = await conn.request('admin', d);
      userRows = more ? userRows.concat(r.users ?? []) : r.users ?? [];
      usersAfter = r.next ?? null;
      usersMore.hidden = !usersAfter;
      renderUsers();
    } catch (e) {
      replace(users, h('p', failure(e)));
    }
  }

  async function setEnabled(name, enabled) {
    say(`${enabled ? 'Enabling' : 'Disabling'} ${name}…`);
    try {
      const r = await conn.request('admin', { action: enabled ? 'enable' : 'disable', name });
      say(enabled ? `Enabled ${r.name}.` : `Disabled ${r.name}: ended ${r.ended} live session(s) and their processes.`);
    } catch (e) {
      say(`Cannot ${enabled ? 'enable' : 'disable'} ${name}: ${e.message}`);
    }
    await Promise.all([loadUsers(), loadSessions()]);
  }

  function renderUsers() {
    replace(
      users,
      h(
        'table',
        h('caption', { class: 'sr' }, 'Users'),
        h('thead', h('tr', h('th', 'User'), h('th', 'State'), h('th', { class: 'num' }, 'Sessions'), h('th', { class: 'wide' }, 'Grants'), h('th', h('span', { class: 'sr' }, 'Actions')))),
        h(
          'tbody',
          userRows.map((u) =>
            h(
              'tr',
              { dataset: { user: u.name } },
              h('td', u.name, u.name === conn.user ? ' (you)' : ''),
              h('td', u.enabled ? 'enabled' : h('strong', 'disabled')),
              h('td', { class: 'num' }, String(u.sessions)),
              h('td', { class: 'wide' }, (u.grants ?? []).map((g) => [h('code', g), ' ']), u.grants_truncated ? '…' : ''),
              h(
                'td',
                u.name === conn.user
                  ? ''
                  : u.enabled
                    ? h('button', { type: 'button', class: 'danger', 'aria-label': `Disable ${u.name}`, onclick: () => setEnabled(u.name, false) }, 'Disable')
                    : h('button', { type: 'button', 'aria-label': `Enable ${u.name}`, onclick: () => setEnabled(u.name, true) }, 'Enable'),
              ),
            ),
          ),
        ),
      ),
    );
  }

  // ---- Sessions and processes
  const sessions = h('div', { id: 'admin-sessions' });
  const processes = h('div', { id: 'admin-processes' });

  async function endSession(id, user) {
    say(`Ending session ${id} of ${user}…`);
    try {
      const r = await conn.request('admin', { action: 'end', id });
      say(`Ended ${r.ended} session(s) of ${user} and their processes.`);
    } catch (e) {
      say(`Cannot end session ${id}: ${e.message}`);
    }
    await Promise.all([loadUsers(), loadSessions()]);
  }

  async function loadSessions() {
    let r;
    try {
      r = await conn.request('admin', { action: 'sessions' });
    } catch (e) {
      replace(sessions, h('p', failure(e)));
      replace(processes);
      return;
    }
    const now = Date.now() / 1000;
    const list = r.sessions ?? [];
    replace(
      sessions,
      h(
        'table',
        h('caption', `Live sessions: ${r.total_sessions}${r.truncated ? ` (${list.length} shown)` : ''}`),
        h('thead', h('tr', h('th', 'ID'), h('th', 'User'), h('th', 'From'), h('th', { class: 'wide' }, 'Since'), h('th', 'Idle'), h('th', { class: 'wide' }, 'Certificate'), h('th', h('span', { class: 'sr' }, 'Actions')))),
        h(
          'tbody',
          list.map((s) =>
            h(
              'tr',
              { dataset: { session: s.id, user: s.user } },
              h('td', h('code', s.id), s.yours ? ' (this one)' : ''),
              h('td', s.user),
              h('td', s.remote),
              h('td', { class: 'wide' }, `${ago(now - s.since)} ago`),
              h('td', ago(s.idle_secs)),
              h('td', { class: 'wide' }, s.cert ?? '—'),
              h('td', s.yours ? '' : h('button', { type: 'button', class: 'danger', 'aria-label': `End session ${s.id} of ${s.user}`, onclick: () => endSession(s.id, s.user) }, 'End')),
            ),
          ),
        ),
      ),
    );
    const procs = r.processes ?? [];
    replace(
      processes,
      h(
        'table',
        h('caption', `Interactive processes: ${r.total_processes}`),
        h('thead', h('tr', h('th', 'Process'), h('th', 'Session'), h('th', 'User'), h('th', 'Kind'))),
        h('tbody', procs.map((p) => h('tr', h('td', h('code', p.id)), h('td', h('code', p.session)), h('td', p.user), h('td', p.pty ? 'terminal' : 'pipes')))),
      ),
    );
  }

  // ---- Audit log
  const field = (id, label, attrs = {}) => {
    const input = h('input', { id, type: 'text', autocomplete: 'off', spellcheck: 'false', ...attrs });
    return [input, h('div', h('label', { for: id }, label), input)];
  };
  const [fUser, fUserBox] = field('audit-user', 'User');
  const [fOp, fOpBox] = field('audit-op', 'Operation', { placeholder: 'cmd, get, auth, admin…' });
  const [fOutcome, fOutcomeBox] = field('audit-outcome', 'Outcome', { placeholder: 'ok, forbidden, 401…' });
  const [fSince, fSinceBox] = field('audit-since', 'From (local time)', { type: 'datetime-local' });
  const [fUntil, fUntilBox] = field('audit-until', 'Until (local time)', { type: 'datetime-local' });
  const audit = h('div', { id: 'admin-audit' });
  const older = h('button', { type: 'button', id: 'audit-older', hidden: true }, 'Older');
  const newest = h('button', { type: 'button', id: 'audit-newest', hidden: true }, 'Newest');
  // The cursors of the pages shown so far: `before` of each (undefined: the newest).
  let pages = [undefined];

  async function loadAudit(before) {
    const d = { action: 'audit', limit: PAGE };
    for (const [k, el] of [['user', fUser], ['op', fOp], ['outcome', fOutcome]]) {
      const v = el.value.trim();
      if (v) d[k] = v;
    }
    const since = unixOf(fSince.value);
    const until = unixOf(fUntil.value);
    if (since !== undefined) d.since = since;
    if (until !== undefined) d.until = until;
    if (before !== undefined) d.before = before;
    let r;
    try {
      r = await conn.request('admin', d);
    } catch (e) {
      replace(audit, h('p', failure(e)));
      return;
    }
    const rows = r.rows ?? [];
    older.hidden = r.next_before === undefined;
    older.dataset.before = r.next_before ?? '';
    newest.hidden = before === undefined;
    replace(
      audit,
      h(
        'table',
        h('caption', rows.length === 0 ? 'Audit log: no rows match.' : `Audit log: ${rows.length} rows, newest first`),
        h('thead', h('tr', h('th', 'Time (UTC)'), h('th', 'User'), h('th', { class: 'wide' }, 'From'), h('th', { class: 'wide' }, 'Session'), h('th', 'Operation'), h('th', 'Outcome'), h('th', 'What'))),
        h(
          'tbody',
          rows.map((x) =>
            h(
              'tr',
              { dataset: { id: String(x.id) } },
              h('td', formatTime(Math.floor(x.time_ms / 1000))),
              h('td', x.user),
              h('td', { class: 'wide' }, x.remote),
              h('td', { class: 'wide' }, h('code', x.session)),
              h('td', x.op),
              h('td', { class: x.outcome === 'ok' ? '' : 'refused' }, x.outcome, x.exit !== null && x.exit !== undefined ? ` (exit ${x.exit})` : ''),
              h('td', h('code', x.summary), x.cert ? ` [${x.cert}]` : ''),
            ),
          ),
        ),
      ),
    );
  }

  older.addEventListener('click', () => {
    const b = Number(older.dataset.before);
    pages.push(b);
    loadAudit(b);
  });
  newest.addEventListener('click', () => {
    pages = [undefined];
    loadAudit(undefined);
  });
  const filters = h(
    'form',
    {
      id: 'audit-filters',
      onsubmit: (ev) => {
        ev.preventDefault();
        pages = [undefined];
        loadAudit(undefined);
      },
    },
    h('div', { class: 'cols' }, fUserBox, fOpBox, fOutcomeBox, fSinceBox, fUntilBox),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', id: 'audit-show' }, 'Show'), newest, older),
  );

  const refresh = h(
    'button',
    {
      type: 'button',
      id: 'admin-refresh',
      onclick: async () => {
        say('Refreshing…');
        await Promise.all([loadUsers(), loadSessions(), loadAudit(pages.at(-1))]);
        say('');
      },
    },
    'Refresh',
  );

  const page = h(
    'section',
    { 'aria-labelledby': 'admin-title' },
    h('h2', { id: 'admin-title', tabindex: '-1' }, 'Admin'),
    h('p', 'Users, live sessions and the audit log of this server. Every action here is checked by the server (the admin grant) and written to the audit log.'),
    h('div', { class: 'buttons' }, refresh),
    status,
    h('h3', 'Users'),
    users,
    usersMore,
    h('h3', 'Sessions and processes'),
    sessions,
    processes,
    h('h3', 'Audit log'),
    filters,
    audit,
  );
  usersMore.addEventListener('click', () => loadUsers(true));

  if (!conn.signedIn) {
    say('Sign in first.');
  } else {
    loadUsers();
    loadSessions();
    loadAudit(undefined);
  }
  return page;
}
