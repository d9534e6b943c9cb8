/**
 * Redline for VS Code. Composes the pieces: the `redline lsp` client (client.ts), inline completions from
 * `redline serve` whose accepted text is reported as generations (inline.ts), forwarded diagnostics (forward.ts),
 * the status bar and the palette commands. In an untrusted workspace nothing runs until the folder is trusted.
 */

import * as vscode from 'vscode';
import { PythonExtension } from '@vscode/python-extension';
import { LanguageClient } from 'vscode-languageclient/node';
import { Session, markSelection, refreshStatus, review, reviewCommands, rollback } from './commands';
import { startClient } from './client';
import { discoverServe, stateDir } from './endpoint';
import { forwardDiagnostics } from './forward';
import { RedlineInlineProvider } from './inline';
import { pythonExtension, resolveInterpreter } from './interpreter';
import { DID_INSERT_GENERATION, InsertParams, Status, statusText } from './messages';

class Redline implements Session, vscode.Disposable {
  client: LanguageClient | undefined;
  python: string | undefined;
  root: string | undefined;
  private state: Promise<string> | undefined;
  private pythonApi: PythonExtension | undefined;
  private readonly running: vscode.Disposable[] = [];
  private starting: Promise<void> = Promise.resolve();

  constructor(readonly output: vscode.OutputChannel, readonly bar: vscode.StatusBarItem) {}

  showStatus(status: Status | undefined): void {
    const { text, tooltip } = statusText(status, !vscode.workspace.isTrusted);
    this.bar.text = text;
    this.bar.tooltip = tooltip;
    this.bar.show();
  }

  /** (Re)start everything; serialised, so quick setting changes do not start two servers. */
  restart(): Promise<void> {
    this.starting = this.starting.then(() => this.stop()).then(() => this.start()).catch((e) => {
      this.output.appendLine(`start failed: ${(e as Error).stack ?? String(e)}`);
    });
    return this.starting;
  }

  private async start(): Promise<void> {
    this.showStatus(undefined);
    if (!vscode.workspace.isTrusted) return;
    const folder = vscode.workspace.workspaceFolders?.[0];
    this.root = folder?.uri.scheme === 'file' ? folder.uri.fsPath : undefined;
    this.pythonApi ??= await pythonExtension();
    const interpreter = await resolveInterpreter(this.pythonApi, folder?.uri);
    this.python = interpreter.path;
    this.state = undefined;
    this.client = await startClient(interpreter, this.root, this.output, {
      onStatus: (s) => this.showStatus(s),
      onPromotion: (message) => void this.promoted(message),
    });
    if (!this.client) {
      this.bar.text = '$(error) Redline';
      this.bar.tooltip = `redline is not installed in ${interpreter.path}`;
      return;
    }
    const settings = vscode.workspace.getConfiguration('redline');
    if (settings.get<boolean>('forwardDiagnostics', true)) this.running.push(forwardDiagnostics(this.client));
    if (settings.get<boolean>('inlineCompletions.enabled', true)) {
      const provider = new RedlineInlineProvider({
        endpoint: () => this.endpoint(),
        report: (p) => this.report(p),
        log: (line) => this.output.appendLine(line),
      });
      this.running.push(provider, vscode.languages.registerInlineCompletionItemProvider({ scheme: 'file' }, provider));
    }
  }

  private async stop(): Promise<void> {
    this.running.splice(0).forEach((d) => d.dispose());
    const client = this.client;
    this.client = undefined;
    if (client) await client.stop().catch(() => undefined);
  }

  /** `redline.endpoint`, else the `redline serve` running for this repository (none: no completions). */
  private async endpoint(): Promise<string | undefined> {
    const configured = vscode.workspace.getConfiguration('redline').get<string>('endpoint', '').trim();
    if (configured) return configured;
    if (!this.python || !this.root) return undefined;
    this.state ??= stateDir(this.python, this.root);
    try {
      return await discoverServe(await this.state);
    } catch (e) {
      this.output.appendLine(`cannot find this repository's state directory: ${(e as Error).message}`);
      return undefined;
    }
  }

  private report(params: InsertParams): void {
    if (!this.client?.isRunning()) return;
    void this.client.sendNotification(DID_INSERT_GENERATION, params);
    const chars = params.text?.length ?? 0;
    this.output.appendLine(`accepted ${chars} characters of generation ${params.generationId ?? '(unrecorded)'} at `
      + `${params.uri}:${params.range.start.line + 1}:${params.range.start.character + 1}`);
  }

  private async promoted(message: string): Promise<void> {
    const pick = await vscode.window.showInformationMessage(message, 'Roll back', 'Show log');
    if (pick === 'Roll back') await rollback(this);
    if (pick === 'Show log') this.output.show();
  }

  watchInterpreter(): vscode.Disposable | undefined {
    return this.pythonApi?.environments.onDidChangeActiveEnvironmentPath(() => {
      if (!vscode.workspace.getConfiguration('redline').get<string>('interpreter', '')) void this.restart();
    });
  }

  async dispose(): Promise<void> {
    await this.stop();
  }
}

async function menu(r: Redline): Promise<void> {
  const items: Array<vscode.QuickPickItem & { command: string }> = [
    { label: 'Refresh status', command: 'redline.refreshStatus' },
    { label: 'Roll back to the previous adapter', command: 'redline.rollback' },
    { label: 'Show log', command: 'redline.showLog' },
    { label: 'Restart the language server', command: 'redline.restart' },
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Redline' });
  if (pick) await vscode.commands.executeCommand(pick.command);
}

let instance: Redline | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('Redline');
  const bar = vscode.window.createStatusBarItem('redline.status', vscode.StatusBarAlignment.Left, 0);
  bar.name = 'Redline';
  bar.command = 'redline.menu';
  const r = new Redline(output, bar);
  instance = r;
  const command = (id: string, fn: () => unknown): void => {
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  };
  command('redline.markSelection', () => markSelection(r));
  for (const [id, name] of Object.entries(reviewCommands)) command(id, () => review(r, name));
  command('redline.rollback', () => rollback(r));
  command('redline.refreshStatus', () => refreshStatus(r));
  command('redline.restart', () => r.restart());
  command('redline.showLog', () => output.show());
  command('redline.menu', () => menu(r));
  context.subscriptions.push(output, bar,
    vscode.workspace.onDidGrantWorkspaceTrust(() => void r.restart()),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('redline') && !e.affectsConfiguration('redline.trace')) void r.restart();
    }));
  await r.restart();
  const watch = r.watchInterpreter();
  if (watch) context.subscriptions.push(watch);
}

export async function deactivate(): Promise<void> {
  await instance?.dispose();
  instance = undefined;
}
