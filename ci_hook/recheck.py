"""How each harvested red line can be drawn again: the recipe (`redline.evidence.Recheck`) stored with a finding,
so the gate and the hindsight probe can rerun the tool on a new answer instead of guessing.

- a pytest failure: its node, with the interpreter and pytest version that ran it;
- a ruff finding: `ruff check` on the file, with ruff's version;
- any other report: the command given with `redline ci ingest --recheck CMD` (`{file}` = the file's path; a
  command that prints ruff's JSON when the report was ruff's, else its exit status is the verdict).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterable
from functools import cache

from redline.evidence import Recheck, with_recheck
from redline.records import Feedback

RUFF_ARGV = ("ruff", "check", "--no-cache", "--output-format", "json", "{file}")


def pytest_node(nodeid: str, version: str | None) -> Recheck:
    return Recheck((sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", nodeid), "exit", "pytest",
                   version)


@cache
def ruff_version() -> str | None:
    """`ruff --version`'s number, or None when ruff is not on PATH (the recipe is still stored: the machine that
    reruns it may have it)."""
    try:
        out = subprocess.run(["ruff", "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.stdout.split()
    return words[-1] if out.returncode == 0 and words else None


def command(cmd: str, *, fmt: str | None) -> Recheck:
    """`--recheck CMD` as a recipe: it reads ruff's JSON when the report it came with was ruff's."""
    argv = tuple(shlex.split(cmd))
    if not argv:
        raise ValueError("an empty --recheck command")
    return Recheck(argv, "ruff-json" if fmt == "ruff" else "exit", argv[0])


def attach(feedback: Iterable[Feedback], *, fmt: str | None, recheck: str | None) -> None:
    """Give each finding its recipe: the user's command when given, ruff's own for ruff findings."""
    given = command(recheck, fmt=fmt) if recheck else None
    for fb in feedback:
        if given is not None:
            with_recheck(fb, given)
        elif fb.kind == "diagnostic" and fb.source == "ruff" and fb.path:
            with_recheck(fb, Recheck(RUFF_ARGV, "ruff-json", "ruff", ruff_version()))
