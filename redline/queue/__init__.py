"""The queue behind the `Store` protocol; `open_store` picks the backend for a config.

What every backend shares: `protocol` (the `Store` protocol and its results), `scrubbing` (records scrubbed and
validated into a `Batch` on the writer's machine), `spool` (batches set aside while the queue is locked, merged
on the next open) and `claims` (whose process holds a training claim). What is SQLite's alone: `store`
(`SQLiteStore`: connections, pragmas, SQL), `transaction` (`BEGIN IMMEDIATE` and SQLite's errors as Redline's)
and `migrations` (the schema).
"""

from __future__ import annotations

from redline.config import Config
from redline.queue.protocol import AddResult, Claim, Store
from redline.queue.scrubbing import Batch
from redline.queue.store import SQLiteStore


def open_store(config: Config, *, busy_timeout_s: float | None = None) -> Store:
    """Open (creating and migrating if needed) the queue for `config`'s repo, scrubbing secrets on write.

    Redline's own state directories are made private (0700); `busy_timeout_s` bounds how long a write waits for
    another process's lock (default 30 s) before `QueueBusy`."""
    from redline.private import private_dir, tighten

    scrubber = None
    if config.scrub_secrets:
        from redline.scrub import scrub

        scrubber = scrub
    if config.home in config.state_dir.parents:
        private_dir(config.state_dir)
        for d in (config.home / "repos", config.state_dir):  # not `home` itself: REDLINE_HOME may be shared
            tighten(d)
    return SQLiteStore(config.db_path, scrubber=scrubber, busy_timeout_s=busy_timeout_s)


__all__ = ["AddResult", "Batch", "Claim", "SQLiteStore", "Store", "open_store"]
