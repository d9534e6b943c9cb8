"""Attribution: which generation wrote the code at this path and line? The one engine every harvester uses.

Spans are recorded where text was inserted, but files move on: lines are added above, the human edits inside
the span, a branch is checked out. A span is placed in today's file in two ways, the first that can say wins:

1. History. A span recorded at a commit is mapped through `git diff -U0 COMMIT -- PATH` (`redline.history`):
   exact and linear. The lines git shows as unchanged are still the model's; lines a human inserted or rewrote
   inside the span belong to the human, so a finding there is not the model's. Used when the span's text really
   stood at its recorded lines in that commit (checked line by line against the diff).
2. Content, near the old place (no commit, file not tracked, the text was never committed): exact at the
   recorded lines, exact elsewhere (nearest wins), else a line alignment inside a bounded window around the
   recorded lines, so a human's edit never costs a search over the whole file.

A completion `redline serve` or `redline proxy` served for a file, that no span tracks yet (no language server saw
it inserted), is placed by its prompt's context (`redline.served_code`); the spans found that way are handed to
the ledger to record (`new_spans`), so later runs track them like the language server's.

`Attributor` caches per file (the text, its spans, one git diff per commit) for a whole run: the pytest plugin
and CI ingest attribute many findings in one file.
"""

from __future__ import annotations

import bisect
import difflib
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal

from redline.errors import QueueUnavailable
from redline.history import LineMap, diff_since
from redline.queue.store import Store
from redline.records import Range, Span, utc_now
from redline.served_code import place_served

Confidence = Literal["exact", "history", "reanchored", "fuzzy"]
CONFIDENCE_ORDER: dict[str, int] = {"exact": 0, "history": 1, "reanchored": 2, "fuzzy": 3}

#: a fuzzy placement must be at least this similar (characters) to the recorded text to count
FUZZY_MIN_RATIO = 0.75
#: lines searched above and below the recorded place when the text is no longer found exactly
FUZZY_WINDOW_LINES = 200
#: served completions older than this are not looked for in files (a month of suggestions, most never taken)
SERVED_DAYS = 30
SERVED_LIMIT = 20_000


@dataclass(frozen=True, slots=True)
class Anchor:
    """A span placed in today's file: `span.range` is its extent now; `own` maps each line that is still the
    model's text to its line offset within the recorded span (lines a human added inside are absent)."""

    span: Span
    confidence: Confidence
    own: dict[int, int]

    def offset_in(self, first: int, last: int) -> int | None:
        """Offset within the span of the first model line in [first, last], or None when none is the model's."""
        if last - first < len(self.own):
            hits = [self.own[i] for i in range(first, last + 1) if i in self.own]
        else:
            hits = [off for line, off in self.own.items() if first <= line <= last]
        return min(hits) if hits else None


@dataclass(frozen=True, slots=True)
class Match:
    generation_id: str
    span: Span
    confidence: Confidence
    #: line offset within the generation's span of the first model line the location touches
    span_line: int | None = None


def repo_relative(repo_root: Path, path: str | os.PathLike[str]) -> str | None:
    """`path` as a POSIX path relative to the repo, or None when it lies outside it (or is not a file path)."""
    text = os.fspath(path)
    if "\x00" in text:  # no file system path holds a NUL byte
        return None
    if "://" in text:
        if not text.startswith("file://"):
            return None
        text = text[len("file://"):]
    if re.match(r"[A-Za-z]:[\\/]|[\\/]{2}", text):  # `C:/…`, `\\server\share\…`: another machine's path
        return None
    candidate = Path(text)
    if not candidate.is_absolute():
        candidate = repo_root / candidate
    try:
        rel = Path(os.path.normpath(candidate)).relative_to(os.path.normpath(repo_root.resolve()))
    except ValueError:
        try:
            rel = candidate.resolve().relative_to(repo_root.resolve())
        except (ValueError, OSError):
            return None
    posix = PurePosixPath(rel.as_posix())
    return None if ".." in posix.parts or str(posix) == "." else str(posix)


# --- placing one span -------------------------------------------------------------------------------------------


class FileLines:
    """A file's lines, right-stripped, with an index from whitespace-normalised line to its line numbers."""

    def __init__(self, text: str) -> None:
        self.lines = [line.rstrip() for line in text.splitlines()]
        self._norm: list[str] | None = None
        self._index: dict[str, list[int]] | None = None

    @property
    def norm(self) -> list[str]:
        if self._norm is None:
            self._norm = [" ".join(line.split()) for line in self.lines]
        return self._norm

    def where(self, norm_line: str) -> list[int]:
        if self._index is None:
            self._index = {}
            for i, line in enumerate(self.norm):
                self._index.setdefault(line, []).append(i)
        return self._index.get(norm_line, [])


