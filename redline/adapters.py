"""Per-repo adapter versions: `adapters_dir/versions/<v>/` in PEFT layout + redline.json, and a `current` pointer.

A version becomes visible only by one rename of a complete, fsynced directory, so a crash mid-copy leaves a
hidden `.staging-*` directory that is never listed or served. `current` holds {"current": v, "history": [...]}
and is replaced atomically (write temp, fsync, os.replace); rollback pops the history.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from redline.errors import NotFound
from redline.fsutil import atomic_write, fsync_path, write_json
from redline.private import private_dir
from redline.records import utc_now

_VERSION = re.compile(r"^v(\d{4,})$")
REQUIRED = ("adapter_config.json", "redline.json")


def served_name(repo_id: str, version: str) -> str:
    """`<repo>@vNNNN`: the last part of the repo id (`github.com/org/app` → `app`) and the version."""
    repo = re.sub(r"[^A-Za-z0-9._-]+", "-", repo_id.rstrip("/").rsplit("/", 1)[-1]).strip("-") or "repo"
    return f"{repo}@{version}"


class AdapterRegistry:
    def __init__(self, adapters_dir: Path) -> None:
        self.root = Path(adapters_dir)
        self.versions_dir = self.root / "versions"
        self.pointer = self.root / "current"

    # -- reading -----------------------------------------------------------------------------------------------

    def versions(self) -> list[str]:
        """Complete versions, oldest first. Staging directories and anything without its files are skipped."""
        if not self.versions_dir.is_dir():
            return []
        found = [p.name for p in self.versions_dir.iterdir()
                 if p.is_dir() and _VERSION.match(p.name) and all((p / f).is_file() for f in REQUIRED)
                 and _has_weights(p)]
        return sorted(found, key=lambda v: int(v[1:]))

    def path(self, version: str) -> Path:
        if version not in self.versions():
            raise NotFound(f"no adapter version {version!r}", fix="see `redline adapters list`", path=self.root)
        return self.versions_dir / version

    def meta(self, version: str) -> dict[str, Any]:
        return json.loads((self.path(version) / "redline.json").read_text(encoding="utf-8"))

    def current(self) -> str | None:
        state = self._state()
        v = state.get("current")
        return v if v in self.versions() else None

    def current_path(self) -> Path | None:
        v = self.current()
        return None if v is None else self.versions_dir / v

    def table(self) -> list[dict[str, Any]]:
        """One row per version: version, current flag, created, method, records, parent, gate verdict."""
        cur = self.current()
        rows = []
        for v in self.versions():
            meta = self.meta(v)
            rows.append({"version": v, "current": v == cur, "created_at": meta.get("created_at"),
                         "method": meta.get("method"), "records": len(meta.get("records", [])),
                         "parent_version": meta.get("parent_version"),
                         "gate_passed": (meta.get("gate") or {}).get("passed"),
                         "base_model": (meta.get("base_model") or {}).get("id")})
        return rows

    # -- writing -----------------------------------------------------------------------------------------------

    def add(self, tmp_dir: Path, meta: dict[str, Any] | None = None) -> str:
        """Copy a trained adapter directory in as the next version; `meta` is merged into its redline.json."""
        tmp_dir = Path(tmp_dir)
        if not (tmp_dir / "adapter_config.json").is_file() or not _has_weights(tmp_dir):
            raise NotFound(f"{tmp_dir} holds no PEFT adapter", fix="train one first", path=tmp_dir)
        private_dir(self.versions_dir)  # 0700: adapters are trained on private code
        version = self._next_version()
        staging = self.versions_dir / f".staging-{version}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(tmp_dir, staging, ignore=shutil.ignore_patterns("checkpoints", "README.md"))
        existing = staging / "redline.json"
        merged = json.loads(existing.read_text(encoding="utf-8")) if existing.is_file() else {}
        merged.update(meta or {})
        merged.update(version=version, registered_at=utc_now())
        write_json(existing, merged)
        for f in staging.rglob("*"):
            if f.is_file():
                fsync_path(f)
        fsync_path(staging)
        os.rename(staging, self.versions_dir / version)
        fsync_path(self.versions_dir)
        return version

    def update_meta(self, version: str, extra: dict[str, Any]) -> None:
        path = self.path(version) / "redline.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        data.update(extra)
        write_json(path, data)

    def promote(self, version: str) -> None:
        """Make `version` current (the caller checks that it was trained on the base it will be served on)."""
        self.path(version)  # raises when missing or incomplete
        state = self._state()
        history = [v for v in state.get("history", []) if v != version]
        if state.get("current") and state["current"] != version:
            history.append(state["current"])
        self._write_state({"current": version, "history": history, "updated_at": utc_now()})

    def previous(self) -> str | None:
        """The version that was current before the current one (None: the base model)."""
        history = [v for v in self._state().get("history", []) if v in self.versions()]
        return history[-1] if history else None

    def rollback(self) -> str | None:
        """Make the previously promoted version current again (None = back to the base model)."""
        state = self._state()
        if not state.get("current"):
            raise NotFound("no adapter is promoted, nothing to roll back", fix="run `redline train`",
                           path=self.root)
        history = [v for v in state.get("history", []) if v in self.versions()]
        previous = history.pop() if history else None
        self._write_state({"current": previous, "history": history, "updated_at": utc_now()})
        return previous

    def _next_version(self) -> str:
        taken = [int(m.group(1)) for p in self.versions_dir.iterdir()
                 if (m := re.match(r"^\.?(?:staging-)?v(\d{4,})", p.name))]
        return f"v{max(taken, default=0) + 1:04d}"

    def _state(self) -> dict[str, Any]:
        try:
            return json.loads(self.pointer.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _write_state(self, state: dict[str, Any]) -> None:
        private_dir(self.root)
        atomic_write(self.pointer, json.dumps(state, indent=2) + "\n")


def _has_weights(path: Path) -> bool:
    return (path / "adapter_model.safetensors").is_file() or (path / "adapter_model.bin").is_file()
