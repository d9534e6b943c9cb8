"""The local queue: every generation, its feedback and its live spans, in one SQLite file per repo.

Why SQLite in WAL mode: readers never block the writer, several processes (language server, pytest-xdist
controller, CI ingest, trainer) may write on one host, and a commit survives kill -9. Every write is one
transaction; feedback is idempotent by fingerprint and generations by id, so re-ingesting a report is harmless.
Callers use the `Store` protocol only, so a team backend (PostgreSQL, `FOR UPDATE SKIP LOCKED` claims) can
replace this class without touching them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from redline.errors import QueueError
from redline.queue.migrations import migrate
from redline.records import Feedback, Generation, Range, Span, new_id, to_json, utc_now

BUSY_TIMEOUT_MS = 30_000


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

    def generations(
        self, *, split: str | None = None, with_feedback: bool | None = None, limit: int | None = None
    ) -> Iterator[Generation]: ...

    def feedback_for(self, generation_id: str) -> list[Feedback]: ...

    def feedback(self, *, unattributed: bool = False, limit: int | None = None) -> Iterator[Feedback]: ...

    def attribute(self, feedback_id: str, generation_id: str) -> bool: ...

    def spans_for_path(self, path: str) -> list[Span]: ...

    def claim(self, owner: str, *, limit: int = 10_000, stale_after_s: float = 3600) -> Claim: ...

    def ack(self, token: str) -> int: ...

    def release(self, token: str) -> int: ...

    def prune(self, older_than_days: float) -> int: ...

    def counts(self) -> dict[str, Any]: ...

    def get_meta(self, key: str) -> Any: ...

    def set_meta(self, key: str, value: Any) -> None: ...

    def close(self) -> None: ...


Scrubber = Callable[[str], str]


class SQLiteStore:
    """`Store` on one SQLite file. One connection per thread; safe to share an instance across threads."""

    def __init__(self, path: str | os.PathLike[str], *, scrubber: Scrubber | None = None) -> None:
        self.path = Path(path)
        self._scrub = scrubber
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            migrate(self._conn())
        except sqlite3.DatabaseError as exc:
            raise QueueError(
                f"cannot open the queue ({exc})", fix="move the file aside and run `redline doctor`", path=self.path
            ) from None
        except OSError as exc:
            raise QueueError(f"cannot create the queue ({exc.strerror})", fix="check REDLINE_HOME",
                             path=self.path) from None

    # -- connections -------------------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
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

    def _write(self) -> _Transaction:
        return _Transaction(self._conn(), self.path)

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
        """Insert records in one transaction: all land or none does. Duplicates are skipped, not errors."""
        gen_rows = [self._generation_row(g) for g in generations]
        fb_rows = [self._feedback_row(f) for f in feedback]
        span_rows = [self._span_row(s) for s in spans]
        with self._write() as conn:
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

    def _clean(self, text: str | None) -> str | None:
        return text if (text is None or self._scrub is None) else self._scrub(text)

    def _generation_row(self, g: Generation) -> tuple[Any, ...]:
        if self._scrub is not None:
            g = _scrub_generation(g, self._scrub)
        path = g.insertion.path if g.insertion else None
        return (g.id, g.repo_id, g.created_at, g.split, path, to_json(g))

    def _feedback_row(self, f: Feedback) -> tuple[Any, ...]:
        if self._scrub is not None:
            f.message = self._clean(f.message) or ""
            f.detail = self._clean(f.detail)
            f.correction = self._clean(f.correction)
        return (f.id, f.fingerprint, f.generation_id, f.kind, f.source, f.created_at, f.path, to_json(f))

    def _span_row(self, s: Span) -> tuple[Any, ...]:
        text = self._clean(s.text) or ""
        r = s.range
        return (s.generation_id, s.path, r.start_line, r.end_line, text, s.state, s.commit, s.updated_at,
                r.start_col, r.end_col)

    def attribute(self, feedback_id: str, generation_id: str) -> bool:
        """Attach unattributed feedback to a generation. If that makes it a duplicate of feedback the generation
        already has, the unattributed copy is dropped (the information is already there)."""
        with self._write() as conn:
            row = conn.execute("SELECT body FROM feedback WHERE id = ?", (feedback_id,)).fetchone()
            if row is None:
                return False
            fb = Feedback.from_dict(json.loads(row[0]))
            fb.generation_id = generation_id
            fb.fingerprint = fb.compute_fingerprint()
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

    # -- trainer claims ----------------------------------------------------------------------------------------

    def claim(self, owner: str, *, limit: int = 10_000, stale_after_s: float = 3600) -> Claim:
        """Claim up to `limit` generations that have feedback not yet trained on.

        A claim older than `stale_after_s` (its trainer died) is taken over. `BEGIN IMMEDIATE` makes the
        select-then-mark atomic across processes.
        """
        token = f"{owner}:{new_id()}"
        stale = _ago(stale_after_s)
        with self._write() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT generation_id FROM feedback WHERE generation_id IS NOT NULL AND"
                    " (state = 'new' OR (state = 'claimed' AND claimed_at < ?)) ORDER BY generation_id LIMIT ?",
                    (stale, limit),
                )
            ]
            conn.executemany(
                "UPDATE feedback SET state = 'claimed', claim_token = ?, claimed_at = ?"
                " WHERE generation_id = ? AND (state = 'new' OR (state = 'claimed' AND claimed_at < ?))",
                [(token, utc_now(), gid, stale) for gid in ids],
            )
        return Claim(token, ids)

    def ack(self, token: str) -> int:
        with self._write() as conn:
            return conn.execute("UPDATE feedback SET state = 'trained' WHERE claim_token = ?", (token,)).rowcount

    def release(self, token: str) -> int:
        with self._write() as conn:
            return conn.execute(
                "UPDATE feedback SET state = 'new', claim_token = NULL, claimed_at = NULL WHERE claim_token = ?",
                (token,),
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
                "SELECT COUNT(DISTINCT generation_id) FROM feedback WHERE generation_id IS NOT NULL"
            ).fetchone()[0],
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

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _queue_error(exc, self.path) from None
        return self.conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.Error as commit_exc:
                exc = commit_exc
        self.conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise _queue_error(exc, self.path) from None


def _queue_error(exc: sqlite3.Error, path: Path) -> QueueError:
    text = str(exc)
    if "full" in text:
        return QueueError("the disk is full; nothing from this batch was written", fix="free space and retry",
                          path=path)
    if "locked" in text or "busy" in text:
        return QueueError("the queue stayed locked by another process", fix="retry, or stop the stuck process",
                          path=path)
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


def _scrub_generation(g: Generation, scrub: Scrubber) -> Generation:
    """Scrub every free-text field. If the completion changed, its recorded token ids no longer match it."""
    p = g.prompt
    if p.messages:
        for m in p.messages:
            m.content = scrub(m.content)
    p.text = None if p.text is None else scrub(p.text)
    p.prefix = None if p.prefix is None else scrub(p.prefix)
    p.suffix = None if p.suffix is None else scrub(p.suffix)
    clean = scrub(g.completion)
    if clean != g.completion:
        g.completion = clean
        g.token_ids = None
        g.token_logprobs = None
        g.meta["scrubbed"] = True
    return g
