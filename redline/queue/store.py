"""The local queue: every generation, its feedback and its live spans, in one SQLite file per repo.

Why SQLite in WAL mode: readers never block the writer, several processes (language server, pytest-xdist
controller, CI ingest, trainer) may write on one host, and a commit survives kill -9. Every write is one
transaction (`redline.queue.transaction`); feedback is idempotent by fingerprint and generations by id, so
re-ingesting a report is harmless. Callers use the `Store` protocol only (`redline.queue.protocol`), so a team
backend (PostgreSQL, `FOR UPDATE SKIP LOCKED` claims) can replace this class without touching them; what it
would share — scrubbing, the spool, claim owners — lives in modules of its own.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redline.errors import RecordError
from redline.private import private_dir
from redline.queue import spool
from redline.queue.claims import LEASE_S, claim_lost, claim_token, owner_alive
from redline.queue.migrations import migrate
from redline.queue.protocol import AddResult, Claim, Store
from redline.queue.scrubbing import Batch, Scrubber, prepare
from redline.queue.transaction import Transaction, open_error
from redline.records import Feedback, Generation, Range, Span, to_json, utc_now

BUSY_TIMEOUT_MS = 30_000
_BLANK = " \t\n\r"
# the expression of migration 003's index, spelled identically so SQLite uses the index
_COMPLETION_HEAD = "substr(trim(json_extract(body, '$.completion'), char(32, 9, 10, 13)), 1, 64)"


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
        self._claimed: dict[str, int] = {}  # this instance's claims: token → feedback rows claimed
        try:
            private_dir(self.path.parent)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            migrate(self._conn())
        except (sqlite3.DatabaseError, OSError) as exc:
            raise open_error(exc, self.path) from None
        spool.merge(self, spool.spool_dir(self.path))

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

    def _write(self, needed_bytes: int = 0) -> Transaction:
        return Transaction(self._conn(), self.path, needed_bytes)

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

    def prepare(self, generations: Iterable[Generation] = (), feedback: Iterable[Feedback] = (),
                spans: Iterable[Span] = ()) -> Batch:
        """The records scrubbed (if this queue scrubs) and validated, ready to `write` or `spool`; a bad one
        raises `RecordError` naming its field."""
        return prepare(generations, feedback, spans, scrub=self._scrub)

    def write(self, batch: Batch) -> AddResult:
        """Insert a prepared batch in one transaction: all lands or none does. Duplicates are skipped, not
        errors. `QueueBusy` when another process holds the write lock past the busy timeout."""
        gen_rows = [(g.id, g.repo_id, g.created_at, g.split, g.insertion.path if g.insertion else None,
                     _body(g, "generation")) for g in batch.generations]
        fb_rows = [(f.id, f.fingerprint, f.generation_id, f.kind, f.source, f.created_at, f.path,
                    _body(f, "feedback")) for f in batch.feedback]
        span_rows = [(s.generation_id, s.path, s.range.start_line, s.range.end_line, s.text or "", s.state, s.commit,
                      s.updated_at, s.range.start_col, s.range.end_col) for s in batch.spans]
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

    def spool(self, batch: Batch) -> Path:
        """Set a prepared batch aside beside the queue file; the next open merges it (`redline.queue.spool`)."""
        return spool.write(spool.spool_dir(self.path), batch)

    def add(self, generations: Iterable[Generation] = (), feedback: Iterable[Feedback] = (),
            spans: Iterable[Span] = ()) -> AddResult:
        """`prepare` then `write`: every record scrubbed and validated before anything is written."""
        return self.write(self.prepare(generations, feedback, spans))

    def hold_out(self, generation_ids: Iterable[str]) -> int:
        """Move generations to the held-out split (the gate's), for good; returns how many moved."""
        with self._write() as conn:
            cur = conn.executemany(
                "UPDATE generations SET split = 'heldout', body = json_set(body, '$.split', 'heldout')"
                " WHERE id = ? AND split IS NOT 'heldout'", [(g,) for g in generation_ids])
            return cur.rowcount

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
        claim whose owner cannot be checked (another host, an older token) is taken over once `stale_after_s`
        passed since its last `heartbeat`. `BEGIN IMMEDIATE` makes the select-then-mark atomic across processes.
        Feedback that awaits its generation record is left for when the generation arrives: there is nothing to
        train it on yet, and claiming it would mark it trained without training.
        """
        token = claim_token(owner)
        stale = _ago(stale_after_s)
        with self._write() as conn:
            held = conn.execute("SELECT claim_token, MIN(claimed_at) FROM feedback WHERE state = 'claimed'"
                                " GROUP BY claim_token").fetchall()
            orphaned = [(t,) for t, at in held if t and not owner_alive(t, at, stale)]
            conn.executemany("UPDATE feedback SET state = 'new', claim_token = NULL, claimed_at = NULL"
                             " WHERE claim_token = ?", orphaned)
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT generation_id FROM feedback f WHERE generation_id IS NOT NULL AND state = 'new'"
                    " AND EXISTS (SELECT 1 FROM generations g WHERE g.id = f.generation_id)"
                    " ORDER BY generation_id LIMIT ?",
                    (limit,),
                )
            ]
            before = conn.total_changes
            conn.executemany(
                "UPDATE feedback SET state = 'claimed', claim_token = ?, claimed_at = ?"
                " WHERE generation_id = ? AND state = 'new'",
                [(token, utc_now(), gid) for gid in ids],
            )
            self._claimed[token] = conn.total_changes - before
        return Claim(token, ids)

    def heartbeat(self, token: str) -> bool:
        """Renew the claim's time, so a claim whose owner another process cannot check stays held while it runs;
        False when it is no longer held (taken over)."""
        with self._write() as conn:
            n = conn.execute("UPDATE feedback SET claimed_at = ? WHERE claim_token = ? AND state = 'claimed'",
                             (utc_now(), token)).rowcount
        return n > 0 or not self._claimed.get(token)

    def backlog(self) -> tuple[int, str | None]:
        """(attributed feedback records not yet trained on, the oldest one's `created_at`): what the daemon
        schedules by — new records, and claimed ones whose claim has had no heartbeat for `LEASE_S` (their holder
        is gone; the next claim takes them over). `accept` records are left out: code kept as written teaches
        nothing by itself (it anchors a run that has mistakes to learn from), so a day of accepted completions
        starts no training; so is feedback that awaits its generation record."""
        n, oldest = self._conn().execute(
            "SELECT COUNT(*), MIN(created_at) FROM feedback f WHERE generation_id IS NOT NULL"
            " AND (state = 'new' OR (state = 'claimed' AND claimed_at < ?)) AND kind != 'accept'"
            " AND EXISTS (SELECT 1 FROM generations g WHERE g.id = f.generation_id)", (_ago(LEASE_S),)
        ).fetchone()
        return int(n), oldest

    def ack(self, token: str) -> int:
        """Mark the claim's records trained; `ClaimLost` when the claim was taken over before this."""
        with self._write() as conn:
            n = conn.execute("UPDATE feedback SET state = 'trained' WHERE claim_token = ?", (token,)).rowcount
        if n == 0 and self._claimed.pop(token, 0):
            raise claim_lost()
        return n

    def release(self, token: str) -> int:
        self._claimed.pop(token, None)
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


__all__ = ["AddResult", "Claim", "SQLiteStore", "Scrubber", "Store"]