def _want(span_text: str) -> list[str]:
    return [line.rstrip() for line in span_text.splitlines()] or [""]


def _same(k: int, n: int, have: str, want: str) -> bool:
    """Line `k` of an `n`-line span still reads `want`; its first and last lines may be part of a longer line."""
    if have == want:
        return True
    if not want.strip():
        return False
    if n == 1:
        return want.strip() in have
    return have.endswith(want) if k == 0 else k == n - 1 and have.startswith(want)


def through_history(span: Span, want: list[str], file: FileLines, changes: LineMap) -> Anchor | bool | None:
    """The span mapped through the diff since its commit; None when every line of it is gone; False when the
    diff does not show the span's text at its recorded lines (history cannot say)."""
    start, n = span.range.start_line, len(want)
    own: dict[int, int] = {}
    lines = file.lines
    for old, new, removed in changes.walk(start, start + n):
        k = old - start
        have = (lines[new] if new < len(lines) else None) if new is not None else removed
        if have is None or not _same(k, n, have.rstrip(), want[k]):
            return False
        if new is not None:
            own[new] = k
    if not own:
        return None
    first, last = min(own), max(own)
    intact = len(own) == n and last - first + 1 == n
    confidence: Confidence = "exact" if intact and first == start else "history"
    return Anchor(_moved(span, first, last + 1), confidence, own)


def _in_place(span: Span, want: list[str], file: FileLines) -> bool:
    start, n = span.range.start_line, len(want)
    return start + n <= len(file.lines) and all(_same(k, n, file.lines[start + k], want[k]) for k in range(n))


def by_content(span: Span, want: list[str], file: FileLines) -> Anchor | None:
    """The span found by its text: at its recorded lines, elsewhere exactly, else aligned near the old place."""
    lines, n, hint = file.lines, len(want), span.range.start_line
    if _in_place(span, want, file):
        return Anchor(_moved(span, hint, hint + n), "exact", {hint + k: k for k in range(n)})
    key = max(range(n), key=lambda k: (0 < k < n - 1 or n <= 2, len(want[k].strip())))
    starts = [i - key for i in file.where(" ".join(want[key].split())) if 0 <= i - key <= len(lines) - n]
    exact = [i for i in starts if all(_same(k, n, lines[i + k], want[k]) for k in range(n))]
    if exact:
        best = min(exact, key=lambda i: abs(i - hint))
        return Anchor(_moved(span, best, best + n), "reanchored", {best + k: k for k in range(n)})
    return _aligned(span, want, file)


def _aligned(span: Span, want: list[str], file: FileLines) -> Anchor | None:
    """Line alignment of the span against a window around its recorded place; the model's lines are those
    found unchanged (whitespace aside), and the placement must read like the recorded text overall.

    Where to align is voted for first: each span line found in the window votes for a start, weighted by how
    rare that line is there, so a unique `def f56(x):` outweighs the `return total` every function ends with,
    and a near-copy of the span nearby (a sibling function) does not win for having more common lines."""
    n, hint = len(want), span.range.start_line
    lo = max(0, hint - FUZZY_WINDOW_LINES)
    hi = min(len(file.lines), hint + n + FUZZY_WINDOW_LINES)
    if lo >= hi:
        return None
    norm_want = [" ".join(w.split()) for w in want]
    target = "\n".join(want)
    slack = max(3, n)  # lines a human may have inserted inside the span
    start_at = _vote(norm_want, file, lo, hi, hint, slack)
    if start_at is None:
        return _similar_window(span, target, n, file, lo, hi)
    r_lo, r_hi = start_at, min(hi, start_at + n + slack)
    blocks = [b for b in difflib.SequenceMatcher(None, norm_want, file.norm[r_lo:r_hi], autojunk=False)
              .get_matching_blocks() if b.size]
    blocks = _cluster(blocks, n)
    if not blocks:
        return None
    first, last = blocks[0], blocks[-1]
    start = max(lo, r_lo + first.b - first.a)
    end = min(hi, r_lo + last.b + last.size + (n - last.a - last.size))
    own = {r_lo + b.b + j: b.a + j for b in blocks for j in range(b.size) if norm_want[b.a + j]}
    ratio = difflib.SequenceMatcher(None, target, "\n".join(file.lines[start:end]), autojunk=False).ratio()
    matched = sum(len(want[k].strip()) for k in own.values())
    if own and (ratio >= FUZZY_MIN_RATIO or matched >= 0.5 * max(1, len(target.replace(" ", "")))):
        return Anchor(_moved(span, start, end), "fuzzy", own)
    return None


