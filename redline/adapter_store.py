"""A team's adapter store (`adapter_store = DIR`): every repository's versions in one shared directory, in the
layout vLLM's filesystem resolver serves, with each repository's promoted version behind a pointer.

    DIR/app@v0001/        adapter_config.json, adapter_model.safetensors, redline.json (repo id, gate, …)
    DIR/app@v0002/
    DIR/.app@v0003.staging-<host>-<pid>/   a version being written: hidden, never listed, never requested
    DIR/.pointers/app.json                 {"repo_id": …, "current": "v0002", "history": ["v0001"]}

Why: a team's workers train a repository one night on one machine and the next night on another, so the versions,
their numbering and the parent each run starts from must live where every worker and every server reads them.
`AdapterStore` is an `AdapterRegistry` whose versions sit at the top level under their served names
(`redline.adapters.served_name`), so a vLLM started with `VLLM_PLUGINS=lora_filesystem_resolver` and
`VLLM_LORA_RESOLVER_CACHE_DIR=DIR` loads `app@v0002` when a request names it, and `redline serve` follows the
pointer and hot-swaps as it does with the per-user registry.

A version is immutable: it is copied into a hidden staging folder, fsynced, and renamed to its name in one step;
a rename onto a name that exists fails, so a version is never overwritten, and a copy cut off half-way (SIGKILL,
power loss) leaves only a hidden staging folder. The pointer is replaced atomically. Versions are readable by
whoever may read DIR (files 0644, folders 0755): the store's own permissions say who is on the team.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redline.adapters import (
    REQUIRED,
    AdapterDamaged,
    AdapterRegistry,
    _has_weights,
    check_files,
    digests,
    served_name,
)
from redline.config import Config
from redline.errors import ConfigError, NotFound
from redline.fsutil import fsync_path
from redline.records import utc_now

POINTERS = ".pointers"
_STAGING = re.compile(r"^\.(?P<name>.+)@(?P<version>v\d{4,})\.staging-(?P<host>.+)-(?P<pid>\d+)$")


def registry_for(config: Config) -> AdapterRegistry:
    """Where this repository's adapters live: the team's `adapter_store` when set, else the per-user registry."""
    if config.adapter_store is not None:
        return AdapterStore(config.adapter_store, config.repo_id)
    return AdapterRegistry(config.adapters_dir)


class AdapterStore(AdapterRegistry):
    """One repository's versions in a shared store: `<repo>@vNNNN` folders at the top level, a pointer per repo."""

    def __init__(self, store_dir: Path, repo_id: str) -> None:
        self.root = Path(store_dir)
        self.repo_id = repo_id
        self.name = served_name(repo_id, "v0").rpartition("@")[0]
        self.versions_dir = self.root
        self.pointer = self.root / POINTERS / f"{self.name}.json"
        self._pattern = re.compile(rf"^{re.escape(self.name)}@(v\d{{4,}})$")

    def folder(self, version: str) -> Path:
        """Where `version` is (or would be) published: `DIR/<repo>@<version>`, the name vLLM is asked for."""
        return self.root / f"{self.name}@{version}"

    # -- reading -----------------------------------------------------------------------------------------------

    def versions(self) -> list[str]:
        """This repository's complete versions, oldest first (staging folders and other repositories' skipped)."""
        if not self.root.is_dir():
            return []
        found = [m.group(1) for p in self.root.iterdir() if (m := self._pattern.match(p.name)) and p.is_dir()
                 and all((p / f).is_file() for f in REQUIRED) and _has_weights(p)]
        return sorted(found, key=lambda v: int(v[1:]))

    def path(self, version: str) -> Path:
        if version not in self.versions():
            raise NotFound(f"no adapter version {version!r} of {self.name} in the adapter store",
                           fix="see `redline adapters list`", path=self.root)
        return self.folder(version)

    def current(self) -> str | None:
        state = self._state()
        if state.get("repo_id", self.repo_id) != self.repo_id:
            return None  # another repository's pointer under the same name: never serve its adapter
        v = state.get("current")
        return v if v in self.versions() else None

    def current_path(self) -> Path | None:
        v = self.current()
        return None if v is None else self.folder(v)

    # -- writing -----------------------------------------------------------------------------------------------

    def add(self, tmp_dir: Path, meta: dict[str, Any] | None = None, *,
            named: Callable[[str], dict[str, Any]] | None = None) -> str:
        """Publish a trained adapter as this repository's next version: staged under a hidden name, then renamed
        into place in one step. Refuses a name that another repository already publishes under."""
        tmp_dir = Path(tmp_dir)
        if not (tmp_dir / "adapter_config.json").is_file() or not _has_weights(tmp_dir):
            raise NotFound(f"{tmp_dir} holds no PEFT adapter", fix="train one first", path=tmp_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self._check_owner()
        self._sweep()
        version = self._next_version()
        staging = self.root / f".{self.name}@{version}.staging-{_host()}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(tmp_dir, staging, ignore=shutil.ignore_patterns("checkpoints", "README.md"))
        try:
            check_files(staging, version, None)  # a trainer that wrote a bad file fails here, not at serve time
        except AdapterDamaged:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        info = staging / "redline.json"
        merged = json.loads(info.read_text(encoding="utf-8")) if info.is_file() else {}
        merged.update(meta or {})
        merged["digests"] = digests(staging)  # checked at promote, export, load and hot swap (`verify`)
        for _ in range(100):  # another publisher took this number meanwhile: the next one
            merged.update(named(version) if named is not None else {})
            merged.update(version=version, registered_at=utc_now(), repo_id=self.repo_id,
                          served_name=f"{self.name}@{version}")
            _write_shared(info, json.dumps(merged, indent=2, sort_keys=True, default=str) + "\n")
            _readable(staging)
            try:
                os.rename(staging, self.folder(version))
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                version = f"v{int(version[1:]) + 1:04d}"
                continue
            fsync_path(self.root)
            return version
        raise ConfigError(f"cannot find a free version name for {self.name} in the adapter store", path=self.root)

    def update_meta(self, version: str, extra: dict[str, Any]) -> None:
        raise ConfigError(f"{self.name}@{version} is published and immutable", fix="publish a new version",
                          path=self.root)

    def _check_owner(self) -> None:
        for v in self.versions()[-1:]:
            owner = self.meta(v).get("repo_id")
            if owner not in (None, self.repo_id):
                raise ConfigError(f"the adapter store already publishes {self.name}@… for {owner}",
                                  fix=f"give this repository a distinct `repo_id` (its last part names its "
                                  f"adapters, now {self.name!r})", path=self.root)

    def _sweep(self) -> None:
        """Remove staging folders this host left behind (a publish killed half-way), whose process is gone."""
        for p in self.root.iterdir():
            m = _STAGING.match(p.name)
            if m and m.group("name") == self.name and m.group("host") == _host() and not _alive(int(m.group("pid"))):
                shutil.rmtree(p, ignore_errors=True)

    def _next_version(self) -> str:
        taken = [int(m.group(1)[1:]) for p in self.root.iterdir() if (m := self._pattern.match(p.name))]
        taken += [int(m.group("version")[1:]) for p in self.root.iterdir()
                  if (m := _STAGING.match(p.name)) and m.group("name") == self.name]
        return f"v{max(taken, default=0) + 1:04d}"

    def _write_state(self, state: dict[str, Any]) -> None:
        self.pointer.parent.mkdir(parents=True, exist_ok=True)
        _write_shared(self.pointer, json.dumps({**state, "repo_id": self.repo_id}, indent=2) + "\n")


def _host() -> str:
    return socket.gethostname().replace("-", "_")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_shared(path: Path, text: str) -> None:
    """Write temp, fsync, rename (readers see the old file or the new one), readable by whoever may read the store."""
    tmp = path.with_name(f".{path.name}.{_host()}-{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    fsync_path(path.parent)


def _readable(folder: Path) -> None:
    """Files 0644 and folders 0755 (a trained adapter is written private), every file fsynced before the rename."""
    for p in folder.rglob("*"):
        if p.is_file():
            os.chmod(p, 0o644)
            fsync_path(p)
        elif p.is_dir():
            os.chmod(p, 0o755)
    os.chmod(folder, 0o755)
    fsync_path(folder)
