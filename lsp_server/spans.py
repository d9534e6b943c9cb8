"""Keeping model-written spans anchored while the human edits, and deciding when an edit has become feedback.

Pure functions over `TrackedSpan`s: no I/O, no clock (callers pass `now`), no LSP objects. Positions are
`(line, character)` tuples in the client's position units, exactly as the client's incremental changes use them,
so applying a change never needs the document text — that is what keeps `didChange` cheap on large files.

An edit at a span's boundary (typing right before or after it) is outside the span: the span shifts but does
not grow. A change inside it marks it edited; a change across its start or end shrinks it; a change covering it
deletes it (the server then tries to find its text again, for formatters that rewrite the whole document).
"""

from __future__ import annotations

import bisect
import difflib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from redline.attribution import locate
from redline.records import Feedback, Range

Pos = tuple[int, int]
State = Literal["live", "edited", "deleted"]
Units = Callable[[str], int]

#: above this many character pairs, retained characters are estimated from the common prefix and suffix
_DIFF_BUDGET = 4_000_000


@dataclass(slots=True)
class TrackedSpan:
    """One generation's text in one open document."""

    generation_id: str
    start: Pos
    end: Pos
    #: what the model wrote (the generation's completion, or the marked text)
    generated: str
    #: clock time of insertion, or of reopening (a reopened span has no retention checkpoints left)
    inserted_at: float
    #: the text changes are measured against in this session: `generated`, or the text found on reopening
    baseline: str = ""
    state: State = "live"
    #: clock time of the last human change inside the span, and of the first save after it
    touched_at: float | None = None
    saved_at: float | None = None
    #: the span's text when last read from the document (refreshed on save and on timers)
    text: str | None = None
    #: the text last recorded as edit feedback (so a settled edit is recorded once)
    recorded_text: str | None = None
    #: checkpoint label ("30s") → characters of `generated` still present then
    retained: dict[str, int] = field(default_factory=dict)
    #: checkpoints still to measure: (label, clock time)
    due: list[tuple[str, float]] = field(default_factory=list)
    #: set when a single change covered the whole span: the server may find it again by content
    covered: bool = False

    def __post_init__(self) -> None:
        if not self.baseline:
            self.baseline = self.generated
        if self.text is None:
            self.text = self.baseline
        if self.recorded_text is None:
            self.recorded_text = self.baseline

    def line_range(self) -> Range:
        """The whole lines the span touches (what the queue stores and `locate` re-anchors)."""
        last = self.end[0] - 1 if self.end[1] == 0 and self.end[0] > self.start[0] else self.end[0]
        return Range(self.start[0], last + 1)

    def lsp_range(self) -> Range:
        return Range(self.start[0], self.end[0], self.start[1], self.end[1])


