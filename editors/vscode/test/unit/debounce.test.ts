/** The debouncer lets only the last call of a burst through and drops a waiting call on cancellation. */
import * as assert from 'assert';
import { Debouncer } from '../../src/debounce';

export class Token {
  isCancellationRequested = false;
  private listeners: Array<() => void> = [];
  onCancellationRequested(l: () => void) {
    this.listeners.push(l);
    return { dispose: () => { this.listeners = this.listeners.filter((x) => x !== l); } };
  }
  cancel(): void {
    this.isCancellationRequested = true;
    this.listeners.forEach((l) => l());
  }
}

describe('Debouncer', () => {
  it('resolves only the last of a burst', async () => {
    const d = new Debouncer();
    const results = await Promise.all([d.wait(20), d.wait(20), d.wait(20)]);
    assert.deepStrictEqual(results, [false, false, true]);
  });

  it('waits the full quiet period', async () => {
    const d = new Debouncer();
    const t0 = Date.now();
    assert.strictEqual(await d.wait(40), true);
    assert.ok(Date.now() - t0 >= 35);
  });

  it('resolves false at once when cancelled while waiting, or already cancelled', async () => {
    const d = new Debouncer();
    const token = new Token();
    const t0 = Date.now();
    const waiting = d.wait(1000, token);
    token.cancel();
    assert.strictEqual(await waiting, false);
    assert.ok(Date.now() - t0 < 500);
    assert.strictEqual(await d.wait(10, token), false);
  });

  it('a cancelled older token does not drop a newer wait', async () => {
    const d = new Debouncer();
    const older = new Token();
    const first = d.wait(10, older);
    const second = d.wait(10, new Token());
    older.cancel();
    assert.deepStrictEqual(await Promise.all([first, second]), [false, true]);
  });

  it('dispose drops the waiting call', async () => {
    const d = new Debouncer();
    const waiting = d.wait(1000);
    d.dispose();
    assert.strictEqual(await waiting, false);
  });
});
