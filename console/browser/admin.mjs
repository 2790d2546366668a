// The console's Admin page in a real browser: Debian's chromium driven by
// Playwright, against a real remod (tests/it/console_admin.rs). Two keys
// are made in the browser: `boss` (registered with the admin grant) and
// `carol` (no grant). As boss: the Admin page lists the users and the live
// session of `bob` (logged in by the caller), disables bob — the caller
// checks that bob's session is gone — enables him again, and finds the
// disable in the audit log by filter. As carol: no Admin link, and the
// page says the server refused.
//
// Environment and conversation: common.mjs's (SHOTS: docs/console/admin.png).
// Asks the caller (`NEED`): `useradd NAME FILE` (admin grant), `userplain
// NAME FILE` (none), `checkbob` (bob's session must be gone).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { url, work, result, step, shot, need, start, run } from './common.mjs';

async function makeKey(page, name, how) {
  await page.goto(`${url}#keys`);
  await page.fill('#create-name', name);
  await page.click('#create-key');
  await page.waitForFunction((n) => document.querySelector('#public-pem') && (document.querySelector('#register-cmd')?.textContent ?? '').includes(` ${n} `), name);
  const file = join(work, `${name}.pub`);
  writeFileSync(file, await page.textContent('#public-pem'));
  await need(`${how} ${name} ${file}`);
}

async function signIn(page, name) {
  await page.goto(`${url}#signin`);
  await page.waitForSelector('#signin-user, #sign-out');
  if (await page.$('#sign-out')) {
    await page.click('#sign-out');
    await page.waitForSelector('#signin-form');
  }
  await page.fill('#signin-user', name);
  // Options read `NAME (SHA256:…)`.
  const v = await page.$eval('#signin-key', (sel, n) => [...sel.options].find((o) => o.textContent.startsWith(`${n} (`))?.value, name);
  await page.selectOption('#signin-key', v);
  await page.click('#sign-in');
  await page.waitForSelector('#signed-in', { timeout: 30_000 });
}

const statusIs = (re) => (document.querySelector('#admin-status')?.textContent ?? '').match(new RegExp(re)) !== null;

run(async () => {
  const { browser, page } = await start();

  step('load');
  await page.goto(url);
  await page.waitForSelector('html[data-ready]');
  step('keys');
  await makeKey(page, 'boss', 'useradd');
  await makeKey(page, 'carol', 'userplain');

  step('sign in as boss');
  await signIn(page, 'boss');
  await page.waitForFunction(() => document.getElementById('nav-admin')?.parentElement?.hidden === false, null, { timeout: 15_000 });
  result.bossSeesLink = true;

  step('admin page');
  await page.click('#nav-admin');
  await page.waitForSelector('#admin-users tr[data-user="bob"]');
  await page.waitForSelector('#admin-sessions tr[data-user="bob"]');
  result.users = await page.$$eval('#admin-users tbody tr', (rows) => rows.map((r) => r.dataset.user));
  result.bobGrants = await page.textContent('#admin-users tr[data-user="bob"] td:nth-child(4)');
  result.sessionsBefore = await page.$$eval('#admin-sessions tbody tr', (rows) => rows.map((r) => r.dataset.user));
  result.yours = await page.textContent('#admin-sessions tbody tr:has-text("(this one)") td:nth-child(2)');
  await page.waitForSelector('#admin-audit table');

  step('disable bob');
  await page.click('button[aria-label="Disable bob"]');
  await page.waitForFunction(statusIs, '^Disabled bob', { timeout: 15_000 });
  result.disabledStatus = await page.textContent('#admin-status');
  await page.waitForFunction(() => !document.querySelector('#admin-sessions tr[data-user="bob"]'));
  result.bobState = await page.textContent('#admin-users tr[data-user="bob"] td:nth-child(2)');
  await need('checkbob');

  step('audit filter');
  await page.fill('#audit-user', 'boss');
  await page.fill('#audit-op', 'admin');
  await page.click('#audit-show');
  await page.waitForFunction(() => (document.querySelector('#admin-audit')?.textContent ?? '').includes('disable bob'));
  result.auditRows = await page.$$eval('#admin-audit tbody tr', (rows) => rows.map((r) => [...r.children].map((c) => c.textContent)));
  await shot(page, 'admin');

  step('enable bob');
  await page.click('button[aria-label="Enable bob"]');
  await page.waitForFunction(statusIs, '^Enabled bob', { timeout: 15_000 });
  result.bobStateAfter = await page.textContent('#admin-users tr[data-user="bob"] td:nth-child(2)');

  step('narrow');
  await page.setViewportSize({ width: 360, height: 800 });
  result.narrow = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.setViewportSize({ width: 1100, height: 800 });

  step('carol: no admin');
  await signIn(page, 'carol');
  // The page has asked the server whether carol is an admin.
  await page.waitForFunction(() => document.getElementById('nav-admin')?.parentElement?.dataset.checked === 'carol', null, { timeout: 15_000 });
  result.carolSeesLink = await page.evaluate(() => document.getElementById('nav-admin')?.parentElement?.hidden === false);
  await page.goto(`${url}#admin`);
  await page.waitForFunction(() => /Refused by the server/.test(document.querySelector('#admin-users')?.textContent ?? ''), null, { timeout: 15_000 });
  result.carolPage = await page.textContent('#admin-users');

  await browser.close();
});