def label(seconds: float) -> str:
    """30 → "30s", 120 → "2m", 600 → "10m"."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def schedule(inserted_at: float, checkpoints: Iterable[float]) -> list[tuple[str, float]]:
    return [(label(s), inserted_at + s) for s in sorted(checkpoints)]


def end_of_insert(start: Pos, text: str, units: Units) -> Pos:
    """Where `text` inserted at `start` ends."""
    newlines = text.count("\n")
    if newlines == 0:
        return start[0], start[1] + units(text)
    return start[0] + newlines, units(text[text.rfind("\n") + 1:])


def _moved(p: Pos, end: Pos, new_end: Pos) -> Pos:
    """Position `p` at or after a replaced range ending at `end`, once the replacement ends at `new_end`."""
    if p[0] == end[0]:
        return new_end[0], new_end[1] + p[1] - end[1]
    return p[0] + new_end[0] - end[0], p[1]


def apply_change(spans: list[TrackedSpan], start: Pos, end: Pos, text: str, now: float, units: Units = len) -> bool:
    """Apply one incremental change (replace [start, end) with `text`) to every span; True if any was touched.

    A range with its end before its start is treated as empty at `start` (some clients send that). This is the
    reference version; `SpanIndex.apply` gives the same result touching only the spans near the change.
    """
    if end < start:
        end = start
    new_end = end_of_insert(start, text, units)
    touched = False
    for span in spans:
        touched |= _update(span, start, end, text, new_end, now)
    return touched


def _update(span: TrackedSpan, start: Pos, end: Pos, text: str, new_end: Pos, now: float) -> bool:
    """One span, one change; True if the change fell on the span's text."""
    a, b = span.start, span.end
    if start >= b:
        return False
    if end <= a:
        span.start = _moved(a, end, new_end)
        span.end = _moved(b, end, new_end)
        return False
    if a == b:  # an already-deleted span inside the replaced range stays where the change starts
        span.start = span.end = start
        return False
    span.touched_at = now
    if start <= a and end >= b:
        span.start = span.end = start
        span.state = "deleted"
        span.covered = bool(text)
        return True
    if start < a:  # across the span's start: the replacement lies outside, the span shrinks
        span.start = new_end
        span.end = _moved(b, end, new_end)
    elif end > b:  # across the span's end
        span.end = start
    else:  # inside
        span.end = _moved(b, end, new_end)
    span.state = "deleted" if span.start >= span.end else "edited"
    return True


class SpanIndex:
    """A document's spans, sorted by start, in blocks that carry a pending line shift.

    A change only visits the spans that can overlap it (those starting at most `max_extent` lines before it) and
    the ones starting on its last line; spans further down move by whole lines, which is one addition per block.
    So a keystroke costs about the same with 5 or 500 spans in the file.
    """

    BLOCK = 32

    def __init__(self, spans: Iterable[TrackedSpan] = ()) -> None:
        self.set(spans)

    def set(self, spans: Iterable[TrackedSpan]) -> None:
        ordered = sorted(spans, key=lambda s: (s.start, s.end))
        self._blocks = [ordered[i:i + self.BLOCK] for i in range(0, len(ordered), self.BLOCK)]
        self._shift = [0] * len(self._blocks)
        self._flat: tuple[TrackedSpan, ...] | None = tuple(ordered)
        self.max_extent = max((s.end[0] - s.start[0] for s in ordered), default=0)
        #: some change covered a whole span since the last `set`: the server may find it again by content
        self.covered = any(s.covered for s in ordered)
        self.ids = {s.generation_id for s in ordered}

    def add(self, span: TrackedSpan) -> None:
        """Insert one span in order, touching one block (a linked completion lands while the user types)."""
        blocks, shift = self._blocks, self._shift
        if not blocks:
            self.set([span])
            return
        i = 0
        while i + 1 < len(blocks):
            head = blocks[i + 1][0]
            if (head.start[0] + shift[i + 1], head.start[1]) > span.start:
                break
            i += 1
        self._settle(i)
        bisect.insort(blocks[i], span, key=lambda s: (s.start, s.end))
        if len(blocks[i]) > 2 * self.BLOCK:
            half = len(blocks[i]) // 2
            blocks[i:i + 1] = [blocks[i][:half], blocks[i][half:]]
            shift.insert(i + 1, 0)
        self._flat = None
        self.ids.add(span.generation_id)
        self.max_extent = max(self.max_extent, span.end[0] - span.start[0])

    def __len__(self) -> int:
        return sum(len(b) for b in self._blocks)

    def all(self) -> tuple[TrackedSpan, ...]:
        """Every span with its position brought up to date."""
        if self._flat is None:
            for i in range(len(self._blocks)):
                self._settle(i)
            self._flat = tuple(s for block in self._blocks for s in block)
        return self._flat

    def _settle(self, i: int) -> None:
        d = self._shift[i]
        if d:
            for s in self._blocks[i]:
                s.start = (s.start[0] + d, s.start[1])
                s.end = (s.end[0] + d, s.end[1])
            self._shift[i] = 0

    def apply(self, start: Pos, end: Pos, text: str, now: float, units: Units = len) -> bool:
        if end < start:
            end = start
        new_end = end_of_insert(start, text, units)
        dl = new_end[0] - end[0]
        blocks, shift = self._blocks, self._shift
        reach = start[0] - self.max_extent
        first = 0  # the first block that may hold a span reaching the change
        while first + 1 < len(blocks) and blocks[first + 1][0].start[0] + shift[first + 1] < reach:
            first += 1
        touched = False
        for i in range(first, len(blocks)):
            self._settle(i)
            block = blocks[i]
            for j, span in enumerate(block):
                if span.start[0] > end[0]:  # this one and every later one move by whole lines only
                    if dl:
                        for later in block[j:]:
                            later.start = (later.start[0] + dl, later.start[1])
                            later.end = (later.end[0] + dl, later.end[1])
                        for k in range(i + 1, len(blocks)):
                            shift[k] += dl
                    return self._done(touched, first, i)
                if span.end[0] >= start[0] and _update(span, start, end, text, new_end, now):
                    touched = True
                    self.covered |= span.covered
                    if span.end[0] - span.start[0] > self.max_extent:
                        self.max_extent = span.end[0] - span.start[0]
        return self._done(touched, first, len(blocks) - 1)

    def _done(self, touched: bool, first: int, last: int) -> bool:
        self._flat = None
        if touched:  # a shrink or delete can reorder overlapping spans: keep the blocks sorted
            window = [s for block in self._blocks[first:last + 1] for s in block]
            if any(x.start > y.start for x, y in itertools.pairwise(window)):
                self.set(self.all())
        return touched


