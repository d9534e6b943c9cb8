"""The local queue: every generation, its feedback and its live spans, in one SQLite file per repo.

Why SQLite in WAL mode: readers never block the writer, several processes (language server, pytest-xdist
controller, CI ingest, trainer) may write on one host, and a commit survives kill -9. Every write is one
transaction; feedback is idempotent by fingerprint and generations by id, so re-ingesting a report is harmless.
Callers use the `Store` protocol only, so a team backend (PostgreSQL, `FOR UPDATE SKIP LOCKED` claims) can
replace this class without touching them.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from redline.errors import QueueBusy, QueueError, RecordError
from redline.private import private_dir, private_file
from redline.queue.migrations import migrate
from redline.records import Feedback, Generation, Range, Span, new_id, sha256_text, to_json, utc_now, validate

BUSY_TIMEOUT_MS = 30_000
#: side files holding records written while another process held the queue's write lock (merged on open)
SPOOL_DIR = "spool"
_BLANK = " \t\n\r"
# the expression of migration 003's index, spelled identically so SQLite uses the index
_COMPLETION_HEAD = "substr(trim(json_extract(body, '$.completion'), char(32, 9, 10, 13)), 1, 64)"


@dataclass(frozen=True, slots=True)
class AddResult:
    generations: int = 0
    feedback: int = 0
    spans: int = 0


@dataclass(frozen=True, slots=True)
class Claim:
    token: str
    generation_ids: list[str]


class Store(Protocol):
    """What harvesters, the CLI and the trainer may ask of a queue."""

    def add(
        self,
        generations: Iterable[Generation] = (),
        feedback: Iterable[Feedback] = (),
        spans: Iterable[Span] = (),
    ) -> AddResult: ...

    def get_generation(self, generation_id: str) -> Generation | None: ...

    def find_generations(self, prefix: str) -> list[Generation]: ...

    def generations_with_completion(self, text: str, *, limit: int = 20) -> list[Generation]: ...

    def recent_completions(self, since: str, *, origins: Iterable[str], limit: int
                           ) -> list[tuple[str, str, str, str | None]]: ...

    def acceptance(self, origins: Iterable[str]) -> list[dict[str, Any]]: ...

    def generations(
        self, *, split: str | None = None, with_feedback: bool | None = None, limit: int | None = None
    ) -> Iterator[Generation]: ...

    def feedback_for(self, generation_id: str) -> list[Feedback]: ...

    def feedback(self, *, unattributed: bool = False, limit: int | None = None) -> Iterator[Feedback]: ...

    def attribute(self, feedback_id: str, generation_id: str) -> bool: ...

    def spans_for_path(self, path: str) -> list[Span]: ...

    def span_paths(self) -> list[str]: ...

    def awaiting(self, prefix: str = "") -> dict[str, int]: ...

    def claim(self, owner: str, *, limit: int = 10_000, stale_after_s: float = 3600) -> Claim: ...

    def backlog(self) -> tuple[int, str | None]: ...

    def ack(self, token: str) -> int: ...

    def release(self, token: str) -> int: ...

    def release_owner(self, owner: str) -> int: ...

    def prune(self, older_than_days: float) -> int: ...

    def counts(self) -> dict[str, Any]: ...

    def get_meta(self, key: str) -> Any: ...

    def set_meta(self, key: str, value: Any) -> None: ...

    def close(self) -> None: ...


#: `scrub(text, code=...)`: `code=True` for text the model reads or writes (see redline/scrub.py)
Scrubber = Callable[..., str]


class SQLiteStore:
    """`Store` on one SQLite file. One connection per thread; safe to share an instance across threads."""

    def __init__(self, path: str | os.PathLike[str], *, scrubber: Scrubber | None = None,
                 busy_timeout_s: float | None = None) -> None:
        self.path = Path(path)
        self._scrub = scrubber
        self._busy_ms = BUSY_TIMEOUT_MS if busy_timeout_s is None else int(busy_timeout_s * 1000)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            private_dir(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            migrate(self._conn())
        except sqlite3.DatabaseError as exc:
            if _is_full(exc, self.path):
                raise _disk_full(self.path, 1 << 20) from None
            if _is_busy(exc):
                raise _busy(self.path) from None
            raise QueueError(
                f"cannot open the queue ({exc})", fix="move the file aside and run `redline doctor`", path=self.path
            ) from None
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _disk_full(self.path, 1 << 20) from None
            raise QueueError(f"cannot create the queue ({exc.strerror})", fix="check REDLINE_HOME",
                             path=self.path) from None
        self.merge_spool()

    # -- connections -------------------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self._busy_ms / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
            for suffix in ("-wal", "-shm"):
                side = Path(f"{self.path}{suffix}")
                if side.exists():
                    os.chmod(side, 0o600)
        return conn

    def _write(self, needed_bytes: int = 0) -> _Transaction:
        return _Transaction(self._conn(), self.path, needed_bytes)

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------------------------

    def add(
        self,
        generations: Iterable[Generation] = (),
        feedback: Iterable[Feedback] = (),
        spans: Iterable[Span] = (),
    ) -> AddResult:
        """Insert records in one transaction: all land or none does. Duplicates are skipped, not errors.

        Every record is scrubbed, then validated (`records.validate`): a bad one raises `RecordError` naming its
        field, before anything is written."""
        gen_rows = [self._generation_row(g) for g in generations]
        fb_rows = [self._feedback_row(f) for f in feedback]
        span_rows = [self._span_row(s) for s in spans]
        size = sum(len(r[-1]) for r in gen_rows + fb_rows) + sum(len(r[4]) for r in span_rows)
        with self._write(needed_bytes=3 * size) as conn:
            n_gen = _changes(conn, "INSERT OR IGNORE INTO generations VALUES (?, ?, ?, ?, ?, ?)", gen_rows)
            n_fb = _changes(
                conn,
                "INSERT OR IGNORE INTO feedback (id, fingerprint, generation_id, kind, source, created_at, path, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                fb_rows,
            )
            n_span = _changes(
                conn,
                "INSERT OR REPLACE INTO spans (generation_id, path, start_line, end_line, text, state, commit_sha,"
                " updated_at, start_col, end_col) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                span_rows,
            )
        return AddResult(n_gen, n_fb, n_span)

    def _clean(self, text: str | None, *, code: bool = False) -> str | None:
        return text if (text is None or self._scrub is None) else self._scrub(text, code=code)

    def _generation_row(self, g: Generation) -> tuple[Any, ...]:
        if self._scrub is not None:
            g = _scrub_generation(g, self._scrub)
        validate(g, "generation")
        path = g.insertion.path if g.insertion else None
        return (g.id, g.repo_id, g.created_at, g.split, path, _body(g, "generation"))

    def _feedback_row(self, f: Feedback) -> tuple[Any, ...]:
        validate(f, "feedback")
        if self._scrub is not None:
            _scrub_feedback(f, self._scrub)
        return (f.id, f.fingerprint, f.generation_id, f.kind, f.source, f.created_at, f.path, _body(f, "feedback"))

    def _span_row(self, s: Span) -> tuple[Any, ...]:
        validate(s, "span")
        text = self._clean(s.text, code=True) or ""
        r = s.range
        return (s.generation_id, s.path, r.start_line, r.end_line, text, s.state, s.commit, s.updated_at,
                r.start_col, r.end_col)

    def prepare(self, feedback: Iterable[Feedback]) -> list[Feedback]:
        """`feedback` validated and scrubbed as `add` would store it (for `spool`); raises `RecordError`."""
        ready = list(feedback)
        for f in ready:
            self._feedback_row(f)
        return ready

    def merge_spool(self) -> int:
        """Queue the records spooled while the queue was locked, and delete their files; returns the number of
        files merged. Files that do not parse are left for `redline doctor`; a still-locked queue leaves all."""
        folder = spool_dir(self.path)
        if not folder.is_dir():
            return 0
        merged = 0
        for f in sorted(folder.glob("*.jsonl")):
            try:
                lines = f.read_text(encoding="utf-8").splitlines()
                batch = [Feedback.from_dict(fb) for line in lines if line.strip()
                         for fb in json.loads(line)["feedback"]]
            except (OSError, ValueError, KeyError, TypeError, RecordError):
                continue
            try:
                self.add(feedback=batch)
            except QueueBusy:
                return merged
            f.unlink(missing_ok=True)
            merged += 1
        return merged

    def attribute(self, feedback_id: str, generation_id: str) -> bool:
        """Attach unattributed feedback to a generation. If that makes it a duplicate of feedback the generation
        already has, the unattributed copy is dropped (the information is already there)."""
        with self._write() as conn:
            row = conn.execute("SELECT body FROM feedback WHERE id = ?", (feedback_id,)).fetchone()
            if row is None:
                return False
            fb = Feedback.from_dict(json.loads(row[0])).attributed_to(generation_id)
            if conn.execute("SELECT 1 FROM feedback WHERE fingerprint = ? AND id != ?",
                            (fb.fingerprint, feedback_id)).fetchone():
                conn.execute("DELETE FROM feedback WHERE id = ?", (feedback_id,))
            else:
                conn.execute(
                    "UPDATE feedback SET generation_id = ?, fingerprint = ?, body = ? WHERE id = ?",
                    (generation_id, fb.fingerprint, to_json(fb), feedback_id),
                )
        return True

    # -- reads -------------------------------------------------------------------------------------------------

    def get_generation(self, generation_id: str) -> Generation | None:
        row = self._conn().execute("SELECT body FROM generations WHERE id = ?", (generation_id,)).fetchone()
        return None if row is None else Generation.from_dict(json.loads(row[0]))

    def find_generations(self, prefix: str) -> list[Generation]:
        """Generations whose id starts with `prefix` (so users can type the first few characters)."""
        rows = self._conn().execute(
            "SELECT body FROM generations WHERE id >= ? AND id < ? ORDER BY id LIMIT 20",
            (prefix, prefix + "\uffff"),
        )
        return [Generation.from_dict(json.loads(r[0])) for r in rows]

    def generations_with_completion(self, text: str, *, limit: int = 20) -> list[Generation]:
        """Generations whose completion is `text` up to surrounding whitespace, newest first.

        Looked up through the index on the completion's first 64 characters (migration 003), then compared
        in full, so a chat client that echoes an assistant turn back finds the generation that wrote it.
        """
        key = text.strip(_BLANK)
        rows = self._conn().execute(
            f"SELECT body FROM generations WHERE {_COMPLETION_HEAD} = ? ORDER BY created_at DESC, id DESC",
            (key[:64],))
        found = []
        for (body,) in rows:
            g = Generation.from_dict(json.loads(body))
            if g.completion.strip(_BLANK) == key:
                found.append(g)
                if len(found) >= limit:
                    break
        return found

    def recent_completions(self, since: str, *, origins: Iterable[str], limit: int
                           ) -> list[tuple[str, str, str, str | None]]:
        """(id, completion, created_at, file path) of generations of the given origins created at or after `since`
        (ISO time), newest first: what the language server links inserted text to. A range scan on the
        `created_at` index that reads only those fields (served rows carry token ids and log-probs too)."""
        wanted = list(origins)
        marks = ", ".join("?" * len(wanted))
        rows = self._conn().execute(
            "SELECT id, json_extract(body, '$.completion'), created_at,"
            " coalesce(json_extract(body, '$.meta.path'), path) FROM generations"
            f" WHERE created_at >= ? AND json_extract(body, '$.origin') IN ({marks})"
            " ORDER BY created_at DESC LIMIT ?", (since, *wanted, limit)).fetchall()
        return [(gid, text, at, where if isinstance(where, str) else None) for gid, text, at, where in rows
                if isinstance(text, str)]

    def acceptance(self, origins: Iterable[str]) -> list[dict[str, Any]]:
        """Per adapter version, suggestions of the given origins and how many were taken (tracked in a file by
        the language server, or given `accept` feedback): `[{adapter_version, suggested, accepted}]`."""
        wanted = list(origins)
        marks = ", ".join("?" * len(wanted))
        rows = self._conn().execute(
            "SELECT json_extract(body, '$.adapter_version') AS v, COUNT(*),"
            " SUM(EXISTS (SELECT 1 FROM spans s WHERE s.generation_id = g.id) OR EXISTS (SELECT 1 FROM feedback f"
            "  WHERE f.generation_id = g.id AND f.kind IN ('accept', 'edit')))"
            f" FROM generations g WHERE json_extract(body, '$.origin') IN ({marks}) GROUP BY v ORDER BY v",
            wanted).fetchall()
        return [{"adapter_version": v, "suggested": n, "accepted": int(a or 0)} for v, n, a in rows]

    def generations(
        self, *, split: str | None = None, with_feedback: bool | None = None, limit: int | None = None
    ) -> Iterator[Generation]:
        sql = "SELECT body FROM generations g WHERE 1=1"
        args: list[Any] = []
        if split is not None:
            sql += " AND split = ?"
            args.append(split)
        if with_feedback is not None:
            exists = "EXISTS (SELECT 1 FROM feedback f WHERE f.generation_id = g.id)"
            sql += f" AND {'' if with_feedback else 'NOT '}{exists}"
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        for (body,) in self._conn().execute(sql, args).fetchall():
            yield Generation.from_dict(json.loads(body))

    def feedback_for(self, generation_id: str) -> list[Feedback]:
        rows = self._conn().execute(
            "SELECT body FROM feedback WHERE generation_id = ? ORDER BY id", (generation_id,)
        ).fetchall()
        return [Feedback.from_dict(json.loads(r[0])) for r in rows]

    def feedback(self, *, unattributed: bool = False, limit: int | None = None) -> Iterator[Feedback]:
        sql = "SELECT body FROM feedback"
        if unattributed:
            sql += " WHERE generation_id IS NULL"
        sql += " ORDER BY id" + (f" LIMIT {int(limit)}" if limit is not None else "")
        for (body,) in self._conn().execute(sql).fetchall():
            yield Feedback.from_dict(json.loads(body))

    def spans_for_path(self, path: str) -> list[Span]:
        rows = self._conn().execute(
            "SELECT generation_id, path, start_line, end_line, start_col, end_col, text, state, commit_sha, updated_at"
            " FROM spans WHERE path = ? ORDER BY start_line",
            (path,),
        ).fetchall()
        return [Span(r[0], r[1], Range(r[2], r[3], r[4], r[5]), *r[6:]) for r in rows]

    def awaiting(self, prefix: str = "") -> dict[str, int]:
        """Ids (starting with `prefix`) that feedback is attributed to but that have no generation record yet
        (a front-end's `recordInsert` with its own id), with their feedback counts."""
        rows = self._conn().execute(
            "SELECT generation_id, COUNT(*) FROM feedback f WHERE generation_id >= ? AND generation_id < ?"
            " AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.id = f.generation_id)"
            " GROUP BY generation_id ORDER BY generation_id", (prefix, prefix + "\uffff"))
        return dict(rows.fetchall())

    def span_paths(self) -> list[str]:
        """Every path holding a live span (the files a coverage trace needs to measure)."""
        rows = self._conn().execute("SELECT DISTINCT path FROM spans WHERE state != 'deleted' ORDER BY path")
        return [r[0] for r in rows]

    # -- trainer claims ----------------------------------------------------------------------------------------

    def claim(self, owner: str, *, limit: int = 10_000, stale_after_s: float = 3600) -> Claim:
        """Claim up to `limit` generations that have feedback not yet trained on.

        A claim belongs to the process that made it (the token names host, pid and the process's start time):
        the claims of a process that is gone (killed, crashed) are taken over at once, so a rerun resumes; a
        claim whose owner cannot be checked (another host, an older token) is taken over after
        `stale_after_s`. `BEGIN IMMEDIATE` makes the select-then-mark atomic across processes.
        """
        token = f"{owner}:{_OWNER}:{new_id()}"
        stale = _ago(stale_after_s)
        with self._write() as conn:
            held = conn.execute("SELECT claim_token, MIN(claimed_at) FROM feedback WHERE state = 'claimed'"
                                " GROUP BY claim_token").fetchall()
            orphaned = [(t,) for t, at in held if t and not _owner_alive(t, at, stale)]
            conn.executemany("UPDATE feedback SET state = 'new', claim_token = NULL, claimed_at = NULL"
                             " WHERE claim_token = ?", orphaned)
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT generation_id FROM feedback WHERE generation_id IS NOT NULL AND state = 'new'"
                    " ORDER BY generation_id LIMIT ?",
                    (limit,),
                )
            ]
            conn.executemany(
                "UPDATE feedback SET state = 'claimed', claim_token = ?, claimed_at = ?"
                " WHERE generation_id = ? AND state = 'new'",
                [(token, utc_now(), gid) for gid in ids],
            )
        return Claim(token, ids)

    def backlog(self) -> tuple[int, str | None]:
        """(attributed feedback records not yet trained on or claimed, the oldest one's `created_at`): what the
        daemon schedules by. `accept` records are left out: code kept as written teaches nothing by itself (it
        anchors a run that has mistakes to learn from), so a day of accepted completions starts no training."""
        n, oldest = self._conn().execute(
            "SELECT COUNT(*), MIN(created_at) FROM feedback WHERE generation_id IS NOT NULL AND state = 'new'"
            " AND kind != 'accept'"
        ).fetchone()
        return int(n), oldest

    def ack(self, token: str) -> int:
        with self._write() as conn:
            return conn.execute("UPDATE feedback SET state = 'trained' WHERE claim_token = ?", (token,)).rowcount

    def release(self, token: str) -> int:
        with self._write() as conn:
            return conn.execute(
                "UPDATE feedback SET state = 'new', claim_token = NULL, claimed_at = NULL WHERE claim_token = ?",
                (token,),
            ).rowcount

    def release_owner(self, owner: str) -> int:
        """Release every claim `owner` holds: its process died (SIGKILL, out of memory) without releasing them."""
        prefix = owner + ":"
        with self._write() as conn:
            return conn.execute(
                "UPDATE feedback SET state = 'new', claim_token = NULL, claimed_at = NULL"
                " WHERE state = 'claimed' AND substr(claim_token, 1, ?) = ?", (len(prefix), prefix),
            ).rowcount

    # -- housekeeping ------------------------------------------------------------------------------------------

    def prune(self, older_than_days: float) -> int:
        """Delete records older than the retention window (feedback first, then generations left bare)."""
        cutoff = _ago(older_than_days * 86400)
        with self._write() as conn:
            n = conn.execute("DELETE FROM feedback WHERE created_at < ?", (cutoff,)).rowcount
            n += conn.execute(
                "DELETE FROM generations WHERE created_at < ? AND NOT EXISTS"
                " (SELECT 1 FROM feedback f WHERE f.generation_id = generations.id)",
                (cutoff,),
            ).rowcount
            conn.execute("DELETE FROM spans WHERE updated_at < ?", (cutoff,))
        return n

    def counts(self) -> dict[str, Any]:
        conn = self._conn()
        by_kind = conn.execute(
            "SELECT kind, source, COUNT(*), SUM(generation_id IS NOT NULL) FROM feedback GROUP BY kind, source"
            " ORDER BY kind, source"
        ).fetchall()
        states = dict(conn.execute("SELECT state, COUNT(*) FROM feedback GROUP BY state").fetchall())
        return {
            "generations": conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0],
            "generations_with_feedback": conn.execute(
                "SELECT COUNT(DISTINCT f.generation_id) FROM feedback f JOIN generations g ON g.id = f.generation_id"
            ).fetchone()[0],
            # feedback on an id a front-end gave before (or without) sending its generation
            "awaiting_generation": dict(zip(("generations", "feedback"), conn.execute(
                "SELECT COUNT(DISTINCT generation_id), COUNT(*) FROM feedback f WHERE generation_id IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.id = f.generation_id)").fetchone(), strict=True)),
            "feedback": sum(r[2] for r in by_kind),
            "attributed": sum(r[3] or 0 for r in by_kind),
            "by_kind_source": [
                {"kind": k, "source": s, "count": n, "attributed": a or 0} for k, s, n, a in by_kind
            ],
            "states": states,
            "spans": conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0],
        }

    def get_meta(self, key: str) -> Any:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _dumps(value)))


