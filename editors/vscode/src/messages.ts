/**
 * The Redline language server's custom protocol, as plain data (no `vscode` import, so the shapes are unit-tested
 * against `tests/editors/messages.json`, the fixture the Python side checks against the real server).
 * See docs/editors.md for what each message means.
 */

export const DID_INSERT_GENERATION = 'redline/didInsertGeneration';
export const FORWARDED_DIAGNOSTICS = 'redline/diagnostics';
export const STATUS_NOTIFICATION = 'redline/status';

/** `workspace/executeCommand` names the server registers. */
export const RECORD_INSERT = 'redline.recordInsert';
export const COMMENT = 'redline.comment';
export const MARK_GOOD = 'redline.markGood';
export const MARK_BAD = 'redline.markBad';
export const STATUS = 'redline.status';
export const REVIEW_COMMANDS = [COMMENT, MARK_GOOD, MARK_BAD] as const;
export type ReviewCommand = (typeof REVIEW_COMMANDS)[number];

export interface Position { line: number; character: number }
export interface Range { start: Position; end: Position }

/** `redline/didInsertGeneration` (and the one argument of `redline.recordInsert`). */
export interface InsertParams {
  generationId?: string;
  uri: string;
  range: { start: Position; end?: Position };
  text?: string;
  model?: string;
}

/** What `redline.recordInsert` answers. */
export interface InsertResult { generationId: string; known: boolean; range: Range }

/** `redline/diagnostics`: what other extensions published for one document, as LSP diagnostics. */
export interface ForwardedDiagnostics { uri: string; diagnostics: unknown[]; source?: string }

/** The argument of a review command; `text` is what the user typed for `redline.comment`. */
export interface ReviewArgs { uri: string; generationId: string; text?: string }

/** One row of the evaluation gate that admitted the served adapter. */
export interface GateRow { metric: string; before: number; after: number; ok?: boolean }

/** The last training run (`result`: promoted, refused, nothing, failed, skipped). */
export interface Training { at?: string; result?: string; reason?: string | null; version?: string | null;
  records?: number; probe?: string | null }

/** `redline/status`: the queue's counts and the repository's training status record. */
export interface Status {
  repo: string;
  queued: number;
  generations: number;
  feedback: number;
  adapter: string | null;
  gate: GateRow[];
  /** The gate's verdict on the served adapter in words ("v0007 fixes 11 of 16 held-out red lines …"). */
  gateSummary: string | null;
  lastTraining: Training | null;
  nextTraining: string | null;
  /** The training daemon's state for this repo (idle, waiting, training, backoff); null when none runs. */
  daemon: string | null;
}

/** Where generated text now begins, and the text, for a generation the completion server recorded (or not). */
export function insertParams(uri: string, start: Position, text: string, generationId?: string, model?: string):
InsertParams {
  const params: InsertParams = { uri, range: { start: { line: start.line, character: start.character } }, text };
  if (generationId) params.generationId = generationId;
  if (model) params.model = model;
  return params;
}

/** Whole lines `[first, last]` (0-based, inclusive) marked as model-written: text pasted from another assistant. */
export function markLinesParams(uri: string, first: number, last: number): InsertParams {
  return { uri, range: { start: { line: first, character: 0 }, end: { line: last + 1, character: 0 } } };
}

/** An exact selection marked as model-written. */
export function markRangeParams(uri: string, range: Range): InsertParams {
  return { uri, range: { start: { ...range.start }, end: { ...range.end } } };
}

export function reviewArgs(uri: string, generationId: string, text?: string): ReviewArgs {
  return text === undefined ? { uri, generationId } : { uri, generationId, text };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

const optString = (v: unknown): v is string | null | undefined => v === null || v === undefined || typeof v === 'string';

function parseGate(raw: unknown): GateRow[] {
  if (!Array.isArray(raw)) return [];
  return raw.filter((r): r is GateRow => isObject(r) && typeof r.metric === 'string'
    && typeof r.before === 'number' && typeof r.after === 'number');
}

/** A `redline/status` payload, or undefined when it does not have the documented shape. */
export function parseStatus(raw: unknown): Status | undefined {
  if (!isObject(raw) || typeof raw.repo !== 'string') return undefined;
  if (![raw.queued, raw.generations, raw.feedback].every(isCount)) return undefined;
  if (!optString(raw.adapter) || !optString(raw.daemon) || !optString(raw.nextTraining)
    || !optString(raw.gateSummary)) return undefined;
  if (raw.lastTraining !== null && raw.lastTraining !== undefined && !isObject(raw.lastTraining)) return undefined;
  return {
    repo: raw.repo, queued: raw.queued as number, generations: raw.generations as number,
    feedback: raw.feedback as number, adapter: raw.adapter ?? null, gate: parseGate(raw.gate),
    gateSummary: raw.gateSummary ?? null,
    lastTraining: (raw.lastTraining as Training | undefined) ?? null, nextTraining: raw.nextTraining ?? null,
    daemon: raw.daemon ?? null,
  };
}

/** "metric before → after" for each gate row, as the server's promotion message words them. */
export function gateFigures(gate: readonly GateRow[]): string {
  return gate.map((g) => `${g.metric} ${fmt(g.before)} → ${fmt(g.after)}`).join(', ');
}

function fmt(n: number): string {
  return Number(n.toPrecision(4)).toString();
}

/** The review arguments a server code action or lens carries, or undefined for anything else. */
export function parseReviewArgs(raw: unknown): ReviewArgs | undefined {
  if (!isObject(raw) || typeof raw.uri !== 'string' || typeof raw.generationId !== 'string') return undefined;
  if (!raw.generationId) return undefined;
  return reviewArgs(raw.uri, raw.generationId, typeof raw.text === 'string' ? raw.text : undefined);
}

/** Status bar text and tooltip for a status payload. */
export function statusText(status: Status | undefined, restricted = false): { text: string; tooltip: string } {
  if (restricted) {
    return { text: '$(shield) Redline: restricted',
      tooltip: 'Untrusted workspace: no language server, no checkers, no completions. Trust the folder to start.' };
  }
  if (!status) return { text: '$(sync~spin) Redline', tooltip: 'Waiting for the Redline language server' };
  const adapter = status.adapter ?? 'base model';
  const daemon = status.daemon ?? 'no daemon';
  const lines = [
    `Repository: ${status.repo}`,
    `Queued feedback: ${status.queued} (${status.feedback} in all, on ${status.generations} generations)`,
    status.gateSummary ? `Adapter: ${status.gateSummary}`
      : `Adapter: ${adapter}${status.gate.length ? ` (gate: ${gateFigures(status.gate)})` : ''}`,
    `Training daemon: ${daemon}`,
  ];
  const last = status.lastTraining;
  if (last) {
    const what = [last.result, last.version, last.reason].filter((x) => x).join(', ');
    lines.push(`Last training: ${what}${last.at ? ` at ${last.at}` : ''}`);
    if (last.probe) lines.push(last.probe);
  }
  if (status.nextTraining) lines.push(`Next training: ${status.nextTraining}`);
  return { text: `$(pulse) ${status.queued} queued · ${adapter} · ${daemon}`, tooltip: lines.join('\n') };
}

/** The server announces a promoted adapter with `window/showMessage` "Redline: adapter vNNNN promoted …". */
export function isPromotion(message: string): boolean {
  return /^Redline: adapter \S+ promoted/.test(message);
}
