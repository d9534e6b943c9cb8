/** The few parts of the `vscode` API the tested modules touch, so unit tests run in plain Node (no VS Code). */

type Listener<T> = (e: T) => void;

export const config: Record<string, unknown> = {};
const listeners: Array<Listener<unknown>> = [];
export const registered = new Map<string, (...args: unknown[]) => unknown>();

export class EventEmitter<T> {
  private ls: Array<Listener<T>> = [];
  event = (l: Listener<T>) => {
    this.ls.push(l);
    return { dispose: () => { this.ls = this.ls.filter((x) => x !== l); } };
  };
  fire(e: T): void {
    this.ls.forEach((l) => l(e));
  }
}

export const trustGranted = new EventEmitter<void>();
export const configChanged = new EventEmitter<{ affectsConfiguration(s: string): boolean }>();
export const shown: Array<{ level: string; message: string }> = [];
export const providers: unknown[] = [];

export const window = {
  createOutputChannel: () => ({ lines: [] as string[], appendLine(l: string) { this.lines.push(l); }, show() {},
    dispose() {} }),
  createStatusBarItem: () => ({ text: '', tooltip: '', show() {}, dispose() {} }),
  showErrorMessage: async (message: string) => { shown.push({ level: 'error', message }); return undefined; },
  showWarningMessage: async (message: string) => { shown.push({ level: 'warning', message }); return undefined; },
  showInformationMessage: async (message: string) => { shown.push({ level: 'info', message }); return undefined; },
};

export enum StatusBarAlignment { Left = 1, Right = 2 }

export const extensions = { getExtension: () => undefined };

export const languages = {
  registerInlineCompletionItemProvider: (_selector: unknown, provider: unknown) => {
    providers.push(provider);
    return { dispose: () => providers.splice(providers.indexOf(provider), 1) };
  },
  onDidChangeDiagnostics: () => ({ dispose() {} }),
};

export const workspace = {
  isTrusted: true,
  workspaceFolders: undefined as unknown,
  onDidGrantWorkspaceTrust: trustGranted.event,
  onDidChangeConfiguration: configChanged.event,
  getConfiguration: (section: string) => ({
    get: <T>(key: string, fallback: T): T => (`${section}.${key}` in config ? config[`${section}.${key}`] as T : fallback),
  }),
  onDidChangeTextDocument: (l: Listener<unknown>) => {
    listeners.push(l);
    return { dispose: () => listeners.splice(listeners.indexOf(l), 1) };
  },
};

export function fireDocumentChange(e: unknown): void {
  listeners.forEach((l) => l(e));
}

export const commands = {
  registerCommand: (id: string, fn: (...args: unknown[]) => unknown) => {
    registered.set(id, fn);
    return { dispose: () => registered.delete(id) };
  },
  executeCommand: (id: string, ...args: unknown[]) => registered.get(id)?.(...args),
};

export class Position {
  constructor(readonly line: number, readonly character: number) {}
}

export class Range {
  constructor(readonly start: Position, readonly end: Position) {}
}

export class InlineCompletionItem {
  command: { title: string; command: string; arguments?: unknown[] } | undefined;
  constructor(readonly insertText: string, readonly range?: Range) {}
}

export enum InlineCompletionTriggerKind { Invoke = 0, Automatic = 1 }
