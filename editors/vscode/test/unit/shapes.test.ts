/** The extension builds and parses exactly the messages of the shared fixture the Python side checks. */
import * as assert from 'assert';
import { AcceptTracker } from '../../src/acceptance';
import * as m from '../../src/messages';
import { fixture } from './fixture';

describe('message shapes (tests/editors/messages.json)', () => {
  const uri: string = fixture.uri;
  const c = fixture.completion;

  it('uses the method and command names the fixture uses', () => {
    assert.strictEqual(fixture.didInsertGeneration.method, m.DID_INSERT_GENERATION);
    assert.strictEqual(fixture.forwardedDiagnostics.method, m.FORWARDED_DIAGNOSTICS);
    assert.strictEqual(fixture.status.method, m.STATUS_NOTIFICATION);
    assert.strictEqual(fixture.markSelection.command, m.RECORD_INSERT);
    assert.deepStrictEqual(fixture.codeLens.commands.map((x: { command: string }) => x.command),
      [m.COMMENT, m.MARK_GOOD, m.MARK_BAD]);
  });

  it('builds redline/didInsertGeneration for an accepted completion', () => {
    assert.deepStrictEqual(m.insertParams(uri, c.start, c.text, c.generationId, c.model),
      fixture.didInsertGeneration.params);
  });

  it('omits generationId and model when the endpoint returned none', () => {
    assert.deepStrictEqual(m.insertParams(uri, c.start, 'x = 1\n'),
      { uri, range: { start: c.start }, text: 'x = 1\n' });
  });

  it('reports partial accepts step by step as the fixture says', () => {
    const t = new AcceptTracker();
    t.offer({ uri, offset: c.offset, start: c.start, text: c.text, generationId: c.generationId, model: c.model });
    for (const step of fixture.partialAccept.steps) {
      assert.deepStrictEqual(t.changed(uri, [step.change]) ?? null, step.report);
    }
  });

  it('builds the mark-selection arguments', () => {
    assert.deepStrictEqual(m.markRangeParams(uri, fixture.markSelection.selection), fixture.markSelection.arguments[0]);
    assert.deepStrictEqual(m.markLinesParams(uri, fixture.markLine.line, fixture.markLine.line),
      fixture.markLine.arguments[0]);
  });

  it('reads the review arguments of every lens, and adds the comment text', () => {
    for (const lens of fixture.codeLens.commands) {
      assert.deepStrictEqual(m.parseReviewArgs(lens.arguments[0]), lens.arguments[0]);
    }
    const [arg] = fixture.review.arguments;
    assert.deepStrictEqual(m.reviewArgs(arg.uri, arg.generationId, arg.text), arg);
    assert.strictEqual(m.parseReviewArgs({ uri, generationId: '' }), undefined);
    assert.strictEqual(m.parseReviewArgs([uri]), undefined);
  });

  it('parses redline/status and shows queue, adapter and daemon state', () => {
    const status = m.parseStatus(fixture.status.params);
    assert.deepStrictEqual(status, fixture.status.params);
    const { text, tooltip } = m.statusText(status);
    assert.strictEqual(text, '$(pulse) 3 queued · v0002 · idle');
    assert.match(tooltip, /Adapter: v0002 fixes 12 of 16 held-out red lines .*: promoted/);
    assert.match(tooltip, /Last training: promoted, v0002 at 2026-11-30T02:00:00Z/);
    assert.match(tooltip, /hindsight probe \(16 failed records.*the teacher uses `template`/);
    const figures = m.statusText(m.parseStatus({ ...fixture.status.params, gateSummary: null })).tooltip;
    assert.match(figures, /gate: pass@1 0\.5 → 0\.75/);  // an adapter gated before summaries existed
  });

  it('shows the base model and no daemon for a fresh repository', () => {
    const fresh = { ...fixture.status.params, adapter: null, gate: [], gateSummary: null, lastTraining: null,
      nextTraining: null, daemon: null };
    assert.strictEqual(m.statusText(m.parseStatus(fresh)).text, '$(pulse) 3 queued · base model · no daemon');
    assert.match(m.statusText(undefined, true).text, /restricted/);
  });

  it('rejects malformed status payloads', () => {
    const p = fixture.status.params;
    for (const bad of [null, [], { ...p, queued: -1 }, { ...p, repo: 3 }, { ...p, adapter: 2 },
      { ...p, lastTraining: 'x' }]) {
      assert.strictEqual(m.parseStatus(bad), undefined, JSON.stringify(bad));
    }
  });

  it('recognises the promotion message with its gate figures', () => {
    const gate = m.gateFigures(fixture.status.params.gate);
    assert.strictEqual(gate, 'pass@1 0.5 → 0.75');
    assert.ok(m.isPromotion(`Redline: adapter v0002 promoted for fixture — ${gate}`));
    assert.ok(!m.isPromotion('Redline: something else'));
  });
});
