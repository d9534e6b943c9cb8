"""The team queue's connection to PostgreSQL: one autocommit session per thread on the repository's schema,
short transactions retried on conflicts, an unreachable server turned into `QueueUnavailable` (one warning per
outage, so the ledger spools), and the numbered migrations applied under an advisory lock. `PostgresStore`
(`postgres.py`) builds the queue's calls on it.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pgerrors

from redline.errors import QueueBusy, QueueError, QueueUnavailable, RecordError
from redline.queue.migrations import MIGRATIONS, check_known, statements, steps
from redline.records import utc_now

log = logging.getLogger("redline.queue")
T = TypeVar("T")

#: the schema shared by every repository: `redline.repos`
DIRECTORY = "redline"
UPGRADE = "pip install -U 'redline[team]'"
#: after a failed connection, writes go straight to the spool for this long before the server is tried again
RETRY_S = 10.0
CONNECT_TIMEOUT_S = 5
#: the server ends a session left idle inside a transaction this long (a client that died mid-call)
IDLE_IN_TRANSACTION_MS = 60_000
#: the server's clock as Redline writes times (UTC ISO 8601 with milliseconds)
_ISO = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"
_NOW = f"to_char(clock_timestamp() AT TIME ZONE 'UTC', {_ISO})"
#: the server's clock that many seconds (`%s`) ago
_AGO = f"to_char((clock_timestamp() - make_interval(secs => %s)) AT TIME ZONE 'UTC', {_ISO})"
# migration 003's index expression, written the same way so the planner uses the index
_COMPLETION_HEAD = "substr(btrim((body::json) ->> 'completion', E' \\t\\n\\r'), 1, 64)"
_BLANK = " \t\n\r"
# transient conflicts between concurrent transactions: the whole call is run again
_RETRY = (pgerrors.DeadlockDetected, pgerrors.SerializationFailure)
# the server is there but a lock or a statement took too long: the writer's busy timeout
_BUSY = (pgerrors.LockNotAvailable, pgerrors.QueryCanceled)


def schema_for(repo_id: str) -> str:
    """The repository's schema: readable, within PostgreSQL's 63-byte names, and collision-free by a hash."""
    readable = re.sub(r"[^a-z0-9]+", "_", repo_id.lower()).strip("_")[-40:].strip("_")
    return f"rl_{readable}_{hashlib.sha256(repo_id.encode()).hexdigest()[:12]}"


def written_by() -> str:
    """`user@host` of this process: who wrote a record, as the team sees it (no credential)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()}"