class _Transaction:
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


def _changes(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> int:
    if not rows:
        return 0
    before = conn.total_changes
    conn.executemany(sql, rows)
    return conn.total_changes - before


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _ago(seconds: float) -> str:
    when = datetime.now(UTC) - timedelta(seconds=seconds)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _body(record: Any, where: str) -> str:
    try:
        return to_json(record)
    except ValueError as exc:  # e.g. an integer past Python's 4,300-digit str() limit in `meta`
        raise RecordError(f"{where} cannot be written as JSON ({str(exc)[:100]})", fix="check its numbers") from None


def _scrub_value(value: Any, scrub: Callable[[str], str]) -> Any:
    """Every string inside a JSON-like value (`meta`, `sampling`), nested ones included."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v, scrub) for v in value]
    return value


def _record_scrubbers(scrub: Scrubber) -> tuple[Callable[[str], str], Callable[[str], str], list[str]]:
    """(prose, code, found): scrubbers that remember each secret they cut, so a second pass (`_pieces`) can cut
    what is left of it elsewhere in the record (pytest's `head...tail` of a value it shortened)."""
    found: list[str] = []
    return (lambda t: scrub(t, found=found)), (lambda t: scrub(t, code=True, found=found)), found


def _pieces(found: list[str]) -> Callable[[str], str]:
    from redline.scrub import scrub_fragments

    return lambda t: scrub_fragments(t, found)


def _scrub_generation(g: Generation, scrub: Scrubber) -> Generation:
    """Scrub every string of a generation: prompt and completion as code (real detections only), the rest as prose.

    If the completion changed, its recorded token ids no longer match it: they are dropped, the insertion's
    `content_hash` is recomputed from the stored text, and `meta.scrubbed` tells the trainer to skip it."""
    prose, code, found = _record_scrubbers(scrub)
    p = g.prompt
    for _ in range(2):  # the second pass cuts pieces of secrets found anywhere in the record
        if p.messages:
            for m in p.messages:
                m.content = code(m.content)
        p.text = None if p.text is None else code(p.text)
        p.prefix = None if p.prefix is None else code(p.prefix)
        p.suffix = None if p.suffix is None else code(p.suffix)
        g.meta = _scrub_value(g.meta, prose)
        g.sampling = _scrub_value(g.sampling, prose)
        clean = code(g.completion)
        if clean != g.completion:
            if g.insertion is not None and g.insertion.content_hash == sha256_text(g.completion):
                g.insertion.content_hash = sha256_text(clean)
            g.completion = clean
            g.token_ids = None
            g.token_logprobs = None
            g.meta["scrubbed"] = True
        if not found:
            break
        prose = code = _pieces(found)
    return g


def _scrub_feedback(f: Feedback, scrub: Scrubber) -> None:
    """Scrub every string of a feedback record (a correction is code); an automatic fingerprint follows the
    scrubbed text, so no hash of a secret is stored."""
    auto = f.fingerprint == f.compute_fingerprint()
    prose, code, found = _record_scrubbers(scrub)
    for _ in range(2):
        f.message = prose(f.message)
        f.detail = None if f.detail is None else prose(f.detail)
        f.correction = None if f.correction is None else code(f.correction)
        f.rule = None if f.rule is None else prose(f.rule)
        f.meta = _scrub_value(f.meta, prose)
        if not found:
            break
        prose = code = _pieces(found)
    if auto:
        f.fingerprint = f.compute_fingerprint()


# -- claim owners ------------------------------------------------------------------------------------------------


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not mistaken for its
    predecessor; "" where /proc is not available (then the pid alone is checked)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


_OWNER = f"{socket.gethostname().replace(':', '-')}:{os.getpid()}:{_process_start(os.getpid())}"


def _owner_alive(token: str, claimed_at: str, stale: str) -> bool:
    """Whether a claim's process still runs; for a token that cannot be checked, whether it is younger than
    `stale`."""
    parts = token.rsplit(":", 4)
    if len(parts) == 5 and parts[1] == _OWNER.split(":")[0] and parts[2].isdigit():
        pid, start = int(parts[2]), parts[3]
        if pid == os.getpid():
            return start == _OWNER.split(":")[2]
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        now = _process_start(pid)
        return not (start and now and now != start)
    return claimed_at >= stale


# -- the spool: records written while the queue was locked -----------------------------------------------------


def spool_dir(path: Path) -> Path:
    return path.parent / SPOOL_DIR


def spool(path: Path, feedback: list[Feedback]) -> Path:
    """Write `feedback` (already scrubbed by `SQLiteStore.prepare`) beside the queue at `path`, for the next open
    to merge: the pytest plugin never waits long on a queue another process holds."""
    folder = private_dir(spool_dir(path))
    target = folder / f"{os.getpid()}-{new_id()}.jsonl"
    part = target.with_name(target.name + ".part")
    with open(part, "w", encoding="utf-8", opener=private_file) as out:
        for fb in feedback:
            out.write(json.dumps({"generation": None, "feedback": [fb.to_dict()]}, ensure_ascii=False) + "\n")
    part.replace(target)
    return target
