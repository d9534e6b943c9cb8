"""What `redline/status` reports, and noticing that the trainer promoted a new adapter.

Everything about training comes from the one typed record `redline.status.read_status`; this module only shapes
it for the client (camelCase keys) and decides when to announce a promotion.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from redline.lsp_server.documents import Repo
from redline.status import read_status as read_training


def read_status(repo: Repo) -> tuple[dict[str, Any], str | None]:
    """The `redline/status` payload, and a promotion message when the current adapter changed since last look."""
    store, config = repo.store, repo.config
    counts = store.counts()
    training = read_training(store)
    adapter = training.adapter
    status = {
        "repo": config.repo_id,
        "queued": counts["states"].get("new", 0),
        "generations": counts["generations"],
        "feedback": counts["feedback"],
        "adapter": adapter.version,
        "gate": [asdict(g) for g in adapter.gate],
        "gateSummary": adapter.summary,
        "lastTraining": None if training.last is None else asdict(training.last),
        "nextTraining": training.next_training,
        "daemon": None if training.daemon is None else training.daemon.state,
    }
    promoted = None
    if repo.looked and adapter.version is not None and adapter.version != repo.adapter_seen:
        promoted = f"Redline: adapter {adapter.version} promoted for {config.repo_id}"
        if adapter.summary or adapter.gate:
            promoted += " — " + (adapter.summary or adapter.figures())
    repo.adapter_seen, repo.looked = adapter.version, True
    return status, promoted