def _vote(norm_want: list[str], file: FileLines, lo: int, hi: int, hint: int, slack: int) -> int | None:
    """The start line in [lo, hi) best supported by the span's lines found there (None: no line found)."""
    votes: list[tuple[int, float]] = []
    for k, line in enumerate(norm_want):
        if not line:
            continue
        where = file.where(line)
        hits = where[bisect.bisect_left(where, lo):bisect.bisect_left(where, hi)]
        votes.extend((pos - k, 1.0 / len(hits)) for pos in hits)
    if not votes:
        return None
    votes.sort()
    best: tuple[float, int] | None = None
    total, j = 0.0, 0
    for i, (offset, _) in enumerate(votes):  # weight of votes in [offset, offset + slack], two pointers
        while j < len(votes) and votes[j][0] <= offset + slack:
            total += votes[j][1]
            j += 1
        key = (round(total, 9), -abs(offset - hint))
        if best is None or key > best:
            best, choice = key, offset
        total -= votes[i][1]
    return max(lo, choice)


def _cluster(blocks: list[difflib.Match], n: int) -> list[difflib.Match]:
    """The run of matching blocks around the largest one, dropping stray matches (a blank line, a lone
    `return`) further away than the span is long."""
    if not blocks:
        return []
    gap = max(n, 3)
    centre = max(range(len(blocks)), key=lambda i: blocks[i].size)
    lo = hi = centre
    while lo > 0 and blocks[lo].b - (blocks[lo - 1].b + blocks[lo - 1].size) <= gap:
        lo -= 1
    while hi + 1 < len(blocks) and blocks[hi + 1].b - (blocks[hi].b + blocks[hi].size) <= gap:
        hi += 1
    return blocks[lo:hi + 1]


def _similar_window(span: Span, target: str, n: int, file: FileLines, lo: int, hi: int) -> Anchor | None:
    """No line survived unchanged (a formatter rewrote them all): the most similar window of the same size."""
    best_ratio, best = 0.0, -1
    for i in range(lo, max(lo + 1, hi - n + 1)):
        matcher = difflib.SequenceMatcher(None, target, "\n".join(file.lines[i:i + n]), autojunk=False)
        if matcher.real_quick_ratio() < FUZZY_MIN_RATIO or matcher.quick_ratio() < FUZZY_MIN_RATIO:
            continue
        ratio, hint = matcher.ratio(), span.range.start_line
        if ratio > best_ratio or (ratio == best_ratio and abs(i - hint) < abs(best - hint)):
            best_ratio, best = ratio, i
    if best_ratio < FUZZY_MIN_RATIO:
        return None
    end = min(best + n, len(file.lines))
    return Anchor(_moved(span, best, end), "fuzzy", {best + k: k for k in range(end - best)})


def _moved(span: Span, start: int, end: int) -> Span:
    return replace(span, range=Range(start, end))


def locate(span_text: str, file_text: str, hint_line: int) -> tuple[Range, Confidence] | None:
    """Where `span_text` stands in `file_text` now, as whole lines [start, end), found by content near
    `hint_line` (see `by_content`); None when it is gone."""
    probe = Span("", "", Range(hint_line, hint_line + 1), span_text)
    found = by_content(probe, _want(span_text), FileLines(file_text))
    return None if found is None else (found.span.range, found.confidence)


# --- the engine -------------------------------------------------------------------------------------------------


