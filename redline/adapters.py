"""Per-repo adapter versions: `adapters_dir/versions/<v>/` in PEFT layout + redline.json, and a `current` pointer.

A version becomes visible only by one rename of a complete, fsynced directory, so a crash mid-copy leaves a
hidden `.staging-*` directory that is never listed or served. `current` holds {"current": v, "history": [...]}
and is replaced atomically (write temp, fsync, os.replace); rollback pops the history.

A version can still be damaged after it was registered (a full disk during a copy, a truncated download, an edit
by hand), and a damaged adapter must never be served, exported or promoted: `add` records the sha256 of the files
that make the adapter (`digests` in redline.json), and `verify` checks them and the safetensors header at promote,
export, load and hot swap. Versions registered before digests were recorded get the header check alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redline.errors import NotFound, RedlineError
from redline.fsutil import atomic_write, fsync_path, write_json
from redline.private import private_dir
from redline.records import utc_now

_VERSION = re.compile(r"^v(\d{4,})$")
REQUIRED = ("adapter_config.json", "redline.json")
#: the files whose bytes make the adapter (redline.json is notes about it, and changes after registration)
DIGESTED = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


class AdapterDamaged(RedlineError):
    """A registered version's files are not the ones it was registered with, or not a readable adapter."""


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

    def add(self, tmp_dir: Path, meta: dict[str, Any] | None = None, *,
            named: Callable[[str], dict[str, Any]] | None = None) -> str:
        """Copy a trained adapter directory in as the next version; `meta` is merged into its redline.json, and
        `named(version)` too: what names the version it lands as (the gate's one line), written in the same
        step, since a published version cannot be changed afterwards (`redline.adapter_store`)."""
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
        try:
            check_files(staging, version, None)  # a trainer that wrote a bad file fails here, not at serve time
        except AdapterDamaged:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        merged.update(named(version) if named is not None else {})
        merged.update(version=version, registered_at=utc_now(), digests=digests(staging))
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

    def verify(self, version: str) -> Path:
        """The version's directory, after checking its files against the digests recorded at registration and its
        safetensors header; AdapterDamaged (one line naming the file) otherwise."""
        path = self.path(version)
        try:
            recorded = json.loads((path / "redline.json").read_text(encoding="utf-8")).get("digests")
        except (OSError, ValueError) as exc:
            raise AdapterDamaged(f"adapter {version}'s redline.json is unreadable ({exc})", path=path,
                                 fix=_REPAIR) from None
        check_files(path, version, recorded if isinstance(recorded, dict) else None)
        return path

    def promote(self, version: str) -> None:
        """Make `version` current (the caller checks that it was trained on the base it will be served on)."""
        self.verify(version)  # raises when missing, incomplete or damaged
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


_REPAIR = "nothing was changed; retrain it (`redline train`) or use another version (`redline adapters list`)"


def digests(path: Path) -> dict[str, str]:
    """sha256 of each adapter file present in `path` (see DIGESTED)."""
    out = {}
    for name in DIGESTED:
        if (path / name).is_file():
            h = hashlib.sha256()
            with open(path / name, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            out[name] = h.hexdigest()
    return out


def check_files(path: Path, version: str, recorded: dict[str, Any] | None) -> None:
    """AdapterDamaged unless `path` holds a readable adapter whose files match `recorded` (when given)."""
    def damaged(what: str) -> AdapterDamaged:
        return AdapterDamaged(f"adapter {version} is damaged: {what}", path=path, fix=_REPAIR)

    try:
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise damaged(f"adapter_config.json is not readable JSON ({exc})") from None
    if not isinstance(config, dict):
        raise damaged("adapter_config.json is not a JSON object")
    weights = path / "adapter_model.safetensors"
    if weights.is_file():
        problem = safetensors_problem(weights)
        if problem:
            raise damaged(f"adapter_model.safetensors {problem}")
    if recorded:
        now = digests(path)
        for name, digest in sorted(recorded.items()):
            if now.get(name) != digest:
                raise damaged(f"{name} is not the file it was registered with (sha256 differs)"
                              if name in now else f"{name} is missing")


def safetensors_problem(file: Path) -> str | None:
    """Why `file` is not a complete safetensors file (None when it is): the header's length, its JSON and the
    data it describes must fit the file exactly — a truncated copy fails here. `safetensors` checks it when
    installed (the training extra); without it the same layout rules are read here."""
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:
        return _layout_problem(file)
    try:
        with safe_open(str(file), framework="numpy") as f:
            f.keys()
    except (SafetensorError, OSError) as exc:
        return f"is not a complete safetensors file ({' '.join(str(exc).split())})"
    return None


def _layout_problem(file: Path) -> str | None:
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if n < 2 or n > size - 8:
            return f"has no valid header ({size} bytes)"
        try:
            header = json.loads(fh.read(n))
            end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return "has an unreadable header"
    if 8 + n + end != size:
        return f"is {size} bytes, but its header describes {8 + n + end}"
    return None


def adapter_shapes(src: Path) -> dict[str, tuple[int, int]]:
    """Adapted module → (out, in) of the base weight it modifies, from the safetensors header alone (the export's
    base check and the server's check before peft loads it)."""
    from safetensors import safe_open

    a_in: dict[str, int] = {}
    b_out: dict[str, int] = {}
    with safe_open(str(src / "adapter_model.safetensors"), framework="numpy") as f:
        for key in f.keys():
            module = key.removeprefix("base_model.model.")
            if module.endswith(".lora_A.weight"):
                a_in[module.removesuffix(".lora_A.weight")] = f.get_slice(key).get_shape()[1]
            elif module.endswith(".lora_B.weight"):
                b_out[module.removesuffix(".lora_B.weight")] = f.get_slice(key).get_shape()[0]
    return {m: (b_out[m], a_in[m]) for m in a_in if m in b_out}


def _has_weights(path: Path) -> bool:
    return (path / "adapter_model.safetensors").is_file() or (path / "adapter_model.bin").is_file()
