// Drives a running code-server with Debian's chromium (playwright-core, no browser download): waits for the
// Redline status bar item (the extension activated and `redline lsp` answered), accepts an inline completion
// with Tab, marks a line as model-written from the command palette, and saves screenshots.
// Usage: node drive.mjs '{"url": ..., "folder": ..., "artifacts": ..., "complete": true}'
// Prints one JSON line: {"status": <status bar text>, "ghost": <suggested text>, "steps": [...]}.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync } from 'fs';
import { tmpdir } from 'os';
import path from 'path';

const opts = JSON.parse(process.argv[2]);
const steps = [];
const step = (s) => { steps.push(s); process.stderr.write(`e2e: ${s}\n`); };
mkdirSync(opts.artifacts, { recursive: true });

const context = await chromium.launchPersistentContext(mkdtempSync(path.join(tmpdir(), 'redline-chromium-')), {
  executablePath: opts.chromium || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = context.pages()[0] ?? await context.newPage();
const result = { steps };
try {
  await page.goto(`${opts.url}/?folder=${encodeURIComponent(opts.folder)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 120_000 });
  step('workbench loaded');
  const status = page.locator('.statusbar-item', { hasText: 'queued' });
  await status.first().waitFor({ timeout: 120_000 });
  step(`status bar: ${await status.first().innerText()}`);

  await page.keyboard.press('Control+P');
  await page.keyboard.type('app.py');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'app.py' }).first().waitFor({ timeout: 30_000 });
  await page.keyboard.press('Enter');
  const editor = page.locator('.monaco-editor .view-lines').first();
  await editor.waitFor({ timeout: 30_000 });
  await editor.click();
  step('app.py open');

  if (opts.complete) {
    await page.keyboard.press('Control+End');
    await page.keyboard.type('y = ', { delay: 50 });
    const ghost = page.locator('.ghost-text-decoration, .ghost-text');
    try {
      await ghost.first().waitFor({ timeout: 30_000 });
    } catch {
      step('no suggestion after typing; invoking inline suggest explicitly');
      await page.keyboard.press('Alt+Backslash');
      await ghost.first().waitFor({ timeout: 30_000 });
    }
    result.ghost = await ghost.first().innerText();
    await page.screenshot({ path: path.join(opts.artifacts, 'suggestion.png') });
    step(`suggestion shown: ${JSON.stringify(result.ghost)}`);
    await page.keyboard.press('Tab');
    await ghost.first().waitFor({ state: 'detached', timeout: 10_000 }).catch(() => undefined);
    step('accepted with Tab');
    await page.keyboard.press('Control+S');

    // a second completion, taken word by word (Ctrl+Right, VS Code's "accept next word"), then dismissed
    await page.keyboard.press('End');
    await page.keyboard.press('Enter');
    await page.keyboard.type('z = ', { delay: 50 });
    await ghost.first().waitFor({ timeout: 30_000 });
    result.ghost2 = await ghost.first().innerText();
    for (let i = 0; i < 3; i++) {
      await page.keyboard.press('Control+ArrowRight');
      await page.waitForTimeout(300);
    }
    await page.keyboard.press('Escape');
    step(`accepted three words of ${JSON.stringify(result.ghost2)}`);
    await page.keyboard.press('Control+S');
  }

  // mark line 1 (`import math`) as model-written through the command palette
  await page.keyboard.press('Control+Home');
  await page.keyboard.press('Shift+End');
  await page.keyboard.press('F1');
  await page.keyboard.type('Redline: Mark selection as model-written');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Mark selection as model-written' }).first()
    .waitFor({ timeout: 15_000 });
  await page.keyboard.press('Enter');
  step('marked line 1');
  await page.keyboard.press('Control+S');

  // review through the code lenses of a tracked span: a comment (the extension asks for the text), then "good"
  const lens = async (text) => {
    const first = page.locator('.codelens-decoration a', { hasText: text }).first();
    await first.waitFor({ timeout: 30_000 });
    return first;
  };
  await (await lens('tell the model what was wrong')).click();
  await page.locator('.quick-input-widget input').waitFor({ timeout: 15_000 });
  await page.keyboard.type(opts.comment);
  await page.keyboard.press('Enter');
  await (await lens('Mark good')).click();
  step('commented and marked good through the lenses');

  // the server sends redline/status after each save: wait for the count to move, then photograph the bar
  await page.waitForTimeout(3000);
  result.status = await status.first().innerText();
  await page.locator('.part.statusbar').screenshot({ path: path.join(opts.artifacts, 'statusbar.png') });
  await status.first().hover();
  await page.waitForTimeout(1500);
  await page.screenshot({ path: path.join(opts.artifacts, 'workbench.png') });
  step(`final status bar: ${result.status}`);
} catch (e) {
  result.error = String(e?.stack || e);
  await page.screenshot({ path: path.join(opts.artifacts, 'failure.png') }).catch(() => undefined);
} finally {
  await context.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(result.error ? 1 : 0);
