"""One typed record of a repository's training state: the served adapter and its gate figures, the last training
and the next one, and what the daemon is doing.

Three parts, each with one writer and its own queue meta key, so no writer has to read-modify-write another's
part: the trainer's run (and `redline adapters promote|rollback`) writes the adapter, the run or the daemon writes
the last training (the daemon when a child died before it could), the daemon writes its own state. `redline
status`, the language server and the daemon read all three through `read_status`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from redline.adapters import AdapterRegistry
from redline.queue import Store

#: queue meta keys, the only ones the training state lives under
ADAPTER_KEY = "training.adapter"
LAST_KEY = "training.last"
DAEMON_KEY = "training.daemon"

Result = Literal["promoted", "refused", "nothing", "failed", "skipped"]
DaemonState = Literal["idle", "waiting", "training", "backoff"]


@dataclass(frozen=True)
class GateFigure:
    """One row of the evaluation gate: a metric before (served adapter or base) and after (the new adapter)."""

    metric: str
    before: float
    after: float
    ok: bool

    def text(self) -> str:
        return f"{self.metric} {self.before:.4g} → {self.after:.4g}"


@dataclass(frozen=True)
class AdapterStatus:
    """The adapter being served (None: the base model) and the figures its gate reported."""

    version: str | None = None
    path: str | None = None
    gate_passed: bool | None = None
    gate: tuple[GateFigure, ...] = ()
    #: the gate's verdict in a user's words ("v0007 fixes 11 of 16 held-out red lines …: promoted")
    summary: str | None = None
    #: what happened to the served version after its gate (an online rollback, say)
    note: str | None = None

    def figures(self) -> str:
        return ", ".join(g.text() for g in self.gate)


@dataclass(frozen=True)
class LastTraining:
    """How the last training attempt ended. `reason` says why it was not promoted, failed or was skipped."""

    at: str
    result: Result
    reason: str | None = None
    version: str | None = None
    records: int = 0
    #: the hindsight probe's one line: what the model fixed when shown the feedback, and what followed
    probe: str | None = None


@dataclass(frozen=True)
class DaemonStatus:
    """What `redline daemon` is doing for this repository, and when it plans to train next (ISO time or None)."""

    state: DaemonState = "idle"
    detail: str | None = None
    next_training: str | None = None
    at: str | None = None


@dataclass(frozen=True)
class TrainingStatus:
    adapter: AdapterStatus = field(default_factory=AdapterStatus)
    last: LastTraining | None = None
    #: None when no daemon has looked after this repository
    daemon: DaemonStatus | None = None

    @property
    def next_training(self) -> str | None:
        return self.daemon.next_training if self.daemon else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_adapter(store: Store, adapter: AdapterStatus) -> None:
    store.set_meta(ADAPTER_KEY, asdict(adapter))


def publish_adapter(store: Store, registry: AdapterRegistry, *, note: str | None = None) -> AdapterStatus:
    """Record the adapter being served (and its gate figures) in the training status that everyone reads."""
    current = registry.current()
    if current is None:
        status = AdapterStatus(note=note)
    else:
        meta = registry.meta(current)
        gate = meta.get("gate") or {}
        figures = tuple(GateFigure(str(r["metric"]), float(r["before"]), float(r["after"]), bool(r["ok"]))
                        for r in gate.get("rows") or ())
        status = AdapterStatus(current, str(registry.path(current)), gate.get("passed"), figures,
                               meta.get("gate_summary"), note)
    write_adapter(store, status)
    return status


def write_last(store: Store, last: LastTraining) -> None:
    store.set_meta(LAST_KEY, asdict(last))


def write_daemon(store: Store, daemon: DaemonStatus | None) -> None:
    store.set_meta(DAEMON_KEY, None if daemon is None else asdict(daemon))


def read_status(store: Store) -> TrainingStatus:
    """The whole record; a part never written (or written by an older Redline in another shape) reads as empty."""
    return TrainingStatus(
        adapter=_parse(AdapterStatus, store.get_meta(ADAPTER_KEY)) or AdapterStatus(),
        last=_parse(LastTraining, store.get_meta(LAST_KEY)),
        daemon=_parse(DaemonStatus, store.get_meta(DAEMON_KEY)),
    )


def _parse(cls: Any, raw: Any) -> Any:
    if not isinstance(raw, dict):
        return None
    data = dict(raw)
    if cls is AdapterStatus:
        try:
            data["gate"] = tuple(GateFigure(**g) for g in data.get("gate") or ())
        except TypeError:
            data["gate"] = ()
    try:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
    except TypeError:
        return None
