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


class QueueUnavailable(QueueBusy):
    """A team queue's server cannot be reached (down, restarting, no network). A kind of `QueueBusy`, so every
    writer that spools a busy batch spools this one too, to be sent when the server is back."""


class SchemaTooNew(QueueError):
    """The queue was migrated by a newer Redline than this one: its records may hold what this code cannot read."""


class ClaimLost(QueueError):
    """A training claim was taken over (its lease ran out while its holder was cut off): the holder must not
    promote what it trained, since another trainer now has those records."""


class UpstreamError(RedlineError):
    """A model server Redline talks to (the proxy's upstream, a team's vLLM) refused or did not answer."""


class NotFound(RedlineError):
    """A record, adapter or model that was asked for does not exist."""
