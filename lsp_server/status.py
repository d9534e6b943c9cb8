"""What `redline/status` reports, and noticing that the trainer promoted a new adapter.

The current adapter is the queue's `current_adapter` meta value when set (a version string, or an object with
`version` and `gate`), else the adapter registry's pointer file `adapters/current` (`{"current": "v0003"}`). Gate
figures come from the meta object or from the version's `adapters/versions/<v>/redline.json` (`gate.rows`).
`last_training` and `next_training` (meta keys) are passed through as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lsp_server.documents import Repo


def read_status(repo: Repo) -> tuple[dict[str, Any], str | None]:
    """The `redline/status` payload, and a promotion message when the current adapter changed since last look."""
    store, config = repo.store, repo.config
    counts = store.counts()
    version, gate = current_adapter(store.get_meta("current_adapter"), config.adapters_dir)
    status = {
        "repo": config.repo_id,
        "queued": counts["states"].get("new", 0),
        "generations": counts["generations"],
        "feedback": counts["feedback"],
        "adapter": version,
        "lastTraining": store.get_meta("last_training"),
        "nextTraining": store.get_meta("next_training"),
    }
    promoted = None
    if repo.looked and version is not None and version != repo.adapter_seen:
        promoted = f"Redline: adapter {version} promoted for {config.repo_id}"
        figures = gate_figures(gate)
        if figures:
            promoted += " — " + figures
    repo.adapter_seen, repo.looked = version, True
    return status, promoted


def current_adapter(meta: Any, adapters_dir: Path) -> tuple[str | None, Any]:
    """(version, gate) of the promoted adapter, or (None, None) when the base model is in use."""
    gate = None
    if isinstance(meta, dict):
        version, gate = meta.get("version"), meta.get("gate")
    elif meta is not None:
        version = meta
    else:
        pointer = _read_json(adapters_dir / "current")
        version = pointer.get("current") if isinstance(pointer, dict) else None
    if version is None:
        return None, None
    version = str(version)
    if gate is None:
        record = _read_json(adapters_dir / "versions" / version / "redline.json")
        gate = record.get("gate") if isinstance(record, dict) else None
    return version, gate


def gate_figures(gate: Any) -> str:
    """`{"rows": [{metric, before, after}...]}` (the trainer's gate report) or a flat `{figure: value}`."""
    if not isinstance(gate, dict):
        return ""
    rows = gate.get("rows")
    if isinstance(rows, list):
        parts = []
        for r in rows:
            if isinstance(r, dict) and isinstance(r.get("before"), int | float) and isinstance(r.get("after"),
                                                                                              int | float):
                parts.append(f"{r.get('metric')} {r['before']:.4g} → {r['after']:.4g}")
        return ", ".join(parts)
    return ", ".join(f"{k} {v}" for k, v in gate.items() if not isinstance(v, dict | list))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
