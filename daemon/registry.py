"""The repositories the daemon looks after: `<Redline home>/daemon/repos.json`, written by `redline init`.

A repository that was deleted or moved stays registered (the daemon skips it with a warning) until `redline
daemon forget`, so a drive that is not mounted tonight does not lose its place.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from redline.errors import ConfigError, NotFound
from redline.records import utc_now

FILE = Path("daemon") / "repos.json"


@dataclass(frozen=True)
class RegisteredRepo:
    root: str
    repo_id: str
    added_at: str


def repos_file(home: Path) -> Path:
    return Path(home) / FILE


def registered(home: Path) -> list[RegisteredRepo]:
    path = repos_file(home)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unreadable repository list ({exc})", fix="fix or delete it, then `redline init` in "
                          "each repository again", path=path) from None
    try:
        return [RegisteredRepo(str(r["root"]), str(r["repo_id"]), str(r.get("added_at", ""))) for r in data]
    except (TypeError, KeyError):
        raise ConfigError("the repository list is not a list of {root, repo_id}", fix="fix or delete it",
                          path=path) from None


def register(home: Path, root: Path, repo_id: str) -> bool:
    """Add a repository (by its resolved root); False when it was already there."""
    root_s = str(Path(root).resolve())
    with _locked(home):
        repos = registered(home)
        if any(r.root == root_s for r in repos):
            return False
        _write(home, [*repos, RegisteredRepo(root_s, repo_id, utc_now())])
    return True


def forget(home: Path, which: str) -> RegisteredRepo:
    """Remove the repository whose root (as given or resolved) or repo id is `which`."""
    with _locked(home):
        repos = registered(home)
        hit = find(repos, which)
        _write(home, [r for r in repos if r is not hit])
    return hit


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Two `redline init`s at once must not drop each other's line (read, change, write under one lock)."""
    path = repos_file(home).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def find(repos: list[RegisteredRepo], which: str) -> RegisteredRepo:
    resolved = str(Path(which).expanduser().resolve())
    for r in repos:
        if which in (r.root, r.repo_id) or resolved == r.root:
            return r
    raise NotFound(f"{which!r} is not a registered repository", fix="see `redline daemon status`")


def _write(home: Path, repos: list[RegisteredRepo]) -> None:
    path = repos_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps([asdict(r) for r in repos], indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
