"""Configuration: `[tool.redline]` in the repo's pyproject.toml or a `redline.toml`, then `REDLINE_*` env overrides.

Per-repo state (queue, adapters, inbox) lives under the user data dir, keyed by a stable repo id, so nothing is
written into the user's tree unless they set `state_dir` themselves. Every key is documented in docs/config.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from redline.errors import ConfigError

CONFIG_FILES = ("redline.toml", "pyproject.toml")
_WINDOW = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class Config:
    """One typed view of the settings for one repository."""

    repo_root: Path
    repo_id: str
    home: Path
    state_dir: Path
    #: the base model (local path or a hub id already in the local cache) the trainer and demo use
    model: str | None = None
    #: fraction of prompts held out for the evaluation gate (fixed per prompt by a stable hash)
    heldout_fraction: float = 0.15
    #: records older than this many days are pruned by `redline prune`
    retention_days: float = 365.0
    #: scrub secrets from every record before it is queued
    scrub_secrets: bool = True
    #: GitHub `author_association` values whose review comments are trusted
    trusted_associations: tuple[str, ...] = ("OWNER", "MEMBER", "COLLABORATOR")
    #: seconds a generated span must sit saved and untouched before a human change to it counts as an edit
    settle_seconds: float = 30.0
    #: checkers the language server runs on save, per language id: a command list with `{path}`
    checkers: dict[str, list[list[str]]] = field(default_factory=dict)
    #: trainer settings passed through to the trainer's own config (validated there)
    train: dict[str, Any] = field(default_factory=dict)
    #: `redline daemon`: local time window "HH:MM-HH:MM" in which it trains (may wrap midnight)
    train_window: str = "01:00-06:00"
    #: `redline daemon`: train in the window once this many new attributed feedback records have arrived
    train_min_feedback: int = 32
    #: `redline daemon`: train on the CPU when there is no GPU (slow for real models)
    train_on_cpu: bool = False
    #: `redline daemon`: when training needs the GPU a running `redline serve` holds: "yield" (it unloads until
    #: training ends) or "wait" (the daemon waits until the GPU is free)
    serve_during_training: str = "yield"
    #: `redline daemon`: a training child running longer than this many minutes is stopped (no promotion)
    train_time_limit_minutes: float = 240.0
    #: `redline serve` / `proxy`: put the repository's N most frequent recurring lint and review red lines into
    #: every prompt as hints (0 = off): the fallback for a model that cannot learn from the feedback yet
    serve_hints: int = 0
    #: the team's queue: a libpq URL (`postgresql://host/db`) selects the PostgreSQL backend, shared by every
    #: machine of the team (docs/team.md); None keeps the per-repository SQLite file. Never put a password in it
    #: in a committed file: libpq reads PGPASSFILE (~/.pgpass) or PGPASSWORD
    queue_url: str | None = None
    #: a directory shared by the team (a network mount) holding the adapters as immutable `<repo>@vNNNN` folders
    #: in the layout vLLM's filesystem resolver reads, with the promoted version's pointer; None: per-user
    #: `adapters_dir`
    adapter_store: Path | None = None
    #: the config file that was read, if any
    source: Path | None = None
    #: problems found while reading the settings that do not stop Redline (a password in a committed
    #: `queue_url`): the queue's opener logs each one once per process
    warnings: tuple[str, ...] = ()

    @property
    def db_path(self) -> Path:
        return self.state_dir / "queue.sqlite3"

    @property
    def queue_location(self) -> str:
        """Where the queue is, as it may be printed: the team's URL without its password, else the SQLite file."""
        if self.queue_url:
            from redline.queue.url import redact

            return redact(self.queue_url)
        return str(self.db_path)

    @property
    def adapters_dir(self) -> Path:
        return self.state_dir / "adapters"

    @property
    def inbox_dir(self) -> Path:
        return self.state_dir / "inbox"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"


_SCALARS = {f.name: f for f in dataclasses.fields(Config) if f.name not in ("repo_root", "repo_id", "home",
                                                                              "state_dir", "source", "warnings")}
_URL_SCHEMES = ("postgresql://", "postgres://")


