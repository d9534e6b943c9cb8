/**
 * Which part of an offered completion the user took, and where it landed.
 *
 * VS Code's stable API tells a provider only about full accepts (the item's `command`); the hook for partial
 * accepts (`handleDidPartiallyAcceptCompletionItem`) is still a proposed API that published extensions cannot
 * use. So acceptance is read from the document: a change that inserts the next characters of the offered text
 * exactly at its end is that text being taken (Ctrl+→ word accepts, line accepts, Tab). A one-character insert
 * may be the user typing what the ghost text shows; it counts once a longer accept or the item's command
 * confirms it. Each report repeats the whole accepted prefix under the same generation id: the server replaces
 * the span it tracks for that id, so reports may grow and repeat freely.
 */

import { InsertParams, Position, insertParams } from './messages';

export interface Offer {
  uri: string;
  /** Document offset and position where the completion starts. */
  offset: number;
  start: Position;
  text: string;
  generationId?: string;
  model?: string;
}

/** One `TextDocumentContentChangeEvent`: `rangeLength` characters at `rangeOffset` replaced by `text`. */
export interface Change { rangeOffset: number; rangeLength: number; text: string }

interface Live extends Offer { key: number; accepted: number; reported: number }

export class AcceptTracker {
  private live: Live | undefined;
  private nextKey = 1;

  /** Remember the completion now shown; returns the key its `command` passes back on a full accept. */
  offer(offer: Offer): number {
    this.live = { ...offer, key: this.nextKey++, accepted: 0, reported: 0 };
    return this.live.key;
  }

  /** The rest of the live offer when the cursor sits where its accepted part ends (so no new request is made). */
  continuation(uri: string, offset: number): { key: number; offer: Offer; rest: string } | undefined {
    const live = this.live;
    if (!live || live.uri !== uri || offset !== live.offset + live.accepted || live.accepted >= live.text.length) {
      return undefined;
    }
    return { key: live.key, offer: live, rest: live.text.slice(live.accepted) };
  }

  /** The item's command ran: the rest of the offer was accepted. */
  acceptedAll(key: number): InsertParams | undefined {
    const live = this.live;
    if (!live || live.key !== key) return undefined;
    live.accepted = live.text.length;
    return this.report(live);
  }

  /** Document changes in `uri`; returns what to report when they accepted (part of) the live offer. */
  changed(uri: string, changes: readonly Change[]): InsertParams | undefined {
    const live = this.live;
    if (!live || live.uri !== uri || changes.length === 0) return undefined;
    const c = changes[0];
    const rest = live.text.slice(live.accepted);
    const at = live.offset + live.accepted;
    if (changes.length !== 1 || c.rangeLength !== 0 || c.rangeOffset !== at || !c.text || !rest.startsWith(c.text)) {
      this.live = undefined;
      return undefined;
    }
    live.accepted += c.text.length;
    const complete = live.accepted === live.text.length;
    return c.text.length >= 2 || complete ? this.report(live) : undefined;
  }

  forget(): void {
    this.live = undefined;
  }

  private report(live: Live): InsertParams | undefined {
    if (live.accepted === live.text.length) this.live = undefined;
    const text = live.text.slice(0, live.accepted);
    if (live.accepted <= live.reported || !text.trim()) return undefined;
    live.reported = live.accepted;
    return insertParams(live.uri, live.start, text, live.generationId, live.model);
  }
}
