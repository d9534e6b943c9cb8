"""Typed errors. The library raises them; only the CLI turns them into one line that names the fix."""

from __future__ import annotations


class RedlineError(Exception):
    """Base error: `str(err)` is one line saying what went wrong, where, and how to fix it."""

    def __init__(self, message: str, *, fix: str | None = None, path: object | None = None) -> None:
        self.message = message
        self.fix = fix
        self.path = None if path is None else str(path)
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = f"{self.path}: " if self.path else ""
        fix = f" — {self.fix}" if self.fix else ""
        return f"{where}{self.message}{fix}".replace("\n", " ")


class ConfigError(RedlineError):
    """The user's configuration is missing, unreadable or has a bad value."""


class RecordError(RedlineError):
    """A record (from an import, a client or a parser) does not match the schema."""


class QueueError(RedlineError):
    """The local queue cannot be opened or written (locked too long, disk full, corrupt)."""


class QueueBusy(QueueError):
    """Another process held the queue's write lock for longer than this writer would wait."""


class UpstreamError(RedlineError):
    """A model server Redline talks to (the proxy's upstream, a team's vLLM) refused or did not answer."""


class NotFound(RedlineError):
    """A record, adapter or model that was asked for does not exist."""
