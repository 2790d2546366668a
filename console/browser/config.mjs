// The Config page in a real browser against a real remod
// (tests/it/console_config.rs), which names a WireGuard file `wg0` with a
// validator that refuses any candidate containing INVALID. Asks the caller
// (`NEED`): `useradd NAME FILE`, `change` (someone else edits wg0 while
// the page holds the old version). See common.mjs for the conversation.

import { url, result, step, shot, need, waitText, start, signIn, narrowWidth, run } from './common.mjs';

const BOB = 'PublicKey = BOB+';
const CAROL = 'PublicKey = CAROL/';

/** The value input of `key` in the section whose legend contains `legend`. */
function keyInput(page, legend, key) {
  return page.locator('fieldset.section', { has: page.locator('legend', { hasText: legend }) }).locator(`input[data-key="${key}"]`);
}

async function saved(page) {
  return waitText(page, '#config-result', /saved|nothing to change|Not saved|Failed/);
}

run(async () => {
  const { browser, page } = await start();
  await signIn(page, 'carla');

  step('list and open wg0');
  await page.goto(`${url}#config`);
  await page.waitForSelector('button[data-file="wg0"]');
  result.files = await page.$$eval('#config-files tbody tr', (rows) => rows.map((r) => r.textContent));
  await page.click('button[data-file="wg0"]');
  await page.waitForSelector('#config-version');
  result.version0 = await page.textContent('#config-version');
  result.legends = await page.$$eval('fieldset.section legend', (l) => l.map((e) => e.textContent));

  step('edit bob AllowedIPs with the keyboard');
  const bob = keyInput(page, BOB, 'AllowedIPs');
  await bob.focus();
  await page.keyboard.press('Control+A');
  await page.keyboard.type('10.0.0.3/32, 10.9.0.0/16');
  await page.keyboard.press('Enter'); // submits the row: the review
  await page.waitForSelector('#config-diff');
  result.keyDiff = await page.textContent('#config-diff');
  result.reviewFocused = await page.evaluate(() => document.activeElement?.id);
  await shot(page, 'config');
  // Tab from the review's heading: the diff, then Save.
  for (let i = 0; i < 5 && (await page.evaluate(() => document.activeElement?.id)) !== 'config-save'; i++) await page.keyboard.press('Tab');
  result.keyboardOnSave = (await page.evaluate(() => document.activeElement?.id)) === 'config-save';
  await page.keyboard.press('Enter');
  result.setResult = await saved(page);
  await need('check set');

  step('a refused value: the validator says no');
  const carol = keyInput(page, CAROL, 'AllowedIPs');
  await carol.fill('INVALID');
  await page.locator('fieldset.section', { has: page.locator('legend', { hasText: CAROL }) }).locator('button[aria-label="Review the change of AllowedIPs"]').click();
  await page.click('#config-save');
  result.refused = await saved(page);
  result.refusedOutput = (await page.$('#config-output')) ? await page.textContent('#config-output') : null;
  await need('check unchanged');

  step('a conflict: someone else changed the file');
  await page.click('#config-reload');
  await page.waitForFunction(() => !document.querySelector('#config-result')?.textContent);
  const keep = keyInput(page, BOB, 'PersistentKeepalive');
  await keep.fill('30');
  await keep.press('Enter');
  await page.waitForSelector('#config-diff');
  await need('change');
  await page.click('#config-save');
  result.conflict = await saved(page);
  result.conflictShown = (await page.$('#config-conflict')) !== null;
  await page.click('#config-redo');
  await page.waitForSelector('#config-diff');
  result.redoDiff = await page.textContent('#config-diff');
  await page.click('#config-save');
  result.afterRedo = await saved(page);
  await need('check redo');

  step('whole file');
  await page.click('#config-view-file');
  const text = await page.inputValue('#config-text');
  await page.fill('#config-text', `${text}# a note at the end\n`);
  await page.click('#config-review-file');
  await page.waitForSelector('#config-diff');
  result.fileDiff = await page.textContent('#config-diff');
  await page.click('#config-save');
  result.wholeResult = await saved(page);
  await need('check whole');

  step('backups: diff and restore the newest');
  await page.click('#config-show-backups');
  await page.waitForSelector('#config-backups tbody tr');
  result.backups = await page.$$eval('#config-backups tbody tr', (rows) => rows.map((r) => r.dataset.backup));
  const newest = result.backups[0];
  await page.click(`#config-backups button[aria-label="Differences of backup ${newest}"]`);
  await page.waitForSelector('#config-diff');
  result.backupDiff = await page.textContent('#config-diff');
  result.diffOnlyHasNoSave = (await page.$('#config-save')) === null;
  await page.click(`#config-backups button[aria-label="Restore backup ${newest}"]`);
  await page.waitForSelector('#config-save');
  await page.click('#config-save');
  result.restoreResult = await saved(page);
  result.restored = newest;
  await need('check restore');

  step('narrow');
  await page.click('#config-view-keys');
  result.narrow = await narrowWidth(page, null);
  await browser.close();
});