class PgSession:
    """What a queue on one repository's schema needs of the server; the attributes are set by `PostgresStore`."""

    url: str
    where: str
    repo_id: str
    schema: str
    spool_dir: Path
    _busy_ms: int
    _secrets: list[str]
    _by: str
    _local: threading.local
    _conns: list[psycopg.Connection[Any]]
    _lock: threading.Lock
    _migrated: bool
    _retry_at: float
    _outage: str | None
    _merge_due: bool

    def _connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection on the repository's schema, with keepalives so a dead peer is noticed."""
        from psycopg.conninfo import conninfo_to_dict

        given = conninfo_to_dict(self.url)
        # the server's own keepalives too: it ends the session of a machine that lost power or its network
        # within about a minute, freeing what it held (a worker's job lock)
        options = (f"-c search_path={self.schema} -c lock_timeout={self._busy_ms}"
                   f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
                   " -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"
                   " -c tcp_user_timeout=60000")
        extra: dict[str, Any] = {"options": f"{given.get('options', '')} {options}".strip(),
                                 "application_name": given.get("application_name") or f"redline {self._by}"}
        if "connect_timeout" not in given:
            extra["connect_timeout"] = max(2, min(CONNECT_TIMEOUT_S, int(self._busy_ms / 1000) or 2))
        for key, value in (("keepalives", 1), ("keepalives_idle", 30), ("keepalives_interval", 10),
                           ("keepalives_count", 3), ("tcp_user_timeout", 60_000)):
            extra.setdefault(key, given.get(key, value))
        return psycopg.connect(self.url, autocommit=True, **extra)

    def _conn(self) -> psycopg.Connection[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn
        if time.monotonic() < self._retry_at:
            raise self._unavailable(self._outage or "not reachable")
        try:
            conn = self._connect()
        except psycopg.OperationalError as exc:
            self._retry_at = time.monotonic() + RETRY_S
            raise self._went_away(exc) from None
        try:
            if not self._migrated:
                self._migrate(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.OperationalError):
                self._retry_at = time.monotonic() + RETRY_S
                raise self._went_away(exc) from None
            if isinstance(exc, psycopg.Error):
                raise QueueError(f"cannot set up the team queue ({self._text(exc)})", fix="the queue's role needs "
                                 "CREATE on the database (docs/team.md)", path=self.where) from None
            raise
        self._local.conn = conn
        with self._lock:
            self._conns.append(conn)
        if self._outage is not None:
            log.info("the team queue %s is reachable again; sending what was spooled", self.where)
            self._outage = None
            self._merge_due = True
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _text(self, exc: BaseException) -> str:
        """The driver's message in one line, cut of the URL's password (libpq never echoes it; this is sure)."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:300]

    def _unavailable(self, reason: str) -> QueueUnavailable:
        return QueueUnavailable(f"the team queue {self.where} cannot be reached ({reason})",
                                fix="records spool on this machine and are sent when it is back",
                                path=self.spool_dir)

    def _went_away(self, exc: BaseException) -> QueueUnavailable:
        """The one warning per outage, and the error the ledger spools on."""
        reason = self._text(exc)
        if self._outage is None:
            log.warning("the team queue %s cannot be reached (%s): records spool to %s and are sent when it is "
                        "back", self.where, reason, self.spool_dir)
        self._outage = reason
        return self._unavailable(reason)

    def _run(self, work: Callable[[psycopg.Connection[Any]], T], *, retry: bool = True, single: bool = False) -> T:
        """`work` in one transaction (`single`: it is one statement, a transaction of its own in autocommit, which
        saves the BEGIN and COMMIT round trips). A conflict with another transaction (deadlock) runs it again; a
        connection that broke (a restarted server) is replaced once when `retry` (every call but `claim` is
        idempotent)."""
        for attempt in range(4):
            conn = self._conn()
            try:
                with nullcontext() if single else conn.transaction():
                    return work(conn)
            except _RETRY:
                if attempt < 3:
                    continue
                raise QueueBusy(f"the team queue {self.where} kept conflicting with other writers",
                                fix="retry") from None
            except _BUSY as exc:
                raise QueueBusy(f"the team queue {self.where} held a lock past {self._busy_ms / 1000:g} s "
                                f"({self._text(exc)})", fix="retry; if it persists, look for a stuck session "
                                "in pg_stat_activity") from None
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop()
                if isinstance(exc, pgerrors.DiskFull):
                    raise QueueError(f"the team queue's server is out of disk ({self._text(exc)}); nothing from "
                                     "this batch was written", fix="free space on the database server") from None
                if retry and attempt == 0:
                    continue
                self._retry_at = time.monotonic() + RETRY_S
                raise self._went_away(exc) from None
            except (psycopg.DataError, UnicodeError, ValueError) as exc:  # a value PostgreSQL cannot hold
                raise RecordError(f"a record cannot be stored ({self._text(exc)[:120]})",
                                  fix="check the record's text and numbers") from None
            except psycopg.Error as exc:
                raise QueueError(f"team queue call failed ({self._text(exc)})", fix="run `redline doctor`",
                                 path=self.where) from None
        raise AssertionError("unreachable")

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(lambda conn: conn.execute(sql, tuple(args)).fetchall(), single=True)

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Create the repository's schema and apply the numbered migrations it lacks, under one advisory lock so
        two machines opening a new repository at once do not both migrate. At the newest version only reads."""
        try:
            done = [r[0] for r in conn.execute("SELECT name FROM _migrations")]
        except (pgerrors.UndefinedTable, pgerrors.InvalidSchemaName):
            done = []
        check_known(done, self.where, UPGRADE)
        if len(done) == len(MIGRATIONS):
            self._migrated = True
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('redline.migrate'))")
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {DIRECTORY}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {DIRECTORY}.repos (repo_id TEXT PRIMARY KEY,"
                         " schema_name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)")
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            conn.execute(f"INSERT INTO {DIRECTORY}.repos VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                         (self.repo_id, self.schema, utc_now()))
            owner = conn.execute(f"SELECT repo_id FROM {DIRECTORY}.repos WHERE schema_name = %s",
                                 (self.schema,)).fetchone()
            if owner is None or owner[0] != self.repo_id:
                raise QueueError(f"schema {self.schema} belongs to repository {owner and owner[0]!r}",
                                 fix="give this repository its own `repo_id`", path=self.where)
            conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            done = [r[0] for r in conn.execute("SELECT name FROM _migrations")]
            check_known(done, self.where, UPGRADE)
            for name, sql in steps("postgres"):
                if name in done:
                    continue
                for statement in statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO _migrations VALUES (%s, %s)", (name, utc_now()))
        self._migrated = True

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                try:
                    conn.close()
                except psycopg.Error:
                    pass
            self._conns.clear()
        self._local = threading.local()


def _one(cur: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The one row a statement returns (an aggregate, a RETURNING of one row)."""
    row = cur.fetchone()
    if row is None:
        raise QueueError("the team queue returned no row where one was due", fix="run `redline doctor`")
    return tuple(row)
