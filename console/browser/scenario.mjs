// The console in a real browser: Debian's chromium driven by Playwright
// (playwright-core, no browser download), against a real remod behind the
// front door the caller started (tests/it/console_browser.rs).
//
// Environment: CONSOLE_URL (…/console/), WORK (a scratch directory),
// BIG_FILE (a local file `up.bin`, uploaded), REMOTE_DIR (a directory on
// the server, listed and uploaded to, holding `sub/` and `down.bin`,
// which is downloaded to WORK/downloaded.bin), CANCEL_FILE (a large local
// file whose upload is cancelled), SHOTS (optional: write
// the documentation's screenshots there), CHROMIUM (default
// /usr/bin/chromium).
//
// It talks to its caller as common.mjs says: `NEED useradd NAME FILE`,
// `NEED restart` and `NEED rekey`, answered by `OK`; then `RESULT {json}`.

import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { url, work, result, step, shot, need, start, run, until } from './common.mjs';

const big = process.env.BIG_FILE;
const remoteDir = process.env.REMOTE_DIR;

/** Samples the page's JS heap (V8 heap + ArrayBuffer backing stores) until stopped. */
function heapSampler(cdp) {
  let max = 0;
  let maxUsed = 0;
  let stop = false;
  const done = (async () => {
    while (!stop) {
      try {
        const h = await cdp.send('Runtime.getHeapUsage');
        const all = h.usedSize + (h.backingStorageSize ?? 0);
        max = Math.max(max, all);
        maxUsed = Math.max(maxUsed, h.usedSize);
      } catch {
        // page busy navigating
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return async () => {
    stop = true;
    await done;
    return { max, maxUsed };
  };
}

run(async () => {
  const { browser, context, page } = await start({
    context: { acceptDownloads: true },
    permissions: ['clipboard-read', 'clipboard-write'],
    requests: true,
    // A page's first `list` answers 3 s late (as from a busy server): the
    // browse step types its path while the Files page's own first listing
    // is under way.
    init: () => {
      const f = window.fetch;
      let held = false;
      window.fetch = function (u, ...rest) {
        const p = f.call(this, u, ...rest);
        if (held || !String(u).endsWith('/list')) return p;
        held = true;
        return p.then((r) => new Promise((ok) => setTimeout(() => ok(r), 3000)));
      };
    },
  });

  step('load');
  const resp = await page.goto(url);
  result.csp = resp.headers()['content-security-policy'] ?? null;
  await page.waitForSelector('html[data-ready]');
  step('create key');
  await page.goto(`${url}#keys`);
  await page.fill('#create-name', 'alice');
  await page.click('#create-key');
  await page.waitForSelector('#public-pem');
  const pem = await page.textContent('#public-pem');
  result.pem = pem;
  result.registerCmd = await page.textContent('#register-cmd');
  result.extractable = await page.evaluate(async () => {
    const db = await new Promise((res, rej) => {
      const r = indexedDB.open('remo-console');
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    const keys = await new Promise((res) => {
      const r = db.transaction('keys').objectStore('keys').getAll();
      r.onsuccess = () => res(r.result);
    });
    const k = keys[0].privateKey;
    let exported = false;
    try {
      await crypto.subtle.exportKey('pkcs8', k);
      exported = true;
    } catch {
      // expected: InvalidAccessError
    }
    return { extractable: k.extractable, exported, type: k.type, usages: k.usages };
  });
  await shot(page, 'keys');
  step('import key files');
  // PBES2 (openssl's PBKDF2 + AES-256-CBC): imported; scrypt: refused with
  // the command that converts it.
  const plain = execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);
  const pbes2 = join(work, 'pbes2.pem');
  const scrypt = join(work, 'scrypt.pem');
  execFileSync('openssl', ['pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-v2prf', 'hmacWithSHA256', '-passout', 'pass:secret pw', '-out', pbes2], { input: plain });
  execFileSync('openssl', ['pkcs8', '-topk8', '-scrypt', '-passout', 'pass:secret pw', '-out', scrypt], { input: plain });
  const spki = createPublicKey(plain).export({ type: 'spki', format: 'der' });
  result.importWant = `SHA256:${createHash('sha256').update(spki).digest('base64url')}`;
  await page.setInputFiles('#import-file', pbes2);
  await page.waitForSelector('#import-pass', { state: 'visible' });
  await page.fill('#import-name', 'openssl');
  await page.fill('#import-pass', 'secret pw');
  await page.click('#import-key');
  await page.waitForFunction(() => /Imported|Cannot|failed/.test(document.querySelector('#keys-status')?.textContent ?? ''));
  result.imported = { status: await page.textContent('#keys-status'), fingerprint: await page.textContent('#key-fingerprint') };
  await page.setInputFiles('#import-file', scrypt);
  await page.waitForSelector('#import-pass', { state: 'visible' });
  await page.fill('#import-pass', 'secret pw');
  await page.click('#import-key');
  await page.waitForFunction(() => /Cannot|failed/.test(document.querySelector('#keys-status')?.textContent ?? ''));
  result.scrypt = await page.textContent('#keys-status');
  result.keyCount = await page.locator('#key-list tbody tr').count();
  // Back to the created key for the screenshot.
  await page.click('#key-list button[aria-label="Show public key of alice"]');

  const pubFile = join(work, 'alice.pub');
  writeFileSync(pubFile, pem);
  await need(`useradd alice ${pubFile}`);

  step('keyboard sign-in');
  await page.goto(`${url}#signin`);
  await page.waitForSelector('#signin-user');
  for (let i = 0; i < 20; i++) {
    if ((await page.evaluate(() => document.activeElement?.id)) === 'signin-user') break;
    await page.keyboard.press('Tab');
  }
  result.keyboardReachedUser = (await page.evaluate(() => document.activeElement?.id)) === 'signin-user';
  await page.keyboard.type('alice');
  await page.keyboard.press('Tab'); // the key
  await page.keyboard.press('Tab'); // Sign in
  result.keyboardOnButton = (await page.evaluate(() => document.activeElement?.id)) === 'sign-in';
  await shot(page, 'signin');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#signed-in', { timeout: 30_000 });
  result.signedIn = await page.textContent('#signed-in');
  result.serverFp = await page.textContent('#server-fp');

  step('run uname -a');
  await page.goto(`${url}#run`);
  await page.fill('#run-line', 'uname -a');
  await page.click('#run');
  await page.waitForFunction(() => /exit code|failed|signal/i.test(document.querySelector('#run-result')?.textContent ?? ''));
  result.uname = { out: await page.textContent('#run-output'), result: await page.textContent('#run-result') };

  step('run both streams');
  await page.selectOption('#run-mode', 'sh');
  await page.fill('#run-line', 'echo to-stdout; echo to-stderr >&2; sleep 0.2; echo more-out; exit 3');
  await page.click('#run');
  await page.waitForFunction(() => /exit code|failed|signal/i.test(document.querySelector('#run-result')?.textContent ?? ''));
  result.streams = await page.evaluate(() => ({
    stdout: [...document.querySelectorAll('#run-output .stdout')].map((e) => e.textContent).join(''),
    stderr: [...document.querySelectorAll('#run-output .stderr')].map((e) => e.textContent).join(''),
    result: document.querySelector('#run-result').textContent,
    recent: [...document.querySelectorAll('#run-recent li')].map((e) => e.textContent),
  }));
  await shot(page, 'run');

  step('browse');
  await page.goto(`${url}#files`);
  // The path typed first, the page's own first listing (of the remembered
  // directory, here the home; held back, see start) landing after it:
  // what is typed stays, and is what gets listed.
  await page.fill('#files-path', remoteDir);
  await until(() => page.evaluate(() => /^\.: /.test(document.querySelector('#files-status')?.textContent ?? '')), 'the first listing', 60_000);
  await page.click('#files-go');
  await page.waitForFunction((d) => (document.querySelector('#files-status')?.textContent ?? '').startsWith(`${d}:`), remoteDir);
  result.listing = await page.evaluate(() => [...document.querySelectorAll('#files-list tbody tr td:first-child')].map((e) => e.textContent));
  await page.click('#files-list button.dir');
  await page.waitForFunction(() => /\/sub: /.test(document.querySelector('#files-status')?.textContent ?? ''));
  result.subListing = await page.evaluate(() => [...document.querySelectorAll('#files-list tbody tr td:first-child')].map((e) => e.textContent));
  await page.click('#files-list tbody tr:first-child button'); // ..
  await page.waitForFunction((d) => (document.querySelector('#files-status')?.textContent ?? '').startsWith(`${d}:`), remoteDir);

  step('upload');
  const cdp = await context.newCDPSession(page);
  await cdp.send('Runtime.enable');
  let stopHeap = heapSampler(cdp);
  await page.setInputFiles('#upload-file', big);
  const t0 = Date.now();
  await page.click('#upload');
  await page.waitForSelector('#transfers li[data-state]', { timeout: 600_000 });
  result.upload = {
    state: await page.getAttribute('#transfers li', 'data-state'),
    text: await page.textContent('#transfers li'),
    seconds: (Date.now() - t0) / 1000,
    heap: await stopHeap(),
  };
  if (result.upload.state === 'done') {
    // The listing is read again after the upload (see 'cancel' for why not waitForFunction).
    await until(() => page.evaluate(() => /up\.bin/.test(document.querySelector('#files-list')?.textContent ?? '')), 'up.bin in the listing', 120_000);
  }

  step('download');
  stopHeap = heapSampler(cdp);
  const t1 = Date.now();
  const [dl] = await Promise.all([
    page.waitForEvent('download', { timeout: 120_000 }),
    page.click('#files-list button[aria-label="Download down.bin"]'),
  ]);
  const saved = join(work, 'downloaded.bin');
  await dl.saveAs(saved);
  result.download = {
    failure: await dl.failure(),
    suggested: dl.suggestedFilename(),
    path: saved,
  };
  await page.waitForFunction(() => document.querySelectorAll('#transfers li[data-state]').length >= 2, null, { timeout: 600_000 });
  result.download.state = await page.getAttribute('#transfers li:first-child', 'data-state');
  result.download.text = await page.textContent('#transfers li:first-child');
  result.download.seconds = (Date.now() - t1) / 1000;
  result.download.heap = await stopHeap();
  await shot(page, 'files');

  step('cancel');
  // While a transfer streams (8 MiB request bodies, records), Playwright's
  // waits and pointer actions stall on a loaded machine — a bounding box,
  // a focus, a scroll into view timed out after 10–20 s — though the page
  // handles input at once (a key press: 15 ms). So the transfer is watched
  // with plain evaluations, and its Cancel button pressed from the
  // keyboard, as a keyboard user does.
  const cancelFirstTransfer = async (what) => {
    await until(() => page.evaluate(() => Number(document.querySelector('#transfers li:first-child progress')?.value) > 0), `${what} under way`, 120_000);
    await page.evaluate(() => document.querySelector('#transfers li:first-child button').focus());
    await page.keyboard.press('Enter');
    await until(() => page.evaluate(() => document.querySelector('#transfers li:first-child')?.dataset.state ?? null), `${what} ended`, 60_000);
    return page.evaluate(() => document.querySelector('#transfers li:first-child').textContent);
  };
  // A download cancelled in the page: the browser's download fails too.
  const [dl2] = await Promise.all([
    page.waitForEvent('download', { timeout: 120_000 }),
    page.click('#files-list button[aria-label="Download down.bin"]'),
  ]);
  result.cancelDownload = { row: await cancelFirstTransfer('the download') };
  result.cancelDownload.failure = await dl2.failure();
  // An upload cancelled after its first part: nothing is written.
  await page.setInputFiles('#upload-file', process.env.CANCEL_FILE);
  await page.click('#upload');
  result.cancelUpload = { row: await cancelFirstTransfer('the upload') };

  step('re-login after the server restarted');
  await need('restart');
  await page.goto(`${url}#run`);
  await page.selectOption('#run-mode', 'argv');
  await page.fill('#run-line', "printf '%s\\n' 'after restart'");
  await page.click('#run');
  await page.waitForFunction(() => /exit code|failed|signal/i.test(document.querySelector('#run-result')?.textContent ?? ''));
  result.relogin = {
    out: await page.textContent('#run-output'),
    result: await page.textContent('#run-result'),
    session: await page.textContent('#session-left'),
  };

  step('narrow screen');
  const narrow = await context.newPage();
  await narrow.setViewportSize({ width: 360, height: 740 });
  result.narrow = {};
  for (const p of ['keys', 'signin', 'run', 'files']) {
    await narrow.goto(`${url}#${p}`);
    await narrow.waitForSelector('html[data-ready]');
    await narrow.waitForTimeout(300);
    result.narrow[p] = await narrow.evaluate(() => document.documentElement.scrollWidth);
    if (p === 'run') await shot(narrow, 'narrow-run');
  }
  await narrow.close();

  step('sign out');
  await page.goto(`${url}#signin`);
  await page.click('#sign-out');
  await page.waitForSelector('#signin-form');

  step('server key changes');
  await need('rekey');
  await page.fill('#signin-user', 'alice');
  await page.click('#sign-in');
  await page.waitForSelector('#key-warning [role=alertdialog]', { timeout: 30_000 });
  result.warning = {
    text: await page.textContent('#key-warning'),
    pinned: await page.textContent('#pinned-fp'),
    offered: await page.textContent('#offered-fp'),
    focused: await page.evaluate(() => document.activeElement?.id),
  };
  // Blocking: another page cannot be reached while it stands.
  await page.evaluate(() => (location.hash = '#run'));
  // The page sends it back to #signin (the hash change is handled
  // asynchronously): wait for that, with the warning still up.
  await page.waitForFunction(() => location.hash === '#signin', null, { timeout: 15_000 }).catch(() => {});
  result.warning.stillThere = (await page.locator('#key-warning [role=alertdialog]').count()) === 1 && (await page.evaluate(() => location.hash)) === '#signin';
  await shot(page, 'warning');
  await page.click('#trust-new-key');
  await page.click('#sign-in');
  await page.waitForSelector('#signed-in', { timeout: 30_000 });
  result.afterTrust = await page.textContent('#server-fp');

  step('csp enforced');
  result.cspMessagesBefore = result.console.filter((m) => /Content Security Policy/i.test(m)).length;
  // An inline script must be refused by the CSP (the policy is enforced).
  result.inlineBlocked = await page.evaluate(async () => {
    window.__inline = false;
    const s = document.createElement('script');
    s.textContent = 'window.__inline = true';
    document.body.append(s);
    await new Promise((r) => setTimeout(r, 100));
    let evalBlocked = false;
    try {
      // eslint-disable-next-line no-eval
      eval('1');
    } catch {
      evalBlocked = true;
    }
    return !window.__inline && evalBlocked;
  });

  await browser.close();
});
