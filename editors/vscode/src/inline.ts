/**
 * Inline completions from `redline serve` (or `redline.endpoint`): a fill-in-the-middle request per pause in
 * typing, cancelled when the user types on; what the user accepts is reported to the language server as
 * `redline/didInsertGeneration` with the generation id the server returned (see `acceptance.ts`).
 */

import * as vscode from 'vscode';
import { AcceptTracker } from './acceptance';
import { Debouncer } from './debounce';
import { EndpointKind, FimSettings, fimContext, requestCompletion } from './fim';
import { InsertParams } from './messages';

export const ACCEPT_COMMAND = 'redline.inlineAccepted';

export interface InlineDeps {
  endpoint(document: vscode.TextDocument): Promise<string | undefined>;
  report(params: InsertParams): void;
  log(line: string): void;
}

export function fimSettings(endpoint: string): FimSettings {
  const c = vscode.workspace.getConfiguration('redline');
  return {
    endpoint,
    kind: c.get<EndpointKind>('endpointKind', 'openai'),
    model: c.get<string>('model', ''),
    maxTokens: c.get<number>('inlineCompletions.maxTokens', 96),
    prefixChars: c.get<number>('inlineCompletions.prefixChars', 4096),
    suffixChars: c.get<number>('inlineCompletions.suffixChars', 1024),
  };
}

export class RedlineInlineProvider implements vscode.InlineCompletionItemProvider, vscode.Disposable {
  readonly tracker = new AcceptTracker();
  private readonly debouncer = new Debouncer();
  private readonly subscriptions: vscode.Disposable[] = [];
  private lastError = '';

  constructor(private readonly deps: InlineDeps) {
    this.subscriptions.push(
      vscode.commands.registerCommand(ACCEPT_COMMAND, (key: number) => {
        const params = this.tracker.acceptedAll(key);
        if (params) deps.report(params);
      }),
      vscode.workspace.onDidChangeTextDocument((e) => {
        const params = this.tracker.changed(e.document.uri.toString(), e.contentChanges);
        if (params) deps.report(params);
      }),
    );
  }

  async provideInlineCompletionItems(document: vscode.TextDocument, position: vscode.Position,
    context: vscode.InlineCompletionContext, token: vscode.CancellationToken):
    Promise<vscode.InlineCompletionItem[] | undefined> {
    const offset = document.offsetAt(position);
    const uri = document.uri.toString();
    const more = this.tracker.continuation(uri, offset);
    if (more) return [this.item(more.rest, position, more.key)];
    if (context.selectedCompletionInfo) return undefined;
    const ms = vscode.workspace.getConfiguration('redline').get<number>('inlineCompletions.debounceMs', 250);
    const explicit = context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke;
    if (!(await this.debouncer.wait(explicit ? 0 : ms, token))) return undefined;
    const endpoint = await this.deps.endpoint(document);
    if (!endpoint || token.isCancellationRequested) return undefined;
    const settings = fimSettings(endpoint);
    const { prefix, suffix } = fimContext(document.getText(), offset, settings.prefixChars, settings.suffixChars);
    const abort = new AbortController();
    const sub = token.onCancellationRequested(() => abort.abort());
    try {
      const completion = await requestCompletion(settings, prefix, suffix, abort.signal);
      if (token.isCancellationRequested || !completion.text.trim()) return undefined;
      const key = this.tracker.offer({
        uri, offset, start: { line: position.line, character: position.character }, text: completion.text,
        generationId: completion.generationId, model: completion.model || settings.model || undefined,
      });
      this.lastError = '';
      return [this.item(completion.text, position, key)];
    } catch (e) {
      const message = (e as Error).message;
      if (!abort.signal.aborted && message !== this.lastError) this.deps.log(`completion failed: ${message}`);
      this.lastError = message;
      return undefined;
    } finally {
      sub.dispose();
    }
  }

  private item(text: string, position: vscode.Position, key: number): vscode.InlineCompletionItem {
    const item = new vscode.InlineCompletionItem(text, new vscode.Range(position, position));
    item.command = { title: 'Redline: completion accepted', command: ACCEPT_COMMAND, arguments: [key] };
    return item;
  }

  dispose(): void {
    this.debouncer.dispose();
    this.subscriptions.forEach((s) => s.dispose());
  }
}
