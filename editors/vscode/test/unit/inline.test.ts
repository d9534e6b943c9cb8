/** The inline completion provider against the stubbed `vscode` module and a fake completion server. */
import * as assert from 'assert';
import { ACCEPT_COMMAND, RedlineInlineProvider } from '../../src/inline';
import { InsertParams } from '../../src/messages';
import { Token } from './debounce.test';
import * as vscode from './vscode-stub';

const URI = 'file:///r/app.py';
const TEXT = 'def add(a, b):\n    \n';

function doc(text = TEXT) {
  return {
    uri: { toString: () => URI },
    getText: () => text,
    offsetAt: (p: vscode.Position) => text.split('\n').slice(0, p.line).reduce((n, l) => n + l.length + 1, 0)
      + p.character,
  };
}

interface Call { body: Record<string, unknown>; signal: AbortSignal }

function fakeServer(completion: string, delayMs = 0): Call[] {
  const calls: Call[] = [];
  globalThis.fetch = (async (_url: string, init: RequestInit) => {
    calls.push({ body: JSON.parse(String(init.body)), signal: init.signal as AbortSignal });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, delayMs);
      init.signal?.addEventListener('abort', () => { clearTimeout(t); reject(new Error('aborted')); });
    });
    return new Response(JSON.stringify({ id: 'cmpl-9', choices: [{ text: completion }] }),
      { headers: { 'X-Redline-Generation': 'gen-42' } });
  }) as unknown as typeof fetch;
  return calls;
}

const auto = { triggerKind: vscode.InlineCompletionTriggerKind.Automatic, selectedCompletionInfo: undefined };
const at = new vscode.Position(1, 4);

describe('RedlineInlineProvider', () => {
  let reports: InsertParams[];
  let provider: RedlineInlineProvider;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const provide = (d: any, pos: vscode.Position, token: Token) => provider.provideInlineCompletionItems(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    d, pos as any, auto as any, token as any);

  beforeEach(() => {
    vscode.config['redline.inlineCompletions.debounceMs'] = 20;
    vscode.config['redline.inlineCompletions.prefixChars'] = 100;
    reports = [];
    provider = new RedlineInlineProvider({ endpoint: async () => 'http://127.0.0.1:1', report: (p) => reports.push(p),
      log: () => undefined });
  });
  afterEach(() => provider.dispose());

  it('sends one FIM request for a burst of keystrokes, with prefix and suffix', async () => {
    const calls = fakeServer('return a + b');
    const tokens = [new Token(), new Token(), new Token()];
    const first = provide(doc(), at, tokens[0]);
    tokens[0].cancel();
    const second = provide(doc(), at, tokens[1]);
    tokens[1].cancel();
    const items = await provide(doc(), at, tokens[2]);
    assert.deepStrictEqual([await first, await second], [undefined, undefined]);
    assert.strictEqual(calls.length, 1);
    assert.deepStrictEqual([calls[0].body.prompt, calls[0].body.suffix], ['def add(a, b):\n    ', '\n']);
    assert.strictEqual(items?.[0].insertText, 'return a + b');
    assert.strictEqual(items?.[0].command?.command, ACCEPT_COMMAND);
  });

  it('aborts the request in flight when the user types on', async () => {
    const calls = fakeServer('never', 2000);
    const token = new Token();
    const pending = provide(doc(), at, token);
    while (calls.length === 0) await new Promise((r) => setTimeout(r, 5));
    token.cancel();
    assert.strictEqual(await pending, undefined);
    assert.ok(calls[0].signal.aborted);
  });

  it('reports a full accept (the item command) with the generation id from the header', async () => {
    fakeServer('return a + b');
    const [item] = (await provide(doc(), at, new Token()))!;
    await vscode.commands.executeCommand(item.command!.command, ...item.command!.arguments!);
    assert.deepStrictEqual(reports, [{ uri: URI, range: { start: { line: 1, character: 4 } }, text: 'return a + b',
      generationId: 'gen-42' }]);
  });

  it('reports a word accept and offers the rest without a new request', async () => {
    const calls = fakeServer('return a + b');
    await provide(doc(), at, new Token());
    const offset = doc().offsetAt(at);
    vscode.fireDocumentChange({ document: { uri: { toString: () => URI } },
      contentChanges: [{ rangeOffset: offset, rangeLength: 0, text: 'return ' }] });
    assert.deepStrictEqual(reports.map((r) => [r.text, r.generationId]), [['return ', 'gen-42']]);
    const after = doc('def add(a, b):\n    return \n');
    const rest = await provide(after, new vscode.Position(1, 11), new Token());
    assert.strictEqual(rest?.[0].insertText, 'a + b');
    assert.strictEqual(calls.length, 1);
  });
});
