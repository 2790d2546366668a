// What the browser scenarios (scenario.mjs, terminal.mjs, config.mjs,
// doors.mjs, admin.mjs) share: the browser, the conversation with the Rust
// test that runs them (tests/it/common/browser.rs: `NEED …` on stdout,
// `OK` on stdin, one `RESULT {json}` at the end), a key created in the
// browser and registered by the caller, the sign-in, screenshots.
//
// Environment: CONSOLE_URL (…/console/), WORK (a scratch directory),
// CHROMIUM (default /usr/bin/chromium), SHOTS (optional: a directory for
// the documentation's screenshots), CHROMIUM_ARGS (optional, space
// separated extra arguments).

import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const url = process.env.CONSOLE_URL;
export const origin = new URL(url).origin;
export const work = process.env.WORK;
export const shots = process.env.SHOTS || null;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const lines = createInterface({ input: process.stdin });
const answers = lines[Symbol.asyncIterator]();

/** Asks the caller to do something; resolves once it answered `OK`. */
export async function need(what) {
  process.stdout.write(`NEED ${what}\n`);
  const a = await answers.next();
  if (a.done || a.value.trim() !== 'OK') throw new Error(`the caller did not do: ${what} (${a.value})`);
}

export const result = { steps: [] };
export function step(name) {
  result.steps.push(name);
  process.stderr.write(`scenario: ${name}\n`);
}

/** docs/console/NAME.png, when SHOTS is set (the whole page unless `fullPage` is false). */
export async function shot(page, name, { fullPage = true } = {}) {
  if (!shots) return;
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage });
}

/** The text of `sel` once `re` matches it. */
export async function waitText(page, sel, re, timeout = 30_000) {
  await page.waitForFunction(([s, src]) => new RegExp(src).test(document.querySelector(s)?.textContent ?? ''), [sel, re.source], { timeout });
  return page.textContent(sel);
}

/** Polls `fn` (every 50 ms) until it gives a truthy value, which it returns. */
export async function until(fn, what, timeout = 20_000) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeout) throw new Error(`no ${what} within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The page whose status lines a failure reports. */
let current = null;

/**
 * Starts the browser and a page whose console messages (and page errors)
 * go to `result.console`. `context`: more options of the browser context;
 * `permissions`: granted to the console's origin; `init`: a script run in
 * every page before the console's own; `httpErrors`: answers ≥ 400 go to
 * `result.console` as `error: HTTP …`; `requests`: every URL asked for
 * goes to `result.requests`, those of another origin to `result.foreign`.
 */
export async function start({ context: options = {}, permissions = [], init = null, httpErrors = false, requests = false } = {}) {
  const args = ['--no-sandbox', ...(process.env.CHROMIUM_ARGS ?? '').split(' ').filter(Boolean)];
  const browser = await chromium.launch({ executablePath, headless: true, args });
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 }, ...options });
  if (permissions.length) await context.grantPermissions(permissions, { origin });
  if (init) await context.addInitScript(init);
  if (requests) {
    result.requests = [];
    result.foreign = [];
    context.on('request', (r) => {
      const u = r.url();
      result.requests.push(u.length > 200 ? u.slice(0, 200) : u);
      if (!u.startsWith(`${origin}/`) && !u.startsWith('blob:') && !u.startsWith('data:')) result.foreign.push(u);
    });
  }
  const page = await context.newPage();
  current = page;
  result.console = [];
  page.on('console', (m) => result.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => result.console.push(`pageerror: ${e.message}`));
  if (httpErrors) {
    page.on('response', (r) => {
      if (r.status() >= 400) result.console.push(`error: HTTP ${r.status()} ${r.url()}`);
    });
  }
  return { browser, context, page };
}

/** Creates a key named `user` in the browser, has the caller register it, signs in. */
export async function signIn(page, user) {
  step('create key');
  await page.goto(`${url}#keys`);
  await page.waitForSelector('html[data-ready]');
  await page.fill('#create-name', user);
  await page.click('#create-key');
  await page.waitForSelector('#public-pem');
  const pubFile = join(work, `${user}.pub`);
  writeFileSync(pubFile, await page.textContent('#public-pem'));
  await need(`useradd ${user} ${pubFile}`);
  step('sign in');
  await page.goto(`${url}#signin`);
  await page.fill('#signin-user', user);
  await page.click('#sign-in');
  await page.waitForSelector('#signed-in', { timeout: 30_000 });
}

/** The page's scroll width with the viewport 360 px wide (must not exceed it); `shotName` for a screenshot. */
export async function narrowWidth(page, shotName) {
  await page.setViewportSize({ width: 360, height: 740 });
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  if (shotName) await shot(page, shotName);
  await page.setViewportSize({ width: 1100, height: 800 });
  return w;
}

/**
 * Runs `main`, then prints the result; a failure is `RESULT {"error": …}`
 * with the page's status lines (`pageStatus`), exit 1.
 */
export function run(main) {
  main().then(
    () => {
      process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    async (e) => {
      result.error = `${e.stack ?? e}`;
      const status = current
        ?.evaluate(() => [...document.querySelectorAll('[role=status]')].map((x) => `${x.id}: ${x.textContent}`))
        .catch(() => null);
      result.pageStatus = await Promise.race([status, new Promise((r) => setTimeout(() => r(null), 5000))]);
      process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
      process.exit(1);
    },
  );
}