@dataclass
class Attributor:
    """Attributes (path, lines) to generations for one run: each file is read, its spans listed and placed, and
    git asked (once per commit), the first time a finding points into it.

    `file_texts` gives the current text of some files (what an editor holds); history is used for a file only
    when that text is what is on disk, since git knows nothing of an unsaved buffer.
    """

    store: Store
    repo_root: Path | None = None
    file_texts: dict[str, str | None] = field(default_factory=dict)
    history: bool = True
    #: spans of served completions found in files by their prompt's context, for the ledger to record
    new_spans: list[Span] = field(default_factory=list)
    _anchors: dict[str, list[Anchor]] = field(default_factory=dict)
    _served: list[tuple[str, str, str, str | None]] | None = None
    git_calls: int = 0

    def anchors(self, path: str) -> list[Anchor]:
        """Every live span of `path`, placed in the file as it is now (spans that are gone are left out).

        A team queue that cannot be reached (docs/team.md) knows no spans for now: the finding stays
        unattributed and is not remembered as such, and the batch it is in goes to the spool marked to be
        attributed again when it is sent (`redline.queue.spool`)."""
        if path not in self._anchors:
            try:
                self._anchors[path] = self._place(path)
            except QueueUnavailable:
                return []
        return self._anchors[path]

    def _place(self, path: str) -> list[Anchor]:
        recorded = self.store.spans_for_path(path)
        spans = [s for s in recorded if s.state != "deleted"]
        on_disk = read_text(self.repo_root / path) if self.repo_root is not None else None
        text = self.file_texts[path] if path in self.file_texts else on_disk
        served = self._place_served(path, text, {s.generation_id for s in recorded}) if text is not None else []
        if not spans:
            return served
        if text is None:  # nothing to read: trust the recorded lines
            return [Anchor(s, "exact", {i: i - s.range.start_line for i in range(s.range.start_line,
                                                                                 s.range.last_line + 1)})
                    for s in spans]
        file = FileLines(text)
        use_history = self.history and self.repo_root is not None and text == on_disk
        diffs: dict[str, LineMap | None] = {}
        placed = []
        for span in spans:
            want = _want(span.text)
            where: Anchor | bool | None = False
            if use_history and span.commit and _in_place(span, want, file):
                where = by_content(span, want, file)  # untouched where it was recorded: no need to ask git
            elif use_history and span.commit:
                if span.commit not in diffs:
                    self.git_calls += 1
                    diffs[span.commit] = diff_since(self.repo_root, span.commit, path)  # type: ignore[arg-type]
                changes = diffs[span.commit]
                if changes is not None:
                    where = through_history(span, want, file, changes)
            if where is False:
                where = by_content(span, want, file)
            if isinstance(where, Anchor):
                placed.append(where)
        return placed + [a for a in served if not any(a.span.range.overlaps_lines(p.span.range.start_line,
                                                                                  p.span.range.last_line)
                                                       for p in placed)]

    def _place_served(self, path: str, text: str, tracked: set[str]) -> list[Anchor]:
        """Served completions for `path` that no span tracks, placed by their prompt's context; the newest wins
        where two would claim the same lines (the user asked again at the same place and took the last)."""
        if self._served is None:
            since = datetime.fromtimestamp(time.time() - SERVED_DAYS * 86400, UTC).isoformat(timespec="milliseconds")
            self._served = self.store.recent_completions(since.replace("+00:00", "Z"), origins=("server",),
                                                         limit=SERVED_LIMIT)
        anchors: list[Anchor] = []
        for gid, _, _, where in self._served:  # newest first
            if gid in tracked or where is None:
                continue
            if (repo_relative(self.repo_root, where) if self.repo_root is not None else where) != path:
                continue
            generation = self.store.get_generation(gid)
            span = place_served(generation, path, text) if generation is not None else None
            if span is None or any(a.span.range.overlaps_lines(span.range.start_line, span.range.last_line)
                                   for a in anchors):
                continue
            span.updated_at = utc_now()
            self.new_spans.append(span)
            anchors.append(Anchor(span, "reanchored", {span.range.start_line + k: k for k in
                                                       range(span.range.end_line - span.range.start_line)}))
        return anchors

    def attribute(self, path: str, start_line: int, end_line: int | None = None) -> list[Match]:
        """Generations whose model-written lines include any of [start_line, end_line] (0-based, inclusive) of
        repo-relative `path`; best first (surest placement, then the innermost span)."""
        end_line = start_line if end_line is None else end_line
        matches = []
        for anchor in self.anchors(path):
            if not anchor.span.range.overlaps_lines(start_line, end_line):
                continue
            offset = anchor.offset_in(start_line, end_line)
            if offset is not None:
                matches.append(Match(anchor.span.generation_id, anchor.span, anchor.confidence, offset))
        return sorted(matches, key=lambda m: (CONFIDENCE_ORDER[m.confidence],
                                              m.span.range.end_line - m.span.range.start_line))

    def find(self, locations: Iterable[tuple[str, int]]) -> tuple[Match, str, int] | None:
        """The first location (repo-relative path, 0-based line) on a model-written line, with its best match."""
        for path, line in locations:
            matches = self.attribute(path, line)
            if matches:
                return matches[0], path, line
        return None


def attribute(
    store: Store,
    path: str,
    start_line: int,
    end_line: int | None = None,
    *,
    file_text: str | None = None,
    repo_root: Path | None = None,
) -> list[Match]:
    """One-off `Attributor.attribute` (callers with many findings keep an `Attributor` for the run)."""
    texts: dict[str, str | None] = {path: file_text} if file_text is not None else {}
    return Attributor(store, repo_root, texts).attribute(path, start_line, end_line)


def read_text(path: Path) -> str | None:
    """A text file's contents, or None when it is missing or binary (then recorded lines are trusted)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")
