// The console's Terminal page in a real browser: Debian's chromium driven
// by Playwright, against a real remod behind the front door the caller
// started (tests/it/console_term.rs). The conversation with the caller
// and the environment are common.mjs's (`NEED useradd NAME FILE`), plus
// TAIL_FILE (a file on the server, followed, to which this script
// appends) and BIG_MB (the fast producer's size, default 50); with SHOTS
// it writes docs/console/terminal.png there.

import { appendFileSync } from 'node:fs';
import { url, result, step, shot, need, start, signIn, run, until } from './common.mjs';

const tailFile = process.env.TAIL_FILE;
const bigMb = Number(process.env.BIG_MB || 50);

/** The whole text of terminal N's buffer (scrollback and screen), trailing blanks cut. */
function text(page, n) {
  return page.evaluate((n) => {
    const t = document.getElementById(`term-panel-${n}`)?.remoTerminal;
    if (!t) return '';
    const b = t.xterm.buffer.active;
    const out = [];
    // A line the terminal wrapped continues the one before it: joined, so
    // a match does not depend on the width or the prompt's length.
    for (let i = 0; i < b.length; i++) {
      const l = b.getLine(i);
      const s = l?.translateToString(true) ?? '';
      if (l?.isWrapped && out.length) out[out.length - 1] += s;
      else out.push(s);
    }
    while (out.length && out[out.length - 1] === '') out.pop();
    return out.join('\n');
  }, n);
}

/** Waits until terminal N's buffer matches `re` (a RegExp source). */
async function waitText(page, n, re, timeout = 20_000) {
  const t0 = Date.now();
  for (;;) {
    const s = await text(page, n);
    const m = s.match(new RegExp(re));
    if (m) return m;
    if (Date.now() - t0 > timeout) {
      const raw = await page.evaluate((n) => document.getElementById(`term-panel-${n}`)?.remoTerminal?.rawTail ?? null, n);
      throw new Error(`terminal ${n}: no /${re}/ within ${timeout} ms; it shows:\n${s.slice(-2000)}\nthe last bytes it got: ${JSON.stringify(raw)}`);
    }
    await page.waitForTimeout(50);
  }
}

/** Keeps the last 1000 bytes terminal N received (`rawTail`), for failure messages. */
function recordRaw(page, n) {
  return page.evaluate((n) => {
    const t = document.getElementById(`term-panel-${n}`).remoTerminal;
    const next = t.proc.onOutput;
    const dec = new TextDecoder();
    t.rawTail = '';
    t.proc.onOutput = (bytes, ch) => {
      t.rawTail = (t.rawTail + dec.decode(bytes.subarray(-1000))).slice(-1000);
      return next(bytes, ch);
    };
  }, n);
}

/** Types a command line into the focused terminal and presses Enter. */
async function runLine(page, line) {
  await page.keyboard.type(line);
  await page.keyboard.press('Enter');
}

