"""Low-trust hints about code a coding agent committed.

Spans the language server or model server recorded attribute feedback to a generation (the core engine,
`redline.attribution.Attributor`). This module adds the weaker evidence, kept apart because it is not as sure:

* Commits whose message carries a coding agent's trailer (`Co-authored-by: Claude <noreply@anthropic.com>`,
  `Co-authored-by: Copilot …`) or whose author has aider's " (aider)" suffix, found for a line by `git blame`.
  Trailers can be switched off or forged, so this is only a low-trust hint: it is stored in
  `meta["generated_hint"]` with `"trust": "low"` and never sets a generation id.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from redline.records import Feedback

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
