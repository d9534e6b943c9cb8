/** Partial-accept bookkeeping beyond the fixture's happy path. */
import * as assert from 'assert';
import { AcceptTracker, Offer } from '../../src/acceptance';

const URI = 'file:///r/a.py';
const offer: Offer = { uri: URI, offset: 10, start: { line: 2, character: 4 }, text: 'return a + b\n',
  generationId: 'g1' };
const add = (at: number, text: string) => [{ rangeOffset: at, rangeLength: 0, text }];

describe('AcceptTracker', () => {
  it('reports the whole text when the item command runs', () => {
    const t = new AcceptTracker();
    const key = t.offer(offer);
    assert.deepStrictEqual(t.acceptedAll(key),
      { uri: URI, range: { start: offer.start }, text: offer.text, generationId: 'g1' });
    assert.strictEqual(t.acceptedAll(key), undefined, 'reported once');
  });

  it('ignores a stale key from an older offer', () => {
    const t = new AcceptTracker();
    const old = t.offer(offer);
    t.offer({ ...offer, generationId: 'g2' });
    assert.strictEqual(t.acceptedAll(old), undefined);
  });

  it('counts typed-through characters only once a longer accept confirms them', () => {
    const t = new AcceptTracker();
    t.offer(offer);
    assert.strictEqual(t.changed(URI, add(10, 'r')), undefined);
    assert.strictEqual(t.changed(URI, add(11, 'e')), undefined);
    assert.strictEqual(t.changed(URI, add(12, 'turn'))?.text, 'return');
  });

  it('after a partial accept, the command reports the rest too', () => {
    const t = new AcceptTracker();
    const key = t.offer(offer);
    assert.strictEqual(t.changed(URI, add(10, 'return '))?.text, 'return ');
    assert.deepStrictEqual(t.continuation(URI, 17), { key, offer: { ...offer, key, accepted: 7, reported: 7 },
      rest: 'a + b\n' });
    assert.strictEqual(t.acceptedAll(key)?.text, offer.text);
  });

  it('drops the offer on a change that is not the suggestion', () => {
    const t = new AcceptTracker();
    const key = t.offer(offer);
    assert.strictEqual(t.changed(URI, add(10, 'yield')), undefined);
    assert.strictEqual(t.acceptedAll(key), undefined);
    assert.strictEqual(t.continuation(URI, 10), undefined);
  });

  it('drops the offer on a deletion or an edit elsewhere, ignores other documents', () => {
    const t = new AcceptTracker();
    t.offer(offer);
    assert.strictEqual(t.changed('file:///r/other.py', add(0, 'xx')), undefined);
    assert.ok(t.continuation(URI, 10));
    t.changed(URI, [{ rangeOffset: 3, rangeLength: 1, text: '' }]);
    assert.strictEqual(t.continuation(URI, 10), undefined);
  });

  it('does not report whitespace-only accepts (the server refuses empty spans)', () => {
    const t = new AcceptTracker();
    t.offer({ ...offer, text: '\n    pass\n' });
    assert.strictEqual(t.changed(URI, add(10, '\n    ')), undefined);
    assert.strictEqual(t.changed(URI, add(15, 'pass\n'))?.text, '\n    pass\n');
  });
});