def reanchor(span: TrackedSpan, source: str, units: Units = len) -> bool:
    """Find the span's last known text in `source` again (nearest its old line); True if found.

    An exact match anywhere comes first; a multi-line span may also be found line-wise (whitespace at line ends
    ignored, or a similar window) by `redline.attribution.locate`, and then covers whole lines.
    """
    needle = span.text or span.baseline
    if not needle.strip():
        return False
    hits: list[int] = []
    at = source.find(needle)
    while at != -1 and len(hits) < 1000:
        hits.append(at)
        at = source.find(needle, at + 1)
    if hits:
        best = min(hits, key=lambda off: abs(source.count("\n", 0, off) - span.start[0]))
        span.start = offset_to_pos(source, best, units)
        span.end = end_of_insert(span.start, needle, units)
    else:
        found = locate(needle, source, span.start[0])
        if found is None:
            return False
        rng, _ = found
        span.start, span.end = (rng.start_line, 0), (rng.end_line, 0)
    if span.state == "deleted":
        span.state = "edited" if needle != span.baseline else "live"
    span.covered = False
    return True


def offset_to_pos(source: str, offset: int, units: Units = len) -> Pos:
    line = source.count("\n", 0, offset)
    line_start = source.rfind("\n", 0, offset) + 1
    return line, units(source[line_start:offset])


def retained_chars(generated: str, current: str) -> int:
    """How many characters of `generated` survive in `current` (sum of matching blocks, in order)."""
    if not generated or not current:
        return 0
    if generated == current:
        return len(generated)
    if len(generated) * len(current) > _DIFF_BUDGET:
        prefix = len(_common_prefix(generated, current))
        rest_a, rest_b = generated[prefix:], current[prefix:]
        return prefix + len(_common_prefix(rest_a[::-1], rest_b[::-1]))
    blocks = difflib.SequenceMatcher(None, generated, current, autojunk=False).get_matching_blocks()
    return sum(b.size for b in blocks)


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]


def measure_due(span: TrackedSpan, now: float) -> bool:
    """Record retained characters for each checkpoint that has passed; True if any was measured."""
    measured = False
    while span.due and span.due[0][1] <= now:
        name, _ = span.due.pop(0)
        current = "" if span.state == "deleted" else (span.text or "")
        span.retained[name] = retained_chars(span.generated, current)
        measured = True
    return measured


