/**
 * Debouncing for completion requests: each call supersedes the one before, so only the last keystroke of a burst
 * reaches the model, and a request still waiting is dropped the moment the user types on.
 */

export interface Cancellable {
  isCancellationRequested: boolean;
  onCancellationRequested(listener: () => void): { dispose(): void };
}

export class Debouncer {
  private generation = 0;
  private pending: { timer: ReturnType<typeof setTimeout>; resolve: (ok: boolean) => void } | undefined;

  constructor(private readonly setTimer = setTimeout, private readonly clearTimer = clearTimeout) {}

  /** Resolves true after `ms` quiet milliseconds; false when superseded by a later call or cancelled. */
  wait(ms: number, token?: Cancellable): Promise<boolean> {
    this.supersede();
    const mine = ++this.generation;
    if (token?.isCancellationRequested) return Promise.resolve(false);
    return new Promise((resolve) => {
      const sub = token?.onCancellationRequested(() => {
        if (this.pending && mine === this.generation) this.supersede();
      });
      const done = (ok: boolean): void => {
        sub?.dispose();
        resolve(ok);
      };
      const timer = this.setTimer(() => {
        this.pending = undefined;
        done(mine === this.generation && !token?.isCancellationRequested);
      }, ms);
      this.pending = { timer, resolve: done };
    });
  }

  /** The waiting call, if any, resolves false. */
  private supersede(): void {
    if (this.pending) {
      this.clearTimer(this.pending.timer);
      const { resolve } = this.pending;
      this.pending = undefined;
      resolve(false);
    }
  }

  dispose(): void {
    this.generation++;
    this.supersede();
  }
}
