// The Doors page in a real browser (tests/it/console_doors.rs), run inside
// the "client" network namespace against remod in "server", whose
// profiles are `ssh` (22/tcp on the server) and `intranet` (a forward of
// 8080/tcp to a web service in the "lan" namespace, guests allowed).
// Asks the caller (`NEED`): `useradd NAME FILE`, `probe ssh closed|open`,
// `probe intranet closed|open` (a connection from the client namespace),
// `probe intranet guest open|closed` (from the guest's address).
// GUEST_IP: the guest address to open `intranet` for.

import { url, result, step, shot, need, waitText, start, signIn, narrowWidth, run } from './common.mjs';

const guestIp = process.env.GUEST_IP;

/** The rows of a profile's grants: [{ip, by, left}]. */
function rows(page, profile) {
  return page.$$eval(`#door-${profile} table.grants tbody tr`, (trs) =>
    trs.map((tr) => ({ ip: tr.dataset.ip, by: tr.dataset.by, left: tr.querySelector('.left')?.textContent })),
  );
}

/** Seconds from `m:ss` / `h:mm:ss`. */
function secs(t) {
  return t.split(':').reduce((a, x) => a * 60 + Number(x), 0);
}

run(async () => {
  const { browser, context, page } = await start();
  await signIn(page, 'dora');

  step('the doors');
  await page.goto(`${url}#doors`);
  await page.waitForSelector('#doors-own-ip');
  await page.waitForSelector('#door-ssh');
  result.ownIp = await page.textContent('#doors-own-ip');
  result.profiles = await page.$$eval('section.door h3', (hs) => hs.map((x) => x.textContent));
  result.linkBefore = (await page.$('#door-link-intranet')) !== null;
  await need('probe ssh closed');

  step('open ssh for 5 minutes, with the keyboard');
  await page.focus('#door-minutes-ssh');
  await page.keyboard.press('Control+A');
  await page.keyboard.type('5');
  await page.keyboard.press('Enter');
  await waitText(page, '#doors-status', /ssh is open|Cannot/);
  result.openStatus = await page.textContent('#doors-status');
  result.sshRows = await rows(page, 'ssh');
  await page.waitForTimeout(2200);
  result.sshRowsLater = await rows(page, 'ssh');
  result.countdown = [secs(result.sshRows[0]?.left ?? '0'), secs(result.sshRowsLater[0]?.left ?? '0')];
  await need('probe ssh open');

  step('open the intranet door and follow its link');
  await page.click('#door-open-intranet');
  await page.waitForSelector('#door-link-intranet');
  result.link = await page.getAttribute('#door-link-intranet', 'href');
  result.linkTarget = await page.getAttribute('#door-link-intranet', 'target');
  result.linkRel = await page.getAttribute('#door-link-intranet', 'rel');
  await need('probe intranet open');
  const [tab] = await Promise.all([context.waitForEvent('page'), page.click('#door-link-intranet')]);
  await tab.waitForLoadState('domcontentloaded');
  result.tabUrl = tab.url();
  result.tabText = await tab.textContent('body');
  await tab.close();

  step('a guest address');
  await page.fill('#door-guest-intranet', guestIp);
  await page.fill('#door-minutes-intranet', '2');
  await page.click('#door-open-intranet');
  await waitText(page, '#doors-status', new RegExp(`open for ${guestIp.replaceAll('.', '\\.')}|Cannot`));
  result.guestStatus = await page.textContent('#doors-status');
  result.intranetRows = await rows(page, 'intranet');
  await shot(page, 'doors');
  await need('probe intranet guest open');

  step("close the guest's grant");
  await page.click(`button[aria-label="Close intranet for ${guestIp}"]`);
  await waitText(page, '#doors-status', /intranet is closed|Cannot/);
  result.guestCloseStatus = await page.textContent('#doors-status');
  result.intranetRowsAfterGuest = await rows(page, 'intranet');
  await need('probe intranet guest closed');

  step('close');
  await page.click('button[aria-label="Close ssh for 10.200.1.2"]');
  await waitText(page, '#doors-status', /ssh is closed|Cannot/);
  result.closeStatus = await page.textContent('#doors-status');
  result.sshRowsAfter = await rows(page, 'ssh');
  result.focusAfterClose = await page.evaluate(() => document.activeElement?.id);
  await need('probe ssh closed');
  await page.click('button[aria-label="Close intranet for 10.200.1.2"]');
  await waitText(page, '#doors-status', /intranet is closed|Cannot/);
  result.linkAfterClose = (await page.$('#door-link-intranet')) !== null;
  await need('probe intranet closed');

  step('narrow');
  result.narrow = await narrowWidth(page, null);
  await browser.close();
});
