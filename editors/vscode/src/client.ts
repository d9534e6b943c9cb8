/**
 * The `redline lsp` process: started with the chosen interpreter, restarted when that changes, its log in the
 * "Redline" output channel. Review commands from the server's code lenses/actions pass through `middleware`, which
 * asks the user for the comment text (a language server cannot open a prompt).
 */

import * as vscode from 'vscode';
import { LanguageClient, LanguageClientOptions, ServerOptions, State } from 'vscode-languageclient/node';
import { COMMENT, REVIEW_COMMANDS, STATUS_NOTIFICATION, isPromotion, parseReviewArgs, parseStatus, Status }
  from './messages';
import { Interpreter, checkRedline } from './interpreter';

export interface ServerEvents {
  onStatus(status: Status): void;
  onPromotion(message: string): void;
}

export function clientOptions(output: vscode.OutputChannel): LanguageClientOptions {
  const settings = vscode.workspace.getConfiguration('redline');
  return {
    documentSelector: [{ scheme: 'file' }],
    outputChannel: output,
    traceOutputChannel: output,
    initializationOptions: settings.get<Record<string, unknown>>('serverOptions', {}),
    middleware: {
      executeCommand: async (command, args, next) => {
        if (!(REVIEW_COMMANDS as readonly string[]).includes(command)) return next(command, args);
        const target = parseReviewArgs(args[0]);
        if (!target) return next(command, args);
        if (command === COMMENT && !target.text) {
          const text = await vscode.window.showInputBox({
            title: 'Redline', prompt: 'Tell the model what was wrong with this code', ignoreFocusOut: true,
          });
          if (!text?.trim()) return undefined;
          target.text = text;
        }
        return next(command, [target]);
      },
    },
    initializationFailedHandler: (error) => {
      output.appendLine(`redline lsp failed to initialize: ${String(error)}`);
      return false;
    },
  };
}

/** Start `python -m redline lsp`; undefined (after telling the user how to fix it) when redline is missing. */
export async function startClient(interpreter: Interpreter, cwd: string | undefined, output: vscode.OutputChannel,
  events: ServerEvents): Promise<LanguageClient | undefined> {
  output.appendLine(`Python: ${interpreter.path} (from ${interpreter.source})`);
  const missing = await checkRedline(interpreter.path, cwd);
  if (missing) {
    output.appendLine(`redline is not importable there: ${missing}`);
    const install = `${interpreter.path} -m pip install redline`;
    const pick = await vscode.window.showErrorMessage(
      `Redline is not installed in ${interpreter.path} (${interpreter.source}). Install it with \`${install}\`, `
      + 'or choose another interpreter.', 'Copy install command', 'Set redline.interpreter');
    if (pick === 'Copy install command') await vscode.env.clipboard.writeText(install);
    if (pick === 'Set redline.interpreter') {
      await vscode.commands.executeCommand('workbench.action.openSettings', 'redline.interpreter');
    }
    return undefined;
  }
  // no `transport`: vscode-languageclient would add `--stdio`, and stdio is already `redline lsp`'s default
  const run = { command: interpreter.path, args: ['-m', 'redline', 'lsp'], options: { cwd } };
  const server: ServerOptions = { run, debug: run };
  const client = new LanguageClient('redline', 'Redline', server, clientOptions(output));
  client.onNotification(STATUS_NOTIFICATION, (raw: unknown) => {
    const status = parseStatus(raw);
    if (status) events.onStatus(status);
    else output.appendLine(`ignored a malformed redline/status: ${JSON.stringify(raw)}`);
  });
  client.onNotification('window/showMessage', (p: { type: number; message: string }) => {
    if (isPromotion(p.message)) events.onPromotion(p.message);
    else if (p.type === 1) void vscode.window.showErrorMessage(p.message);
    else if (p.type === 2) void vscode.window.showWarningMessage(p.message);
    else void vscode.window.showInformationMessage(p.message);
  });
  client.onDidChangeState((e) => {
    if (e.newState === State.Stopped) output.appendLine('redline lsp stopped');
  });
  await client.start();
  return client;
}
