"""Attribution: which generation wrote the code at this path and line?

Spans are recorded where text was inserted, but files move on: lines are added above, the code is reformatted,
a branch is checked out. So a lookup first trusts the recorded lines, then re-anchors the span by its text in the
file as it is now (exact match, then the closest window of the same size), and reports how sure it is.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from redline.queue.store import Store
from redline.records import Range, Span

Confidence = Literal["exact", "reanchored", "fuzzy"]

#: a fuzzy window must be at least this similar to the recorded text to count
FUZZY_MIN_RATIO = 0.75


@dataclass(frozen=True, slots=True)
class Match:
    generation_id: str
    span: Span
    confidence: Confidence


def repo_relative(repo_root: Path, path: str | os.PathLike[str]) -> str | None:
    """`path` as a POSIX path relative to the repo, or None when it lies outside it (or is not a file path)."""
    text = os.fspath(path)
    if "\x00" in text:  # no file system path holds a NUL byte
        return None
    if "://" in text:
        if not text.startswith("file://"):
            return None
        text = text[len("file://"):]
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


def locate(span_text: str, file_text: str, hint_line: int) -> tuple[Range, Confidence] | None:
    """Where `span_text` stands in `file_text` now, as whole lines [start, end): exact at the hint, exact
    elsewhere (nearest the hint wins), else the most similar window of the same line count; None when gone."""
    want = [line.rstrip() for line in span_text.splitlines()] or [""]
    lines = [line.rstrip() for line in file_text.splitlines()]
    n = len(want)
    if lines[hint_line:hint_line + n] == want:
        return Range(hint_line, hint_line + n), "exact"
    starts = [i for i in range(len(lines) - n + 1) if lines[i] == want[0] and lines[i:i + n] == want]
    if starts:
        best = min(starts, key=lambda i: abs(i - hint_line))
        return Range(best, best + n), "reanchored"
    if n == 0 or not lines:
        return None
    target = "\n".join(want)
    best_ratio, best_start = 0.0, -1
    for i in range(max(1, len(lines) - n + 1)):
        matcher = difflib.SequenceMatcher(None, target, "\n".join(lines[i:i + n]), autojunk=False)
        if matcher.real_quick_ratio() < FUZZY_MIN_RATIO or matcher.quick_ratio() < FUZZY_MIN_RATIO:
            continue
        ratio = matcher.ratio()
        if ratio > best_ratio or (ratio == best_ratio and abs(i - hint_line) < abs(best_start - hint_line)):
            best_ratio, best_start = ratio, i
    if best_ratio >= FUZZY_MIN_RATIO:
        return Range(best_start, min(best_start + n, len(lines))), "fuzzy"
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
    """Generations whose span covers lines [start_line, end_line] (0-based, inclusive) of repo-relative `path`.

    With `file_text` (or `repo_root` to read it from), spans are re-anchored by content first; without either,
    the recorded lines are trusted. Best matches first.
    """
    end_line = start_line if end_line is None else end_line
    if file_text is None and repo_root is not None:
        file_text = read_text(repo_root / path)
    matches: list[Match] = []
    for span in store.spans_for_path(path):
        if span.state == "deleted":
            continue
        where: tuple[Range, Confidence] | None = (span.range, "exact")
        if file_text is not None:
            where = locate(span.text, file_text, span.range.start_line)
        if where is None:
            continue
        rng, confidence = where
        if rng.overlaps_lines(start_line, end_line):
            moved = Span(span.generation_id, span.path, rng, span.text, span.state, span.commit, span.updated_at)
            matches.append(Match(span.generation_id, moved, confidence))
    order = {"exact": 0, "reanchored": 1, "fuzzy": 2}
    return sorted(matches, key=lambda m: (order[m.confidence], m.span.range.end_line - m.span.range.start_line))


def read_text(path: Path) -> str | None:
    """A text file's contents, or None when it is missing or binary (then recorded lines are trusted)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")
