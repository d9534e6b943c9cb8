"""What every capture importer shares: which repository an event belongs to, ids that stay the same on re-import,
reading JSONL where a bad line is counted (not fatal), and writing one batch through the ledger."""

from __future__ import annotations

import json
import os
import re
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redline.attribution import repo_relative
from redline.config import Config
from redline.ledger import record
from redline.queue.protocol import Store
from redline.records import Feedback, Generation

#: longest line read; a longer one is not an event (and would exhaust memory)
MAX_LINE_BYTES = 16 * 1024 * 1024
_NAMESPACE = uuid.UUID("8f1d2a52-5b8e-4f7c-9a55-3c1f0d6f2b11")


@dataclass
class Report:
    """What one import of a capture directory did."""

    files: int = 0
    events: int = 0
    #: events of another repository (or of none Redline can tell), not taken
    other_repo: int = 0
    #: lines that are not an event of a known shape: (file, line number, why), all counted, the first few kept
    skipped: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    generations: int = 0
    feedback: int = 0
    duplicates: int = 0
    #: records set aside because another process held the queue (merged on its next open)
    spooled: int = 0

    def skip(self, path: Path, lineno: int, why: str) -> None:
        self.skipped += 1
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append(f"{path.name}:{lineno} {why}")

    def summary(self, source: str) -> str:
        text = (f"{source}: {self.events} events in {self.files} files → {self.generations} generations, "
                f"{self.feedback} feedback added ({self.duplicates} already queued)")
        if self.spooled:
            text += f"; {self.spooled} records spooled (another process holds the queue; its next open merges them)"
        if self.other_repo:
            text += f"; {self.other_repo} events of other repositories left out"
        if self.skipped:
            text += (f"; {self.skipped} line{'s' if self.skipped != 1 else ''} skipped"
                     f" ({', '.join(self.skipped_examples)})")
        return text


def stable_id(source: str, *parts: object) -> str:
    """A generation id made from the capture's own ids, so importing the same events again adds nothing."""
    return uuid.uuid5(_NAMESPACE, "\0".join([source, *map(str, parts)])).hex


def json_lines(path: Path, report: Report) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line of `path` that is a JSON object; anything else is counted in `report`.

    Only a regular file is read, and a symbolic link is not followed: a tool writes its logs as plain files, and a
    link (or a FIFO, a device) in their place would make the importer read whatever it points at."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        why = "a symbolic link, not followed" if path.is_symlink() else f"cannot open ({exc.strerror})"
        report.skip(path, 0, why)
        return
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        report.skip(path, 0, "not a regular file")
        return
    with os.fdopen(fd, "rb") as stream:
        lineno = 0
        while raw := stream.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            if not raw.strip():
                continue
            if len(raw) > MAX_LINE_BYTES:
                report.skip(path, lineno, "longer than 16 MB")
                stream.readline()  # the rest of that line
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                report.skip(path, lineno, "not JSON")
                continue
            if not isinstance(obj, dict):
                report.skip(path, lineno, "not a JSON object")
                continue
            yield lineno, obj


def text_field(obj: dict[str, Any], name: str) -> str:
    """`obj[name]` as a string; ValueError naming the field otherwise."""
    value = obj.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value


@dataclass(frozen=True)
class RepoIdentity:
    """How a capture names a repository: its root directory, or one of its remotes' URLs."""

    root: Path
    remotes: frozenset[str]

    @classmethod
    def of(cls, config: Config) -> RepoIdentity:
        return cls(config.repo_root, frozenset(filter(None, map(normalise_remote, _git_remotes(config.repo_root)))))

    def owns(self, *, path: str | None = None, remote: str | None = None) -> str | None:
        """The repo-relative path when the event is this repository's ("" when only the remote says so)."""
        if path and (Path(path).is_absolute() or path.startswith("file://")):
            rel = repo_relative(self.root, path)
            if rel is not None:
                return rel
            return None
        if remote and normalise_remote(remote) in self.remotes:
            return path or ""
        return None


def normalise_remote(url: str) -> str:
    """`git@github.com:a/b.git`, `https://user@github.com/a/b` and `github.com/a/b/` all become `github.com/a/b`."""
    text = url.strip().lower()
    text = re.sub(r"^[a-z+]+://", "", text)
    text = re.sub(r"^[^@/]+@", "", text)
    text = re.sub(r"^([^/:]+):(?!\d+/)", r"\1/", text)  # scp-like host:path (not host:port/)
    text = re.sub(r"^([^/:]+):\d+/", r"\1/", text)
    return text.rstrip("/").removesuffix(".git")


def _git_remotes(root: Path) -> list[str]:
    """The remote URLs in `.git/config` (read as text: no git needed, nothing run)."""
    try:
        text = (root / ".git" / "config").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return re.findall(r"^\s*url\s*=\s*(\S+)\s*$", text, flags=re.MULTILINE)


def iso_time(value: Any) -> str | None:
    """An ISO timestamp or epoch milliseconds as Redline's `created_at` (UTC, milliseconds, `Z`); None if neither."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            when = datetime.fromtimestamp(value / 1000, UTC)
        elif isinstance(value, str):
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write(store: Store, config: Config, generations: list[Generation], feedback: list[Feedback],
          report: Report) -> None:
    """Queue a batch in one transaction through the ledger (repo id, split, attribution)."""
    added = record(store, config, generations=generations, feedback=feedback)
    if added.spooled:
        report.spooled += len(generations) + len(feedback)
        return
    report.generations += added.generations
    report.feedback += added.feedback
    report.duplicates += len(generations) - added.generations + len(feedback) - added.feedback
