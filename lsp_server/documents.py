"""Open documents: their text as a list of lines, reading it by client positions, and the server's state for each.

Positions from the client are in its position units (UTF-16 by default); Python strings index by code point.
`column_index` converts one column, with a fast path for ASCII lines. `LineBuffer` applies an incremental change
by splicing only the lines it touches, so a keystroke costs the same on a 10-line file and a 50,000-line one
(pygls's own document rebuilds the whole text on every change).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from redline.config import Config
from redline.lsp_server.diagnostics import Finding
from redline.lsp_server.linking import RecentCompletions, Run
from redline.lsp_server.spans import Pos, SpanIndex, TrackedSpan
from redline.queue import Store


@dataclass(eq=False)
class Repo:
    """One repository the server has seen a document of: its config and open queue."""

    config: Config
    store: Store
    #: the adapter version last seen in the training status (None until the first look)
    adapter_seen: object = None
    looked: bool = False
    #: completions recently served for this repo (`redline serve` / `proxy`), and when they were read (wall clock)
    recent: RecentCompletions = field(default_factory=RecentCompletions)
    recent_read_at: float = -math.inf


class LineBuffer:
    """A document's text as lines (each keeping its line ending); `source` is joined on demand and cached."""

    __slots__ = ("_source", "lines")

    def __init__(self, text: str) -> None:
        self.lines: list[str] = text.splitlines(keepends=True)
        self._source: str | None = text

    @property
    def source(self) -> str:
        if self._source is None:
            self._source = "".join(self.lines)
        return self._source

    def replace(self, text: str) -> None:
        self.lines = text.splitlines(keepends=True)
        self._source = text

    def apply(self, start: Pos, end: Pos, text: str, units: Callable[[str], int]) -> None:
        """Replace the text between two client positions (clamped to the document) with `text`."""
        lines = self.lines
        self._source = None
        if end < start:
            end = start
        if not lines:
            self.lines = text.splitlines(keepends=True)
            return
        if start[0] >= len(lines):  # at the very end
            first_no, a = len(lines) - 1, len(lines[-1])
        else:
            first_no = start[0]
            a = column_index(lines[first_no].rstrip("\r\n"), start[1], units)
        if end[0] >= len(lines):
            last_no, b = len(lines) - 1, len(lines[-1])
        else:
            last_no = end[0]
            b = column_index(lines[last_no].rstrip("\r\n"), end[1], units)
        merged = lines[first_no][:a] + text + lines[last_no][b:]
        lines[first_no:last_no + 1] = merged.splitlines(keepends=True)


@dataclass(eq=False)
class Doc:
    """An open document the server tracks spans in."""

    uri: str
    abs_path: Path
    language: str
    version: int | None
    buffer: LineBuffer
    path: str = ""
    repo: Repo | None = None
    index: SpanIndex = field(default_factory=SpanIndex)
    #: the document version at the last save (the buffer is "clean" while `version == saved_version`)
    saved_version: int | None = None
    #: diagnostics forwarded by the client, by the key it sent them under
    forwarded: dict[str, list[Finding]] = field(default_factory=dict)
    #: generation id → fingerprints of the diagnostic feedback recorded for it (the hints count them)
    problems: dict[str, set[str]] = field(default_factory=dict)
    #: the inserts at one place that may be one completion accepted in pieces (see `linking`)
    run: Run | None = None
    #: changes (start, end, text, replaced text) that arrived while the document was opening, to link then
    early: list[tuple[Pos, Pos, str, str]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def spans(self) -> tuple[TrackedSpan, ...]:
        return self.index.all()

    @spans.setter
    def spans(self, spans: Iterable[TrackedSpan]) -> None:
        self.index.set(spans)

    @property
    def clean(self) -> bool:
        return self.version == self.saved_version


def column_index(line: str, col: int, units: Callable[[str], int]) -> int:
    """The Python index of client column `col` in `line` (clamped to the line)."""
    if col <= 0:
        return 0
    if line.isascii():
        return min(col, len(line))
    seen = 0
    for i, ch in enumerate(line):
        if seen >= col:
            return i
        seen += units(ch)
    return len(line)


def offset_of(lines: Sequence[str], pos: Pos, units: Callable[[str], int]) -> int:
    """Offset in the joined text of `lines` (each keeping its line ending) for client position `pos`."""
    line_no = min(max(pos[0], 0), len(lines))
    before = sum(len(line) for line in lines[:line_no])
    if line_no >= len(lines):
        return before
    body = lines[line_no].rstrip("\r\n")
    return before + column_index(body, pos[1], units)


def slice_text(lines: Sequence[str], start: Pos, end: Pos, units: Callable[[str], int]) -> str:
    """The text between two client positions (clamped to the document)."""
    if end <= start or start[0] >= len(lines):
        return ""
    first = lines[start[0]]
    a = column_index(first.rstrip("\r\n"), start[1], units)
    if end[0] == start[0]:
        return first[a:column_index(first.rstrip("\r\n"), end[1], units)]
    parts = [first[a:]]
    parts += lines[start[0] + 1:min(end[0], len(lines))]
    if end[0] < len(lines):
        last = lines[end[0]]
        parts.append(last[:column_index(last.rstrip("\r\n"), end[1], units)])
    return "".join(parts)


def whole_lines(lines: Sequence[str], first: int, stop: int) -> str:
    """Lines [first, stop) joined: what the queue stores as a span's text, so `locate` can find it again."""
    return "".join(lines[max(first, 0):max(stop, 0)])
