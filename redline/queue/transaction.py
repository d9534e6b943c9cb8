"""SQLite's write transaction, and how SQLite's errors become Redline's (SQLite-only; see `redline.queue`).

Every write is `BEGIN IMMEDIATE … COMMIT`: the write lock is taken up front, so two writers never deadlock on an
upgrade, and a lock held past the busy timeout is a `QueueBusy` the caller can act on (the ledger spools).
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

from redline.errors import QueueBusy, QueueError, RecordError


class Transaction:
    """`BEGIN IMMEDIATE … COMMIT`, turning lock time-outs and a full disk into a `QueueError` after rollback."""

    def __init__(self, conn: sqlite3.Connection, path: Path, needed_bytes: int = 0) -> None:
        self.conn = conn
        self.path = path
        self.needed_bytes = needed_bytes

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _queue_error(exc, self.path, self.needed_bytes) from None
        return self.conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.Error as commit_exc:
                exc = commit_exc
        if self.conn.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        if isinstance(exc, sqlite3.Error):
            raise _queue_error(exc, self.path, self.needed_bytes) from None
        if isinstance(exc, (UnicodeError, OverflowError, ValueError)):  # a value SQLite cannot bind
            raise RecordError(f"a record cannot be stored ({type(exc).__name__}: {str(exc)[:120]})",
                              fix="check the record's text and numbers", path=self.path) from None


def _is_full(exc: BaseException, path: Path | None = None) -> bool:
    """SQLite's "database or disk is full", or an I/O error on a disk with (almost) nothing free — what SQLite
    reports when it cannot even create its WAL index."""
    if "disk is full" in str(exc) or getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL":
        return True
    if path is not None and "I/O error" in str(exc):
        try:
            return shutil.disk_usage(path.parent).free < (1 << 20)
        except OSError:
            return False
    return False


def _is_busy(exc: BaseException) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _disk_full(path: Path, needed_bytes: int) -> QueueError:
    """The one line for a full disk: where, how much is free, about how much this write needed."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = 0
    need = max(needed_bytes, 64 * 1024)
    return QueueError(f"disk full at {path.parent}: {free / 2**20:.1f} MiB free, about {need / 2**20:.1f} MiB "
                      "needed; nothing from this batch was written", fix="free space or move state_dir")


def _busy(path: Path) -> QueueBusy:
    return QueueBusy(f"another process holds a write lock on {path}",
                     fix="retry; if it persists, stop the stuck process (e.g. a hung `redline train`)")


def _queue_error(exc: sqlite3.Error, path: Path, needed_bytes: int = 0) -> QueueError:
    text = str(exc)
    if _is_full(exc, path):
        return _disk_full(path, needed_bytes)
    if _is_busy(exc):
        return _busy(path)
    return QueueError(f"queue write failed ({text})", fix="run `redline doctor`", path=path)


def open_error(exc: sqlite3.DatabaseError | OSError, path: Path) -> QueueError:
    """The one line for a queue that cannot be created or opened."""
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return _disk_full(path, 1 << 20)
        return QueueError(f"cannot create the queue ({exc.strerror})", fix="check REDLINE_HOME", path=path)
    if _is_full(exc, path):
        return _disk_full(path, 1 << 20)
    if _is_busy(exc):
        return _busy(path)
    return QueueError(f"cannot open the queue ({exc})", fix="move the file aside and run `redline doctor`", path=path)
