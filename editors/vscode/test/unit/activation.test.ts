/** Activation against the stubbed `vscode`: restricted mode, the missing-redline notification, restarts. */
import * as assert from 'assert';
import { chmodSync, mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { activate, deactivate } from '../../src/extension';
import { LanguageClient } from './languageclient-stub';
import * as vscode from './vscode-stub';

/** An executable standing in for a Python with redline installed (the import check exits 0). */
function fakePython(): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'redline-py-')), 'python');
  writeFileSync(file, '#!/bin/sh\nexit 0\n');
  chmodSync(file, 0o755);
  return file;
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), 'condition not reached');
}

describe('activation', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let context: any;

  beforeEach(() => {
    context = { subscriptions: [] };
    LanguageClient.created = [];
    vscode.shown.length = 0;
    vscode.registered.clear();
    delete vscode.config['redline.interpreter'];
  });
  afterEach(async () => {
    await deactivate();
    context.subscriptions.forEach((d: { dispose(): void }) => d.dispose());
    vscode.workspace.isTrusted = true;
  });

  it('runs nothing in an untrusted workspace, and starts once the folder is trusted', async () => {
    vscode.workspace.isTrusted = false;
    vscode.config['redline.interpreter'] = '/nonexistent/python3';
    await activate(context);
    assert.strictEqual(LanguageClient.created.length, 0);
    assert.strictEqual(vscode.providers.length, 0);
    assert.strictEqual(vscode.shown.length, 0, 'not even the interpreter was tried');

    vscode.workspace.isTrusted = true;
    vscode.trustGranted.fire();
    await until(() => vscode.shown.length > 0);
    // the interpreter was tried now: it lacks redline, so the user is told which one and how to fix it
    assert.strictEqual(vscode.shown[0].level, 'error');
    assert.match(vscode.shown[0].message, /Redline is not installed in \/nonexistent\/python3 .*pip install redline/);
    assert.strictEqual(LanguageClient.created.length, 0);
    assert.strictEqual(vscode.providers.length, 0);
  });

  it('starts `python -m redline lsp` and the completion provider, and restarts on a new interpreter', async () => {
    const first = fakePython();
    vscode.config['redline.interpreter'] = first;
    await activate(context);
    assert.strictEqual(LanguageClient.created.length, 1);
    assert.deepStrictEqual(LanguageClient.created[0].server.run.command, first);
    assert.deepStrictEqual(LanguageClient.created[0].server.run.args, ['-m', 'redline', 'lsp']);
    assert.strictEqual(vscode.providers.length, 1);

    const second = fakePython();
    vscode.config['redline.interpreter'] = second;
    vscode.configChanged.fire({ affectsConfiguration: (s: string) => s === 'redline' || s === 'redline.interpreter' });
    await until(() => LanguageClient.created.length === 2);
    assert.ok(LanguageClient.created[0].stopped, 'the old server was stopped');
    assert.strictEqual(LanguageClient.created[1].server.run.command, second);
    assert.strictEqual(vscode.providers.length, 1, 'one provider, not one per start');
  });
});
