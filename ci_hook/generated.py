"""Finding the code a model wrote in a checkout.

Two kinds of evidence, kept apart because they are not equally sure:

* Spans the language server or model server recorded when the text was inserted, re-anchored by content in the
  current tree (`redline.attribution.attribute`). These attribute feedback to a generation.
* Commits whose message carries a coding agent's trailer (`Co-authored-by: Claude <noreply@anthropic.com>`,
  `Co-authored-by: Copilot …`) or whose author has aider's " (aider)" suffix, found for a line by `git blame`.
  Trailers can be switched off or forged, so this is only a low-trust hint: it is stored in
  `meta["generated_hint"]` with `"trust": "low"` and never sets a generation id.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from redline.attribution import Confidence, Match, locate, read_text
from redline.queue.store import Store
from redline.records import Feedback, Range, Span

#: (pattern on a Co-authored-by line or author, agent name)
AGENT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"anthropic\.com|\bclaude\b", re.I), "claude"),
    (re.compile(r"\bcopilot\b", re.I), "copilot"),
    (re.compile(r"\bcursor(agent)?\b", re.I), "cursor"),
    (re.compile(r"\bcodex\b|openai\.com", re.I), "codex"),
    (re.compile(r"\bdevin\b", re.I), "devin"),
    (re.compile(r"\bgemini\b|google-labs-jules|\bjules\b", re.I), "gemini"),
    (re.compile(r"\baider\b", re.I), "aider"),
)
_TRAILER = re.compile(r"^co-authored-by:\s*(.+)$", re.I | re.M)
GIT_TIMEOUT_S = 20


def agent_of_commit(author: str, message: str) -> str | None:
    """The coding agent a commit's trailers or aider-style author name point to, if any."""
    if author.rstrip().endswith("(aider)"):
        return "aider"
    for trailer in _TRAILER.findall(message):
        for pattern, name in AGENT_PATTERNS:
            if pattern.search(trailer):
                return name
    return None


_CONFIDENCE_ORDER = {"exact": 0, "reanchored": 1, "fuzzy": 2}


@dataclass
class SpanFinder:
    """Attributes (path, line) locations to generations. Each file is read, and each of its spans re-anchored in
    it (`redline.attribution.locate`, the rule `attribute` applies), once per run however many failures point
    into it."""

    store: Store
    repo_root: Path
    texts: dict[str, str | None] = field(default_factory=dict)
    _anchored: dict[str, list[Match]] = field(default_factory=dict)

    def find(self, locations: Iterable[tuple[str, int]]) -> tuple[Match, str, int] | None:
        """The first location (repo-relative path, 0-based line) a generation's span covers, best match first."""
        for path, line in locations:
            covering = [m for m in self.anchored(path) if m.span.range.overlaps_lines(line, line)]
            if covering:
                best = min(covering, key=lambda m: (_CONFIDENCE_ORDER[m.confidence],
                                                    m.span.range.end_line - m.span.range.start_line))
                return best, path, line
        return None

    def anchored(self, path: str) -> list[Match]:
        """Every live span of `path` where it stands in the current file (spans no longer found are left out)."""
        if path not in self._anchored:
            if path not in self.texts:
                self.texts[path] = read_text(self.repo_root / path)
            text = self.texts[path]
            found = []
            if text is not None:
                lines = [line.rstrip() for line in text.splitlines()]
                for span in self.store.spans_for_path(path):
                    where = None if span.state == "deleted" else _unmoved(span, lines)
                    if where is None and span.state != "deleted":
                        where = locate(span.text, text, span.range.start_line)
                    if where is not None:
                        moved = Span(span.generation_id, span.path, where[0], span.text, span.state, span.commit,
                                     span.updated_at)
                        found.append(Match(span.generation_id, moved, where[1]))
            self._anchored[path] = found
        return self._anchored[path]


def _unmoved(span: Span, lines: list[str]) -> tuple[Range, Confidence] | None:
    """`locate`'s first case (the text still at its recorded lines) without re-splitting the file per span."""
    want = [line.rstrip() for line in span.text.splitlines()] or [""]
    start = span.range.start_line
    if lines[start:start + len(want)] == want:
        return Range(start, start + len(want)), "exact"
    return None


class BlameHints:
    """Low-trust hints from `git blame` plus AI-commit trailers; every git call is cached and time-limited."""

    def __init__(self, repo_root: Path) -> None:
        self.repo_root = repo_root
        self.enabled = (repo_root / ".git").exists()
        self._blame: dict[str, dict[int, str]] = {}
        self._agents: dict[str, str | None] = {}

    def hint(self, path: str, line: int) -> dict[str, object] | None:
        """For 0-based `line` of repo-relative `path`: the agent commit that last changed it, if one did."""
        if not self.enabled:
            return None
        if path not in self._blame:
            self._blame[path] = self._run_blame(path)
        found = self._blame[path].get(line + 1)
        if found is None:
            return None
        sha = found
        agent = self._agents.get(sha)
        if agent is None:
            return None
        return {"agent": agent, "commit": sha, "evidence": "commit-trailer+git-blame", "trust": "low"}

    @property
    def files_blamed(self) -> int:
        return len(self._blame)

    def _run_blame(self, path: str) -> dict[int, str]:
        out = _git(self.repo_root, "blame", "--porcelain", "--", path)
        lines: dict[int, str] = {}
        boundary: set[str] = set()
        sha = ""
        for raw in out.splitlines():
            head = re.match(r"^([0-9a-f]{40}) \d+ (\d+)", raw)
            if head:
                sha = head.group(1)
                lines[int(head.group(2))] = sha
            elif raw == "boundary":
                boundary.add(sha)
        # a boundary commit (the bottom of a shallow clone) only seems to have written every line below it
        lines = {n: s for n, s in lines.items() if s not in boundary}
        new = [s for s in set(lines.values()) if s not in self._agents and s != "0" * 40]
        if new:
            bodies = _git(self.repo_root, "show", "-s", "--format=%H%x1f%an%x1f%B%x1e", *new)
            for record in bodies.split("\x1e"):
                parts = record.strip().split("\x1f")
                if len(parts) == 3:
                    self._agents[parts[0]] = agent_of_commit(parts[1], parts[2])
        return lines


def add_commit_hints(repo_root: Path, feedback: Iterable[Feedback], hints: BlameHints | None = None) -> int:
    """Mark unattributed, located feedback on lines an agent commit wrote; returns how many were marked."""
    hints = hints or BlameHints(repo_root)
    if not hints.enabled:
        return 0
    marked = 0
    for fb in feedback:
        if fb.generation_id is None and fb.path and fb.range is not None:
            hint = hints.hint(fb.path, fb.range.start_line)
            if hint is not None:
                fb.meta["generated_hint"] = hint
                marked += 1
    return marked


def _git(repo_root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(repo_root), *args], capture_output=True, text=True,
                              errors="replace", timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""
