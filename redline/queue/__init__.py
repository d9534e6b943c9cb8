"""The local queue behind the `Store` protocol; `open_store` picks the backend for a config."""

from __future__ import annotations

from redline.config import Config
from redline.queue.store import AddResult, Claim, SQLiteStore, Store


def open_store(config: Config) -> Store:
    """Open (creating and migrating if needed) the queue for `config`'s repo, scrubbing secrets on write."""
    scrubber = None
    if config.scrub_secrets:
        from redline.scrub import scrub

        scrubber = scrub
    return SQLiteStore(config.db_path, scrubber=scrubber)


__all__ = ["AddResult", "Claim", "SQLiteStore", "Store", "open_store"]
