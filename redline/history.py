"""What git knows about how a file changed since a commit: `git diff -U0 COMMIT -- PATH` as line hunks.

A span recorded at a commit is mapped to today's lines exactly and in time linear in the file: lines outside
every hunk moved by the hunks above them; lines inside a hunk were removed or rewritten by someone (the text
git shows as removed is what stood there). One `git diff` per (path, commit), whatever the number of spans
or findings in the file.
"""

from __future__ import annotations

import bisect
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

GIT_TIMEOUT_S = 20

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True, slots=True)
class Hunk:
    """Old lines [old_start, old_start + old_count) became new lines [new_start, new_start + new_count) (0-based)."""

    old_start: int
    old_count: int
    new_start: int
    new_count: int
    removed: tuple[str, ...] = ()

    @property
    def old_end(self) -> int:
        return self.old_start + self.old_count


@dataclass(slots=True)
class LineMap:
    """Old line numbers (at the commit) to new ones (the working tree), from the diff's hunks, sorted."""

    hunks: list[Hunk] = field(default_factory=list)
    _ends: list[int] = field(default_factory=list)
    _shift: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        shift = 0
        for h in self.hunks:
            shift += h.new_count - h.old_count
            self._ends.append(h.old_end)
            self._shift.append(shift)

    def walk(self, start: int, end: int) -> list[tuple[int, int | None, str | None]]:
        """For each old line in [start, end): (old line, new line or None if removed, removed text or None)."""
        out: list[tuple[int, int | None, str | None]] = []
        # hunks ending at or before `start` only shift it; a pure insertion at `start` shifts it too
        k = bisect.bisect_right(self._ends, start)
        shift = self._shift[k - 1] if k else 0
        line = start
        while line < end:
            hunk = self.hunks[k] if k < len(self.hunks) else None
            if hunk is None or line < hunk.old_start:
                stop = end if hunk is None else min(end, hunk.old_start)
                out.extend((i, i + shift, None) for i in range(line, stop))
                line = stop
                continue
            if hunk.old_count == 0 or line >= hunk.old_end:  # an insertion before this line: it moves down
                shift = self._shift[k]
                k += 1
                continue
            stop = min(end, hunk.old_end)
            out.extend((i, None, hunk.removed[i - hunk.old_start]) for i in range(line, stop))
            line = stop
        return out


def parse_unified(diff: str) -> LineMap:
    """Hunks of a `-U0` unified diff of one file (header lines and `\\ No newline` markers are skipped)."""
    hunks: list[Hunk] = []
    current: list[str] | None = None
    head: tuple[int, int, int, int] | None = None

    def close() -> None:
        if head is not None:
            hunks.append(Hunk(*head, removed=tuple(current or ())))

    for line in diff.splitlines():
        m = _HUNK.match(line)
        if m:
            close()
            a, b, c, d = int(m[1]), int(m[2] or 1), int(m[3]), int(m[4] or 1)
            # with a count of 0 the number is the line *before* the empty range (1-based), i.e. its 0-based index
            head = (a if b == 0 else a - 1, b, c if d == 0 else c - 1, d)
            current = []
        elif current is not None and line.startswith("-"):
            current.append(line[1:])
    close()
    return LineMap(hunks)


def diff_since(repo_root: Path, commit: str, path: str) -> LineMap | None:
    """How `path` changed from `commit` to the working tree; None when git cannot say (no git, no such commit,
    the file not in that commit, a binary file)."""
    if not re.fullmatch(r"[0-9a-fA-F]{4,64}", commit):
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(repo_root), "-c", "core.quotepath=off", "diff", "-U0", "--no-color", "--no-ext-diff",
             "--no-renames", "--text", commit, "--", path],
            capture_output=True, text=True, errors="replace", timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    if "\nnew file mode" in f"\n{done.stdout}":  # not in the commit: history has nothing to map from
        return None
    return parse_unified(done.stdout)
