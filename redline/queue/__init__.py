"""The queue behind the `Store` protocol; `open_store` picks the backend for a config.

What every backend shares: `protocol` (the `Store` protocol and its results), `scrubbing` (records scrubbed and
validated into a `Batch` on the writer's machine), `spool` (batches set aside while the queue is locked or out of
reach, merged later), `claims` (whose process holds a training claim; the heartbeat that keeps it) and
`migrations` (the one numbered schema list). What is SQLite's alone: `store` (`SQLiteStore`: connections,
pragmas, SQL) and `transaction` (`BEGIN IMMEDIATE` and SQLite's errors as Redline's). PostgreSQL's alone:
`postgres` (`PostgresStore`, a team's shared queue; needs psycopg, imported only when `queue_url` is set) and
`url` (a URL shown without its password).
"""

from __future__ import annotations

import logging

from redline.config import Config
from redline.errors import ConfigError
from redline.queue.protocol import AddResult, Claim, Store
from redline.queue.scrubbing import Batch
from redline.queue.store import SQLiteStore
from redline.records import Feedback

log = logging.getLogger("redline.queue")
_warned: set[str] = set()


def open_store(config: Config, *, busy_timeout_s: float | None = None) -> Store:
    """Open (creating and migrating if needed) the queue for `config`'s repo, scrubbing secrets on write.

    `queue_url` set: the team's PostgreSQL (docs/team.md), else the per-repository SQLite file. Redline's own
    state directories are made private (0700), the spool's too; `busy_timeout_s` bounds how long a write waits
    for another process's lock (default 30 s) before `QueueBusy`."""
    from redline.private import private_dir, tighten

    for warning in config.warnings:
        if warning not in _warned:
            _warned.add(warning)
            log.warning("%s", warning)
    scrubber = None
    if config.scrub_secrets:
        from redline.scrub import scrub

        scrubber = scrub
    if config.home in config.state_dir.parents:
        private_dir(config.state_dir)
        for d in (config.home / "repos", config.state_dir):  # not `home` itself: REDLINE_HOME may be shared
            tighten(d)
    if config.queue_url:
        return _team_store(config, scrubber, busy_timeout_s)
    return SQLiteStore(config.db_path, scrubber=scrubber, busy_timeout_s=busy_timeout_s)


def _team_store(config: Config, scrubber: object, busy_timeout_s: float | None) -> Store:
    try:
        from redline.queue.postgres import PostgresStore
    except ImportError:
        raise ConfigError("`queue_url` needs psycopg", fix="pip install 'redline[team]'",
                          path=config.source or "environment") from None
    from redline.queue.spool import SPOOL_DIR

    def attribute(store: Store, feedback: list[Feedback]) -> list[Feedback]:
        from redline.ledger import attribute_feedback

        return attribute_feedback(store, config, feedback)

    return PostgresStore(config.queue_url or "", config.repo_id, spool_dir=config.state_dir / SPOOL_DIR,
                         scrubber=scrubber,  # type: ignore[arg-type]
                         busy_timeout_s=busy_timeout_s, attribute=attribute)


__all__ = ["AddResult", "Batch", "Claim", "SQLiteStore", "Store", "open_store"]
