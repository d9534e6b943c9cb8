/** The palette commands: mark a selection as model-written, review the span under the cursor, roll back. */

import * as vscode from 'vscode';
import { LanguageClient } from 'vscode-languageclient/node';
import { COMMENT, InsertResult, MARK_BAD, MARK_GOOD, RECORD_INSERT, ReviewCommand, STATUS, markLinesParams,
  markRangeParams, parseReviewArgs } from './messages';
import { runRedline } from './interpreter';

export interface Session {
  client: LanguageClient | undefined;
  python: string | undefined;
  root: string | undefined;
  output: vscode.OutputChannel;
}

function running(s: Session): LanguageClient | undefined {
  if (s.client?.isRunning()) return s.client;
  void vscode.window.showWarningMessage('Redline: the language server is not running (see the Redline output).');
  return undefined;
}

export async function markSelection(s: Session): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  const client = running(s);
  if (!editor || !client) return;
  const uri = client.code2ProtocolConverter.asUri(editor.document.uri);
  const sel = editor.selection;
  const params = sel.isEmpty ? markLinesParams(uri, sel.active.line, sel.active.line)
    : markRangeParams(uri, client.code2ProtocolConverter.asRange(sel));
  try {
    const result = await client.sendRequest('workspace/executeCommand',
      { command: RECORD_INSERT, arguments: [params] }) as InsertResult;
    const r = result.range;
    s.output.appendLine(`marked ${editor.document.uri.fsPath}:${r.start.line + 1}-${r.end.line + 1} as generation `
      + result.generationId);
    vscode.window.setStatusBarMessage(`Redline: lines ${r.start.line + 1}–${r.end.line + 1} marked as model-written`,
      4000);
  } catch (e) {
    void vscode.window.showWarningMessage(`Redline: could not mark the selection: ${(e as Error).message}`);
  }
}

/** Run a review command on the generated span under the cursor (found through the server's code actions). */
export async function review(s: Session, command: ReviewCommand): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  const client = running(s);
  if (!editor || !client) return;
  const c2p = client.code2ProtocolConverter;
  const pos = c2p.asPosition(editor.selection.active);
  const actions = await client.sendRequest('textDocument/codeAction', {
    textDocument: { uri: c2p.asUri(editor.document.uri) }, range: { start: pos, end: pos },
    context: { diagnostics: [] },
  }) as Array<{ command?: { command: string; arguments?: unknown[] } }> | null;
  const action = (actions ?? []).find((a) => a.command?.command === command);
  const args = parseReviewArgs(action?.command?.arguments?.[0]);
  if (!args) {
    void vscode.window.showInformationMessage('Redline: no model-written code under the cursor.');
    return;
  }
  // through the client's command, so the comment prompt in the middleware applies
  await vscode.commands.executeCommand(command, args);
}

export const reviewCommands: Record<string, ReviewCommand> = {
  'redline.tellModel': COMMENT, 'redline.good': MARK_GOOD, 'redline.bad': MARK_BAD,
};

export async function rollback(s: Session): Promise<void> {
  if (!s.python || !s.root) {
    void vscode.window.showWarningMessage('Redline: open a folder inside a repository first.');
    return;
  }
  const ok = await vscode.window.showWarningMessage('Serve the previously promoted adapter again?', { modal: true },
    'Roll back');
  if (ok !== 'Roll back') return;
  try {
    const said = await runRedline(s.python, ['adapters', 'rollback'], s.root);
    s.output.appendLine(`redline adapters rollback: ${said}`);
    void vscode.window.showInformationMessage(`Redline: ${said}`);
    await refreshStatus(s);
  } catch (e) {
    void vscode.window.showErrorMessage(`Redline: rollback failed: ${(e as Error).message}`);
  }
}

export async function refreshStatus(s: Session): Promise<void> {
  if (s.client?.isRunning()) await s.client.sendRequest('workspace/executeCommand', { command: STATUS, arguments: [] });
}
