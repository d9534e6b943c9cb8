"""The training status record (`redline.status`): one typed record, one reader."""

from __future__ import annotations

from pathlib import Path

from redline.queue.store import SQLiteStore
from redline.status import (
    ADAPTER_KEY,
    AdapterStatus,
    DaemonStatus,
    GateFigure,
    LastTraining,
    read_status,
    write_adapter,
    write_daemon,
    write_last,
)


def test_status_record_round_trips_and_ignores_other_shapes(tmp_path: Path) -> None:
    """Issue #10: the status record is read through one function; an old or foreign meta shape reads as empty."""
    store = SQLiteStore(tmp_path / "q.sqlite3")
    assert read_status(store).adapter.version is None and read_status(store).last is None
    store.set_meta(ADAPTER_KEY, "v9")  # not the record's shape
    assert read_status(store).adapter == AdapterStatus()
    write_adapter(store, AdapterStatus("v0003", "/a", True, (GateFigure("heldout KL", 0.41, 0.33, True),)))
    write_last(store, LastTraining("2026-01-01T00:00:00Z", "refused", "gate refused: x", "v0004", 8))
    write_daemon(store, DaemonStatus("waiting", "GPU busy", "2026-01-02T01:00:00Z"))
    status = read_status(store)
    assert status.adapter.version == "v0003" and status.adapter.figures() == "heldout KL 0.41 → 0.33"
    assert status.last == LastTraining("2026-01-01T00:00:00Z", "refused", "gate refused: x", "v0004", 8)
    assert status.next_training == "2026-01-02T01:00:00Z" and status.daemon.state == "waiting"
    store.close()
