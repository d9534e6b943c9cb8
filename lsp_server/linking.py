"""Linking inserted text to recently served completions, without the client's help.

Editor completion plugins never say "I inserted generation X"; they insert text. `redline serve` / `redline proxy`
record every completion they serve; the language server keeps the recent ones in a `RecentCompletions` index and,
when a change inserts text that equals one — whole, its leading part (a word or line partial accept), or with the
editor's auto-indentation or auto-closed brackets applied — tracks that text under the completion's id.

Pure: no I/O, no clock (callers pass wall-clock seconds). Cheap on the typing path: a one-character insert is
dismissed by its length, and a longer one costs one dict lookup on its first `KEY` normalised characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from redline.lsp_server.spans import Pos, TrackedSpan

#: characters of normalised text the index is keyed on (the length floor is never below it)
KEY = 8
#: closing characters an editor may add on its own after accepted text (auto-closed brackets and quotes)
CLOSERS = ")]}>\"'`"

Match = Literal["whole", "prefix"]


def normalise(text: str) -> str:
    """The text with each line's leading and trailing whitespace removed and blank edge lines dropped: what
    survives an editor re-indenting accepted text."""
    return "\n".join(line.strip() for line in text.split("\n")).strip("\n")


def match(inserted: str, completion: str) -> Match | None:
    """How normalised `inserted` stands to normalised `completion`: all of it, its leading part, or neither.

    Closing characters at the end of `inserted` that the completion lacks there (the editor closed a bracket the
    completion opened) are allowed.
    """
    if inserted == completion:
        return "whole"
    if completion.startswith(inserted):
        return "prefix"
    trimmed = inserted
    for _ in range(3):
        if not trimmed or trimmed[-1] not in CLOSERS:
            break
        trimmed = normalise(trimmed[:-1])
        if trimmed == completion:
            return "whole"
        if trimmed and completion.startswith(trimmed):
            return "prefix"
    return None


@dataclass(frozen=True, slots=True)
class Recent:
    """One served completion."""

    generation_id: str
    text: str
    #: `normalise(text)`
    norm: str
    #: wall-clock seconds since the epoch when it was served
    at: float
    #: the repo-relative file it was asked for, when the request said
    path: str | None = None


class RecentCompletions:
    """The recent completions of one repository, looked up by the first `KEY` characters of their normalised text.

    Rebuilt whole from the queue (off the event loop) and swapped in, so a lookup never sees half an index.
    """

    __slots__ = ("_by_key", "_count", "stamp")

    def __init__(self, entries: Iterable[Recent] = (), stamp: object = None) -> None:
        by_key: dict[str, list[Recent]] = {}
        count = 0
        for e in sorted(entries, key=lambda e: -e.at):
            if len(e.norm) >= KEY:
                by_key.setdefault(e.norm[:KEY], []).append(e)
                count += 1
        self._by_key = by_key
        self._count = count
        #: what the index was built from (the queue files' mtimes), so an unchanged queue is not read again
        self.stamp = stamp

    def __len__(self) -> int:
        return self._count

    def candidates(self, norm: str) -> Sequence[Recent]:
        """Completions whose normalised text starts like `norm` (newest first)."""
        return self._by_key.get(norm[:KEY], ())


@dataclass(slots=True)
class Run:
    """Consecutive inserts at one place in a document: one accepted completion arriving in pieces."""

    start: Pos
    end: Pos
    text: str
    #: wall-clock seconds of the last piece
    at: float
    #: the completion this run was linked to, once it matched one, and the span tracking it
    linked: Recent | None = None
    span: TrackedSpan | None = None


def find(index: RecentCompletions, text: str, *, path: str, now: float, floor: int, window: float) -> Recent | None:
    """The newest completion served within `window` seconds that `text` matches, preferring one asked for `path`.

    Text shorter than `floor` normalised characters (after dropping closers an editor may have added) is never
    linked: short pieces of typing look like the start of too many completions.
    """
    head = normalise(text[:256])  # the key first: a large paste that starts like no completion costs no more
    candidates = index.candidates(head if len(head) >= KEY else normalise(text))
    if not candidates:
        return None
    norm = normalise(text)
    if len(norm.rstrip(CLOSERS)) < max(floor, KEY):
        return None
    best = None
    for entry in candidates:
        if now - entry.at > window or (entry.path is not None and entry.path != path):
            continue
        if match(norm, entry.norm) is not None:
            if entry.path == path:
                return entry
            best = best or entry
    return best


def extends(run: Run, text: str) -> bool:
    """The linked run with `text` appended still matches its completion (a further partial accept). Once all of
    the completion is in, what follows is the user's own typing, even a newline."""
    if run.linked is None or match(normalise(run.text), run.linked.norm) == "whole":
        return False
    return match(normalise(run.text + text), run.linked.norm) is not None
