/**
 * Doors: the firewall profiles this user may open (the `open` operation,
 * docs/firewall.md), each opened for N minutes for this browser's address
 * as the server sees it — or, where the profile allows guests, for
 * another address — with the time left counting down and a Close button.
 * A forward to a web service (`web = "http"` in the profile) gets a link
 * that opens it in a new tab once this address's grant is in place.
 */

import { h, replace } from './dom.js';

/** `m:ss`, or `h:mm:ss` from an hour. */
export function formatLeft(secs) {
  const s = Math.max(0, Math.floor(secs));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** A duration for people: `30 min`, `2 h`, `1 h 30 min`, `45 s`. */
function formatDuration(secs) {
  if (secs < 60) return `${secs} s`;
  const hh = Math.floor(secs / 3600);
  const mm = Math.round((secs % 3600) / 60);
  return [hh && `${hh} h`, mm && `${mm} min`].filter(Boolean).join(' ');
}

/** The URL of a forward's web service on this server's host name. */
function webUrl(fwd) {
  const port = Number.parseInt(fwd.port, 10);
  return `${fwd.web}://${location.hostname}:${port}/`;
}

export function doorsPage(app) {
  const conn = app.conn;
  const status = h('p', { id: 'doors-status', role: 'status', 'aria-live': 'polite' });
  const mine = h('p', { id: 'doors-ip' });
  const list = h('div', { id: 'doors-list' });
  const root = h('div', { class: 'page' }, h('h2', { tabindex: -1 }, 'Doors'), mine, status, list);
  let profiles = [];
  let ownIp = null;
  let grants = []; // {profile, ip, by, expiresAt (ms)}
  const timers = new Map(); // the countdown elements: element → expiresAt

  async function load() {
    if (!conn.signedIn) {
      status.textContent = 'Sign in first.';
      return;
    }
    status.textContent = 'Asking for the doors you may open…';
    try {
      const r = await conn.request('open', { action: 'profiles' });
      profiles = r.profiles ?? [];
      ownIp = r.ip ?? null;
      mine.replaceChildren(
        ownIp
          ? h('span', 'Your address as the server sees it: ', h('code', { id: 'doors-own-ip' }, ownIp), '.')
          : h('span', { class: 'error' }, 'The server cannot tell your address (a proxy missing from trusted_proxies?): only guest addresses can be opened.'),
      );
      await refresh();
      status.textContent = profiles.length ? '' : 'No firewall profile is open to you on this server.';
    } catch (e) {
      status.textContent = `Cannot list the doors: ${e.message}`;
    }
  }

  /** Reads the grants again and redraws. */
  async function refresh() {
    const r = await conn.request('open', { action: 'list' });
    const now = Date.now();
    grants = (r.grants ?? []).map((g) => ({ ...g, expiresAt: now + g.expires_in * 1000 }));
    render();
  }

  function render() {
    timers.clear();
    replace(list, profiles.map(profileCard));
  }

  function profileCard(p) {
    const minutes = h('input', {
      type: 'number',
      id: `door-minutes-${p.name}`,
      min: '1',
      max: String(Math.max(1, Math.floor(p.max_duration / 60))),
      step: '1',
      value: String(Math.max(1, Math.round(p.default_duration / 60))),
      class: 'minutes',
    });
    const guest = p.guests ? h('input', { type: 'text', id: `door-guest-${p.name}`, autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. 198.51.100.7', class: 'guest' }) : null;
    const what = [
      ...p.ports.map((port) => h('li', 'port ', h('code', port))),
      ...p.forwards.map((f) => h('li', 'port ', h('code', f.port), ' → ', h('code', f.to), f.web ? ` (${f.web} service)` : '')),
    ];
    const own = grants.find((g) => g.profile === p.name && g.ip === ownIp && g.by === conn.user);
    const links = p.forwards
      .filter((f) => f.web)
      .map((f) =>
        own
          ? h('p', h('a', { href: webUrl(f), target: '_blank', rel: 'noopener noreferrer', class: 'door-link', id: `door-link-${p.name}` }, `Open ${webUrl(f)} in a new tab`))
          : h('p', { class: 'muted' }, `${webUrl(f)}: open the door first.`),
      );
    const mineRows = grants.filter((g) => g.profile === p.name);
    return h(
      'section',
      { class: 'door', id: `door-${p.name}`, 'aria-labelledby': `door-title-${p.name}` },
      h('h3', { id: `door-title-${p.name}` }, p.name),
      h('ul', { class: 'door-what' }, what),
      h('p', { class: 'muted' }, `Up to ${formatDuration(p.max_duration)}${p.guests ? '; may be opened for a guest address' : ''}.`),
      h(
        'form',
        { class: 'door-form', onsubmit: (ev) => (ev.preventDefault(), openDoor(p, minutes.value, guest?.value.trim() || null)) },
        h('label', { for: `door-minutes-${p.name}` }, 'Open for (minutes)'),
        minutes,
        guest ? h('label', { for: `door-guest-${p.name}` }, 'For a guest address (empty: your own)') : null,
        guest,
        h('div', { class: 'buttons' }, h('button', { type: 'submit', id: `door-open-${p.name}` }, `Open ${p.name}`)),
      ),
      mineRows.length
        ? h(
            'table',
            { class: 'grants' },
            h('caption', `Open now`),
            h('thead', h('tr', h('th', 'For'), h('th', 'By'), h('th', { class: 'num' }, 'Time left'), h('th', h('span', { class: 'sr' }, 'Actions')))),
            h(
              'tbody',
              mineRows.map((g) => {
                const left = h('span', { class: 'left', role: 'timer', 'aria-live': 'off' }, formatLeft((g.expiresAt - Date.now()) / 1000));
                timers.set(left, g.expiresAt);
                return h(
                  'tr',
                  { dataset: { ip: g.ip, by: g.by } },
                  h('td', h('code', g.ip), g.ip === ownIp ? ' (you)' : ''),
                  h('td', g.by),
                  h('td', { class: 'num' }, left),
                  h('td', g.by === conn.user ? h('button', { type: 'button', class: 'secondary', 'aria-label': `Close ${p.name} for ${g.ip}`, onclick: () => closeDoor(p, g.ip) }, 'Close') : ''),
                );
              }),
            ),
          )
        : h('p', { class: 'muted door-closed' }, 'Closed.'),
      links,
    );
  }

  async function openDoor(p, minutesText, guestIp) {
    const minutes = Number(minutesText);
    if (!Number.isFinite(minutes) || minutes <= 0) {
      status.textContent = 'Give the minutes as a number above 0.';
      return;
    }
    const desc = { action: 'open', profile: p.name, duration: Math.max(1, Math.round(minutes * 60)) };
    if (guestIp) desc.ip = guestIp;
    status.textContent = `Opening ${p.name}…`;
    try {
      const r = await conn.request('open', desc);
      await refresh();
      status.textContent = `${p.name} is open for ${r.ip} for ${formatDuration(r.expires_in)}${r.capped ? ` (capped to the profile's ${formatDuration(p.max_duration)})` : ''}.`;
      document.getElementById(`door-open-${p.name}`)?.focus();
    } catch (e) {
      status.textContent = `Cannot open ${p.name}: ${e.message}`;
    }
  }

  async function closeDoor(p, ip) {
    status.textContent = `Closing ${p.name}…`;
    try {
      await conn.request('open', { action: 'close', profile: p.name, ip });
      await refresh();
      status.textContent = `${p.name} is closed for ${ip}.`;
      document.getElementById(`door-open-${p.name}`)?.focus();
    } catch (e) {
      status.textContent = `Cannot close ${p.name}: ${e.message}`;
    }
  }

  // The countdown; a grant that ran out is read again from the server.
  const tick = setInterval(() => {
    if (!root.isConnected) {
      clearInterval(tick);
      return;
    }
    let expired = false;
    for (const [el, at] of timers) {
      const left = (at - Date.now()) / 1000;
      el.textContent = formatLeft(left);
      if (left <= 0) expired = true;
    }
    if (expired) refresh().catch(() => {});
  }, 1000);

  load();
  return root;
}