run(async () => {
  const { browser, context, page } = await start({
    permissions: ['clipboard-read', 'clipboard-write'],
    // Every CSP violation, from the first script on (before the console's own).
    init: () => {
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));
    },
    httpErrors: true,
    requests: true,
  });
  await signIn(page, 'tess');

  step('open a shell with the keyboard');
  await page.goto(`${url}#terminal`);
  await page.waitForSelector('#term-new');
  for (let i = 0; i < 30; i++) {
    if ((await page.evaluate(() => document.activeElement?.id)) === 'term-new') break;
    await page.keyboard.press('Tab');
  }
  result.keyboardReachedNew = (await page.evaluate(() => document.activeElement?.id)) === 'term-new';
  await page.keyboard.press('Enter');
  await page.waitForSelector('#term-panel-1[data-state="running"]', { timeout: 30_000 });
  result.focusInTerminal = await page.evaluate(() => document.activeElement?.classList.contains('xterm-helper-textarea'));
  await recordRaw(page, 1);
  // The login shell's first prompt, before typing: typed ahead, the line
  // is echoed twice (by the tty, then by readline).
  await waitText(page, 1, '[#$] ?$');
  await runLine(page, "PS1='$ '; export HISTFILE=/dev/null; echo hello-$((6*7))");
  await waitText(page, 1, '\\nhello-42');
  result.typed = true;

  step('utf-8 and colours');
  await runLine(page, "printf '\\033[31mred\\033[0m \\033[38;2;0;128;255mtrue\\033[0m h\\303\\251llo \\342\\234\\223 \\346\\227\\245\\346\\234\\254\\n'");
  const utf = await waitText(page, 1, '\\nred true (h.llo . ..)');
  result.utf8 = utf[1];
  // The renderer draws on an animation frame: wait for the spans.
  await page.waitForFunction(() => {
    const spans = [...document.querySelectorAll('#term-panel-1 .xterm-rows span')];
    return spans.some((e) => e.textContent === 'red') && spans.some((e) => e.textContent === 'true');
  });
  result.colours = await page.evaluate(() => {
    const spans = [...document.querySelectorAll('#term-panel-1 .xterm-rows span')];
    const col = (w) => {
      const s = spans.find((e) => e.textContent === w);
      return s ? getComputedStyle(s).color : null;
    };
    return { red: col('red'), truecolor: col('true'), styleElements: document.querySelectorAll('style').length };
  });

  step('tab completion and history');
  await page.keyboard.type('ech');
  await page.keyboard.press('Tab');
  await runLine(page, ' tab-completed');
  await waitText(page, 1, '\\ntab-completed');
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('Enter');
  await waitText(page, 1, '\\ntab-completed\\n[^]*\\ntab-completed');
  result.completion = true;

  step('resize');
  const before = await page.evaluate(() => {
    const x = document.getElementById('term-panel-1').remoTerminal.xterm;
    return { rows: x.rows, cols: x.cols };
  });
  await page.setViewportSize({ width: 700, height: 560 });
  // The page marks the size the server has acknowledged (`resize` answered):
  // only then does the program see it.
  await page.waitForFunction((b) => {
    const p = document.getElementById('term-panel-1');
    const x = p.remoTerminal.xterm;
    return x.cols !== b.cols && p.dataset.size === `${x.cols}x${x.rows}`;
  }, before);
  const after = await page.evaluate(() => {
    const x = document.getElementById('term-panel-1').remoTerminal.xterm;
    return { rows: x.rows, cols: x.cols };
  });
  await runLine(page, 'echo "size=$(stty size)"');
  // Not anchored at a line's start: bash redraws its line when the SIGWINCH
  // reaches it, and typed right after the resize the output can land on
  // the redrawn command line (the echoed command has no digits there).
  const size = await waitText(page, 1, 'size=(\\d+) (\\d+)');
  result.resize = { before, after, stty: { rows: Number(size[1]), cols: Number(size[2]) } };

  step('ctrl-c');
  // Ctrl-C once the job is the terminal's foreground process group: the
  // shell has given it the terminal before its `sh` prints the marker (a
  // ^C typed earlier would reach the interactive shell, not the job).
  await runLine(page, "sh -c 'echo sleeping-$((6*7)); exec sleep 30'");
  await waitText(page, 1, '\\nsleeping-42');
  const tInt = Date.now();
  await page.keyboard.press('Control+C');
  await runLine(page, 'echo "rc=$?"');
  const rc = await waitText(page, 1, '\\nrc=(\\d+)');
  result.interrupt = { rc: Number(rc[1]), ms: Date.now() - tInt };

  step('copy and paste');
  await page.evaluate(() => {
    const x = document.getElementById('term-panel-1').remoTerminal.xterm;
    const b = x.buffer.active;
    for (let i = b.length - 1; i >= 0; i--) {
      if (b.getLine(i)?.translateToString(true) === 'tab-completed') {
        x.select(0, i, 'tab-completed'.length);
        return;
      }
    }
  });
  // Copying writes the clipboard asynchronously: wait until it changed.
  await page.evaluate(() => navigator.clipboard.writeText('(not copied)'));
  await page.keyboard.press('Control+Shift+C');
  result.copied = await until(async () => {
    const c = await page.evaluate(() => navigator.clipboard.readText());
    return c !== '(not copied)' && c;
  }, 'the selection copied to the clipboard');
  // Enter right after the paste: the page must send it after the pasted
  // text, though the clipboard is read asynchronously — made slow here
  // (300 ms, as a busy machine can), so a page that sends keys typed
  // meanwhile first fails every time, not now and then.
  await page.evaluate(() => navigator.clipboard.writeText('echo pasted-$((2+3))'));
  await page.evaluate(() => {
    const read = navigator.clipboard.readText.bind(navigator.clipboard);
    navigator.clipboard.readText = () => new Promise((r) => setTimeout(r, 300)).then(read);
  });
  await page.keyboard.press('Control+Shift+V');
  await page.keyboard.press('Enter');
  await waitText(page, 1, '\\npasted-5');
  result.pasted = true;

  step('echo latency');
  // Keystroke to echo, measured in the page: a key's keydown (capture, before
  // xterm sees it) to the moment xterm has parsed the echoed character. One
  // key at a time: the next is pressed once the last one's echo is there.
  await page.keyboard.type(': ');
  await waitText(page, 1, '\\n\\$ : $');
  await page.evaluate(() => {
    const x = document.getElementById('term-panel-1').remoTerminal.xterm;
    const ta = document.querySelector('#term-panel-1 .xterm-helper-textarea');
    window.__lat = { pending: null, samples: [] };
    ta.addEventListener('keydown', (e) => {
      if (e.key.length === 1) window.__lat.pending = { ch: e.key, t: performance.now() };
    }, true);
    x.onWriteParsed(() => {
      const p = window.__lat.pending;
      if (!p) return;
      const b = x.buffer.active;
      const line = b.getLine(b.baseY + b.cursorY)?.translateToString(true) ?? '';
      if (line.endsWith(p.ch)) {
        window.__lat.samples.push(performance.now() - p.t);
        window.__lat.pending = null;
      }
    });
  });
  const keys = 'abcdefghijklmnopqrstuvwxyz0123456789';
  for (let i = 0; i < keys.length; i++) {
    await page.keyboard.press(keys[i]);
    await page.waitForFunction((n) => window.__lat.samples.length > n, i, { timeout: 10_000 });
    await page.waitForTimeout(50); // a typist's pace, not a wait for anything
  }
  const samples = await page.evaluate(() => window.__lat.samples.slice());
  await page.keyboard.press('Enter');
  samples.sort((a, b) => a - b);
  result.echo = {
    n: samples.length,
    median: samples.length ? samples[Math.floor(samples.length / 2)] : null,
    p90: samples.length ? samples[Math.floor(samples.length * 0.9)] : null,
    max: samples.length ? samples[samples.length - 1] : null,
  };

  step('fast producer');
  const cdp = await context.newCDPSession(page);
  await cdp.send('Runtime.enable');
  let heapMax = 0;
  let heapStop = false;
  const heapDone = (async () => {
    while (!heapStop) {
      try {
        const hu = await cdp.send('Runtime.getHeapUsage');
        heapMax = Math.max(heapMax, hu.usedSize + (hu.backingStorageSize ?? 0));
      } catch {
        // busy
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const received0 = await page.evaluate(() => document.getElementById('term-panel-1').remoTerminal.proc.received);
  const t0 = Date.now();
  await runLine(page, `yes | head -c ${bigMb}M; echo "MARK-$((40+2))-END"`);
  await waitText(page, 1, '\\nMARK-42-END', 600_000);
  const seconds = (Date.now() - t0) / 1000;
  heapStop = true;
  await heapDone;
  const received1 = await page.evaluate(() => document.getElementById('term-panel-1').remoTerminal.proc.received);
  // How many "y" lines came through: xterm's buffer keeps the last
  // SCROLLBACK lines; the byte count proves the rest arrived.
  result.producer = {
    bytes: received1 - received0,
    seconds,
    heapMax,
    lastLines: (await text(page, 1)).split('\n').slice(-4),
  };

  step('second tab');
  await page.click('#term-new');
  await page.waitForSelector('#term-panel-2[data-state="running"]', { timeout: 30_000 });
  await recordRaw(page, 2);
  await runLine(page, "PS1='$ '; echo \"two-$((1+1)) pid=$$\"");
  const two = await waitText(page, 2, '\\ntwo-2 pid=(\\d+)');
  await page.click('#term-tab-1');
  await runLine(page, 'echo "one pid=$$"');
  const one = await waitText(page, 1, '\\none pid=(\\d+)');
  result.tabs = {
    pids: [Number(one[1]), Number(two[1])],
    hiddenTwo: await page.evaluate(() => document.getElementById('term-panel-2').hidden),
    count: await page.locator('#term-tabs [role=tab]').count(),
  };
  // Arrow keys move between tabs.
  await page.focus('#term-tab-1');
  await page.keyboard.press('ArrowRight');
  result.tabs.arrowSelected = await page.getAttribute('#term-tab-2', 'aria-selected');

  step('tail view');
  await page.fill('#term-tail-path', tailFile);
  await page.click('#term-tail');
  await page.waitForSelector('#term-panel-3[data-state="running"]', { timeout: 30_000 });
  await waitText(page, 3, 'first-line');
  appendFileSync(tailFile, 'appended-line \u00e9\n');
  await waitText(page, 3, '\\nappended-line \u00e9');
  result.tail = { readOnly: await page.evaluate(() => document.getElementById('term-panel-3').remoTerminal.xterm.options.disableStdin) };

  step('another page and back');
  await page.click('#nav-run');
  await page.waitForSelector('#run-line');
  await page.click('#nav-terminal');
  await page.waitForSelector('#term-panel-3');
  await page.click('#term-tab-1');
  await runLine(page, 'echo "back-$((3*3))"');
  await waitText(page, 1, '\\nback-9');
  result.keptAcrossPages = (await page.locator('#term-tabs [role=tab]').count()) === 3 && (await text(page, 1)).includes('\nMARK-42-END');

  await page.setViewportSize({ width: 1000, height: 700 });
  await page.waitForTimeout(300);
  await runLine(page, "clear; printf '\\033[1;32m%s\\033[0m \\033[33m%s\\033[0m\\n' 'remo terminal' 'h\\303\\251llo \\342\\234\\223'; ls -la --color=always / | head -n 12");
  await page.waitForTimeout(500);
  await shot(page, 'terminal', { fullPage: false });

  step('ctrl-d ends a shell');
  await page.click('#term-tab-2');
  await page.keyboard.press('Control+D');
  await page.waitForSelector('#term-panel-2[data-state="ended"]', { timeout: 20_000 });
  result.ctrlD = await page.textContent('#term-state-2');

  step('shift+tab leaves the terminal');
  await page.click('#term-tab-1');
  await page.keyboard.press('Shift+Tab');
  result.shiftTabLeft = await page.evaluate(() => !document.activeElement?.classList.contains('xterm-helper-textarea'));

  step('narrow screen');
  const narrow = await context.newPage();
  await narrow.setViewportSize({ width: 360, height: 740 });
  await narrow.goto(`${url}#signin`);
  await narrow.waitForSelector('html[data-ready]');
  await narrow.fill('#signin-user', 'tess');
  await narrow.click('#sign-in');
  await narrow.waitForSelector('#signed-in', { timeout: 30_000 });
  await narrow.goto(`${url}#terminal`);
  await narrow.click('#term-new');
  await narrow.waitForSelector('#term-panel-1[data-state="running"]', { timeout: 30_000 });
  await narrow.keyboard.type("PS1='$ '; echo \"narrow $(stty size)\"");
  await narrow.keyboard.press('Enter');
  const nm = await waitText(narrow, 1, '\\nnarrow (\\d+) (\\d+)');
  result.narrow = {
    width: await narrow.evaluate(() => document.documentElement.scrollWidth),
    cols: Number(nm[2]),
  };
  await narrow.close();

  step('csp');
  result.csp = await page.evaluate(() => window.__csp.slice());
  result.styleElements = await page.evaluate(() => document.querySelectorAll('style').length);

  step('a remod without xterm.js');
  // What a remod built without console/node_modules serves: no vendor/
  // files (404, as for any path not in its table). The page says why.
  const bare = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  await bare.route(/\/console\/a\/[^/]+\/vendor\//, (r) => r.fulfill({ status: 404, contentType: 'text/plain', body: 'not found' }));
  const np = await bare.newPage();
  await np.goto(`${url}#terminal`);
  await np.waitForSelector('html[data-ready]');
  await np.waitForFunction(() => /xterm/.test(document.getElementById('term-status')?.textContent ?? ''), null, { timeout: 20_000 });
  result.noXterm = {
    status: await np.textContent('#term-status'),
    newDisabled: await np.isDisabled('#term-new'),
    tailDisabled: await np.isDisabled('#term-tail'),
  };
  await bare.close();
  await browser.close();
});
