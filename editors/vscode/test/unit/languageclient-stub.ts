/** Stands in for `vscode-languageclient/node` in the activation tests: records what would be started. */

export enum State { Stopped = 1, Starting = 3, Running = 2 }

export class LanguageClient {
  static created: LanguageClient[] = [];
  running = false;
  stopped = false;

  constructor(readonly id: string, readonly name: string, readonly server: { run: { command: string; args: string[] } },
    readonly options: unknown) {
    LanguageClient.created.push(this);
  }

  onNotification(): void {}
  onDidChangeState(): void {}
  async start(): Promise<void> { this.running = true; }
  async stop(): Promise<void> { this.running = false; this.stopped = true; }
  isRunning(): boolean { return this.running; }
}