def load_config(start: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Find the repo around `start` (default: cwd), read its config file and apply env overrides."""
    env = dict(os.environ if env is None else env)
    root = find_repo_root(Path(start or Path.cwd()))
    raw, source = _read_file_settings(root)
    notes = _url_password_warning(raw.get("queue_url"), source)
    for name in _SCALARS:
        key = f"REDLINE_{name.upper()}"
        if key in env:
            raw[name] = env[key]
    home = redline_home(env)
    repo_id = str(raw.pop("repo_id", "") or env.get("REDLINE_REPO_ID") or repo_id_for(root))
    state = raw.pop("state_dir", None) or env.get("REDLINE_STATE_DIR")
    state_dir = (root / state) if state else home / "repos" / repo_slug(repo_id)
    values = {name: _convert(name, value, source) for name, value in raw.items()}
    if isinstance(values.get("adapter_store"), Path):
        values["adapter_store"] = (root / values["adapter_store"].expanduser()).resolve()
    return Config(repo_root=root, repo_id=repo_id, home=home, state_dir=state_dir.resolve(), source=source,
                  warnings=notes, **values)


def _url_password_warning(url: Any, source: Path | None) -> tuple[str, ...]:
    """The warning for a password written into `queue_url` in the config file (which is committed with the repo):
    it names where libpq looks instead, never the password."""
    from redline.queue.url import has_password

    if source is None or not isinstance(url, str) or not has_password(url):
        return ()
    return (f"{source.name}: queue_url holds a password, and this file is committed with the repository — remove "
            "it and let libpq read it from PGPASSFILE (default ~/.pgpass, mode 0600) or PGPASSWORD",)


def redline_home(env: Mapping[str, str] | None = None) -> Path:
    """Where Redline keeps per-user state: `REDLINE_HOME`, else the platform's user data dir."""
    values = os.environ if env is None else env
    return Path(values.get("REDLINE_HOME") or platformdirs.user_data_dir("redline", appauthor=False)).expanduser()


def find_repo_root(start: Path) -> Path:
    """The nearest ancestor holding `.git` or a config file; `start` itself when none does."""
    start = start.resolve()
    here = start if start.is_dir() else start.parent
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists() or (candidate / "redline.toml").exists():
            return candidate
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").exists():
            return candidate
    return here


def repo_id_for(root: Path) -> str:
    """A stable id: the normalised `origin` remote (host/owner/name), else the absolute root path."""
    try:
        url = subprocess.run(
            ["git", "-C", str(root), "config", "--get", "remote.origin.url"],
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        url = ""
    return normalise_remote(url) if url else str(root.resolve())


def normalise_remote(url: str) -> str:
    """`git@github.com:Org/Repo.git`, `https://user:pw@github.com/org/repo` → `github.com/org/repo`."""
    url = url.strip()
    m = re.match(r"^[\w.-]+@([\w.-]+):(.+)$", url)  # scp-like ssh
    if m:
        host, path = m.groups()
    else:
        m = re.match(r"^[a-z+]+://(?:[^@/]+@)?([^/:]+)(?::\d+)?/(.+)$", url)
        if not m:
            return url
        host, path = m.groups()
    path = re.sub(r"\.git/?$", "", path.strip("/"))
    return f"{host.lower()}/{path.lower()}"


def repo_slug(repo_id: str) -> str:
    """A file-system-safe, readable and collision-free directory name for a repo id."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", repo_id).strip("-")[-60:]
    return f"{readable}-{hashlib.sha256(repo_id.encode()).hexdigest()[:10]}"


def _read_file_settings(root: Path) -> tuple[dict[str, Any], Path | None]:
    for name in CONFIG_FILES:
        path = root / name
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"invalid TOML ({exc})", fix="fix the syntax or remove the file", path=path) from None
        section = data if name == "redline.toml" else data.get("tool", {}).get("redline")
        if section is None:
            continue
        if not isinstance(section, dict):
            raise ConfigError("[tool.redline] must be a table", fix="see docs/config.md", path=path)
        unknown = set(section) - set(_SCALARS) - {"repo_id", "state_dir"}
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)}", fix="see docs/config.md", path=path)
        return dict(section), path
    return {}, None


def _convert(name: str, value: Any, source: Path | None) -> Any:
    """Coerce a file or env value to the field's type, with an error that names the setting."""
    default = _SCALARS[name].default
    if default is dataclasses.MISSING:
        default = _SCALARS[name].default_factory()  # type: ignore[misc]
    where = source or "environment"
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes")
            return bool(value)
        if isinstance(default, int):
            whole = int(value)
            if whole < 0 or whole != float(value):
                raise ValueError(value)
            return whole
        if isinstance(default, float):
            number = float(value)
            if name == "heldout_fraction" and not 0 <= number < 1:
                raise ValueError(value)
            if name == "train_time_limit_minutes" and number <= 0:
                raise ValueError(value)
            return number
        if name == "train_window" and not _WINDOW.match(str(value)):
            raise ValueError(value)
        if name == "serve_during_training" and value not in ("yield", "wait"):
            raise ValueError(value)
        if name == "queue_url":
            if value is None or str(value).strip() == "":
                return None  # REDLINE_QUEUE_URL="" keeps the local SQLite queue
            if not isinstance(value, str) or not value.startswith(_URL_SCHEMES):
                raise ConfigError("setting `queue_url` must be a PostgreSQL URL (postgresql://host/db)",
                                  fix="see docs/team.md", path=where)
            return value
        if name == "adapter_store":
            return None if value is None or str(value).strip() == "" else Path(str(value))
        if isinstance(default, tuple):
            return tuple(value.split(",")) if isinstance(value, str) else tuple(value)
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ValueError(value)
            return value
        return value if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting `{name}` has a bad value {value!r}", fix="see docs/config.md",
                          path=where) from None