def on_save(spans: Iterable[TrackedSpan], now: float) -> None:
    for span in spans:
        if span.touched_at is not None and (span.saved_at is None or span.saved_at < span.touched_at):
            span.saved_at = now


def is_settled(span: TrackedSpan, now: float, settle_seconds: float) -> bool:
    """Saved after its last human change, and untouched for `settle_seconds` since that save."""
    if span.touched_at is None or span.saved_at is None or span.saved_at < span.touched_at:
        return False
    return now - span.saved_at >= settle_seconds


def edit_ready(span: TrackedSpan, now: float, settle_seconds: float, *, flush: bool = False) -> bool:
    """A human change to this span should be recorded now.

    Normally once it has settled and its last retention checkpoint has been measured (so one record carries all
    figures); with `flush` (document closed, server stopping) as soon as the change has been saved.
    """
    current = "" if span.state == "deleted" else span.text
    if current == span.recorded_text:
        return False
    if flush:
        return span.saved_at is not None and span.touched_at is not None and span.saved_at >= span.touched_at
    return is_settled(span, now, settle_seconds) and not span.due


def edit_feedback(span: TrackedSpan, path: str) -> Feedback:
    """The feedback a settled human change becomes: `edit` with the final text, or `reject` if deleted."""
    meta = {
        "generated_chars": len(span.generated),
        "retained_chars": dict(span.retained),
        "final_retained_chars": retained_chars(span.generated, "" if span.state == "deleted" else span.text or ""),
        "generated_text": span.generated,
    }
    if span.state == "deleted":
        return Feedback(kind="reject", source="lsp.edit", message="the human deleted this generated code",
                        generation_id=span.generation_id, path=path, range=span.line_range(), severity="info",
                        trust="high", meta=meta)
    return Feedback(kind="edit", source="lsp.edit", message="the human rewrote this generated code",
                    correction=span.text, generation_id=span.generation_id, path=path, range=span.line_range(),
                    severity="info", trust="high", meta=meta)


def kept_as_written(span: TrackedSpan) -> bool:
    """Still exactly what the model wrote at every retention checkpoint, the last one included."""
    full = len(span.generated)
    return (span.state == "live" and not span.due and bool(span.retained) and span.text == span.generated
            and all(kept == full for kept in span.retained.values()))


def kept_feedback(span: TrackedSpan, path: str) -> Feedback:
    """`accept` for a span kept as written through its last checkpoint, saved, with no problem found.

    The one positive signal an editor gives without asking (the accepted-and-retained figure editors report).
    The trainer keeps such records as anchors against forgetting and the gate holds them out to measure retention;
    a later failing test on the same generation outweighs it (a record is passed only if nothing said it was wrong).
    """
    return Feedback(kind="accept", source="lsp.kept", message="kept as written, saved, no problem found",
                    generation_id=span.generation_id, path=path, range=span.line_range(), severity="info",
                    meta={"generated_chars": len(span.generated), "retained_chars": dict(span.retained)})


def overlapping(spans: Iterable[TrackedSpan], first_line: int, last_line: int) -> list[TrackedSpan]:
    """Spans (not deleted) touching the inclusive line interval, innermost first."""
    hits = [s for s in spans if s.state != "deleted" and s.line_range().overlaps_lines(first_line, last_line)]
    return sorted(hits, key=lambda s: (s.end[0] - s.start[0], s.end[1] - s.start[1]))


def fim_context(source: str, start: int, end: int, prefix_chars: int, suffix_chars: int) -> tuple[str, str]:
    """Prefix and suffix around source[start:end], capped, cut at line boundaries when the cap bites."""
    lo = max(0, start - prefix_chars)
    prefix = source[lo:start]
    if lo > 0 and "\n" in prefix:
        prefix = prefix[prefix.index("\n") + 1:]
    hi = min(len(source), end + suffix_chars)
    suffix = source[end:hi]
    if hi < len(source) and "\n" in suffix:
        suffix = suffix[:suffix.rindex("\n") + 1]
    return prefix, suffix
