"""A team's queue: one PostgreSQL database for every editor, CI runner and trainer of the team (docs/team.md).

`PostgresStore` keeps the `Store` protocol with the SQLite queue's meaning; what differs is the dialect:

* **One schema per repository** (`schema_for(repo_id)`), holding the same tables the SQLite file holds and
  migrated by the same numbered list (`redline.queue.migrations`, PostgreSQL variants where the dialect
  differs). Every query stays the SQLite one, unqualified, under the repository's `search_path`; each repository
  is versioned on its own; and a team can grant or drop one repository's records alone. `redline.repos` lists the
  repositories (what `redline worker` looks through).
* **Claims** take generations with `SELECT … FOR UPDATE SKIP LOCKED`: two trainers claiming at once never wait
  on or share a generation. Claim times are the server's clock, so leases on machines with skewed clocks agree.
* **Short transactions**: every call is one transaction of a few statements in autocommit mode, so no snapshot is
  held between calls (the xmin horizon that a long-open queue transaction would pin).
* **An unreachable server** (down, restarting, no network) is `QueueUnavailable`, a kind of `QueueBusy`: the
  ledger spools the batch on this machine (`redline.queue.spool`), one warning line is logged per outage, and the
  spool is sent by the first write that reaches the server again (or by the next open). Writes are idempotent
  (ids and fingerprints), so a batch whose commit was cut off and is then spooled and sent is not stored twice.

Secrets are scrubbed by `prepare` on the writer's machine before anything is sent, as for SQLite; each record is
stamped with the machine and user that wrote it (`meta.written_by`, never a credential); the URL is shown only
without its password (`redline.queue.url.redact`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from redline.errors import QueueBusy, QueueError, QueueUnavailable, RecordError
from redline.queue import spool
from redline.queue.pg_claims import PgClaims
from redline.queue.pg_session import (
    _AGO,
    _BLANK,
    _COMPLETION_HEAD,
    _one,
    schema_for,
    written_by,
)
from redline.queue.protocol import AddResult
from redline.queue.scrubbing import Batch, Scrubber, prepare
from redline.queue.url import redact, secrets_of
from redline.records import Feedback, Generation, Range, Span, to_json

log = logging.getLogger("redline.queue")


class PostgresStore(PgClaims):
    """`Store` on one repository's schema of a team's PostgreSQL. One connection per thread; safe across threads.

    Opening never fails for an unreachable server (writers spool until it is back); a schema migrated by a newer
    Redline raises `SchemaTooNew` naming both versions. `spool_dir` is this machine's spool for the repository;
    `attribute(store, feedback)` attributes the feedback of a batch spooled while the server was out of reach
    when it is sent (`open_store` passes the ledger's attribution)."""

    def __init__(self, url: str, repo_id: str, *, spool_dir: Path, scrubber: Scrubber | None = None,
                 busy_timeout_s: float | None = None,
                 attribute: Callable[[Any, list[Feedback]], list[Feedback]] | None = None) -> None:
        self.url = url
        self.where = redact(url)
        self.repo_id = repo_id
        self.schema = schema_for(repo_id)
        self.spool_dir = Path(spool_dir)
        self._scrub = scrubber
        self._attribute = attribute
        self._busy_ms = int(1000 * (30.0 if busy_timeout_s is None else busy_timeout_s))
        self._secrets = secrets_of(url)
        self._by = written_by()
        self._local = threading.local()
        self._conns: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._migrated = False
        self._retry_at = 0.0
        self._outage: str | None = None  # why the server could not be reached, while it cannot
        self._merge_due = True
        self._claimed: dict[str, int] = {}
        try:
            self._conn()
        except QueueUnavailable:
            return  # logged once; writes spool until the server is back
        self._merge_spool()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------------------------

    def prepare(self, generations: Iterable[Generation] = (), feedback: Iterable[Feedback] = (),
                spans: Iterable[Span] = ()) -> Batch:
        """Scrubbed and validated as for SQLite (on this machine, before anything is sent), each record stamped
        with who wrote it unless it already says (an import keeps its writer)."""
        batch = prepare(generations, feedback, spans, scrub=self._scrub)
        for record in batch.generations:
            record.meta.setdefault("written_by", self._by)
        for fb in batch.feedback:
            fb.meta.setdefault("written_by", self._by)
        return batch

    def write(self, batch: Batch) -> AddResult:
        """Insert a prepared batch in one statement (one round trip, one transaction: all lands or none does);
        duplicates are skipped. `QueueUnavailable` (a `QueueBusy`) when the server cannot be reached: the ledger
        spools the batch."""
        gens = [(g.id, g.repo_id, g.created_at, g.split, g.insertion.path if g.insertion else None,
                 _body(g, "generation")) for g in batch.generations]
        fbs = [(f.id, f.fingerprint, f.generation_id, f.kind, f.source, f.created_at, f.path, _body(f, "feedback"))
               for f in batch.feedback]
        # a span given twice in one batch: the last one wins, as SQLite's INSERT OR REPLACE has it
        spans = list({(s.generation_id, s.path): (s.generation_id, s.path, s.range.start_line, s.range.end_line,
                                                  s.text or "", s.state, s.commit, s.updated_at, s.range.start_col,
                                                  s.range.end_col) for s in batch.spans}.values())
        if not (gens or fbs or spans):
            return AddResult()
        args = [*_columns(gens, 6), *_columns(fbs, 8), *_columns(spans, 10)]
        n_gen, n_fb, n_span = self._run(lambda conn: _one(conn.execute(_WRITE, args)), single=True)
        self._merge_spool()
        return AddResult(n_gen, n_fb, n_span)

    def spool(self, batch: Batch) -> Path:
        """Set a prepared batch aside on this machine; sent by the first write that reaches the server again.
        Built while the server was unreachable, its feedback is attributed again when it is sent."""
        self._merge_due = True
        return spool.write(self.spool_dir, batch, attribute=self._outage is not None)

    def _merge_spool(self) -> None:
        if not self._merge_due or not self.spool_dir.is_dir():
            return
        self._merge_due = False
        try:
            attribute = self._attribute
            sent = spool.merge(self, self.spool_dir, None if attribute is None else lambda fbs: attribute(self, fbs))
        except QueueBusy:  # gone again: the rest waits for the next write that gets through
            self._merge_due = True
            return
        if sent:
            log.info("sent %d spooled batch(es) to the team queue %s", sent, self.where)
        if any(self.spool_dir.glob("*.jsonl")):
            self._merge_due = True

    def add(self, generations: Iterable[Generation] = (), feedback: Iterable[Feedback] = (),
            spans: Iterable[Span] = ()) -> AddResult:
        return self.write(self.prepare(generations, feedback, spans))

    def hold_out(self, generation_ids: Iterable[str]) -> int:
        """Move generations to the held-out split (the gate's), for good; returns how many moved."""
        ids = list(generation_ids)
        if not ids:
            return 0
        return self._run(lambda conn: conn.execute(
            "UPDATE generations SET split = 'heldout', body = jsonb_set(body::jsonb, '{split}', '\"heldout\"')::text"
            " WHERE id = ANY(%s) AND split IS DISTINCT FROM 'heldout'", (ids,)).rowcount, single=True)

    def attribute(self, feedback_id: str, generation_id: str) -> bool:
        """Attach unattributed feedback to a generation; a copy that becomes a duplicate is dropped."""
        def work(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute("SELECT body FROM feedback WHERE id = %s FOR UPDATE", (feedback_id,)).fetchone()
            if row is None:
                return False
            fb = Feedback.from_dict(json.loads(row[0])).attributed_to(generation_id)
            if conn.execute("SELECT 1 FROM feedback WHERE fingerprint = %s AND id != %s",
                            (fb.fingerprint, feedback_id)).fetchone():
                conn.execute("DELETE FROM feedback WHERE id = %s", (feedback_id,))
            else:
                conn.execute("UPDATE feedback SET generation_id = %s, fingerprint = %s, body = %s WHERE id = %s",
                             (generation_id, fb.fingerprint, to_json(fb), feedback_id))
            return True

        try:
            return self._run(work)
        except QueueError as exc:
            if "duplicate key" not in exc.message:
                raise
            return self._run(work)  # the same finding landed meanwhile: now it is found and this copy dropped

    # -- reads -------------------------------------------------------------------------------------------------

    def get_generation(self, generation_id: str) -> Generation | None:
        rows = self._read("SELECT body FROM generations WHERE id = %s", (generation_id,))
        return Generation.from_dict(json.loads(rows[0][0])) if rows else None

    def find_generations(self, prefix: str) -> list[Generation]:
        rows = self._read("SELECT body FROM generations WHERE starts_with(id, %s) ORDER BY id LIMIT 20", (prefix,))
        return [Generation.from_dict(json.loads(r[0])) for r in rows]

    def generations_with_completion(self, text: str, *, limit: int = 20) -> list[Generation]:
        """Generations whose completion is `text` up to surrounding whitespace, newest first (migration 003's
        index on the first 64 characters, then compared in full)."""
        key = text.strip(_BLANK)
        rows = self._read(f"SELECT body FROM generations WHERE {_COMPLETION_HEAD} = %s"
                          " ORDER BY created_at DESC, id DESC", (key[:64],))
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
        """(id, completion, created_at, file path) of generations of the given origins since `since`, newest
        first; a range scan on the `created_at` index."""
        rows = self._read(
            "SELECT id, (body::json) ->> 'completion', created_at, CASE"
            " WHEN coalesce(json_typeof((body::json) -> 'meta' -> 'path'), 'null') = 'null' THEN path"
            " WHEN json_typeof((body::json) -> 'meta' -> 'path') = 'string' THEN (body::json) -> 'meta' ->> 'path'"
            " END FROM generations WHERE created_at >= %s AND (body::json) ->> 'origin' = ANY(%s)"
            " ORDER BY created_at DESC LIMIT %s", (since, list(origins), limit))
        return [(gid, text, at, where) for gid, text, at, where in rows if isinstance(text, str)]

    def acceptance(self, origins: Iterable[str]) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT (body::json) ->> 'adapter_version' AS v, COUNT(*), SUM(CASE WHEN"
            " EXISTS (SELECT 1 FROM spans s WHERE s.generation_id = g.id) OR EXISTS (SELECT 1 FROM feedback f"
            "  WHERE f.generation_id = g.id AND f.kind IN ('accept', 'edit')) THEN 1 ELSE 0 END)"
            " FROM generations g WHERE (body::json) ->> 'origin' = ANY(%s) GROUP BY v ORDER BY v NULLS FIRST",
            (list(origins),))
        return [{"adapter_version": v, "suggested": n, "accepted": int(a or 0)} for v, n, a in rows]

    def generations(self, *, split: str | None = None, with_feedback: bool | None = None,
                    limit: int | None = None) -> Iterator[Generation]:
        sql = "SELECT body FROM generations g WHERE true"
        args: list[Any] = []
        if split is not None:
            sql += " AND split = %s"
            args.append(split)
        if with_feedback is not None:
            exists = "EXISTS (SELECT 1 FROM feedback f WHERE f.generation_id = g.id)"
            sql += f" AND {'' if with_feedback else 'NOT '}{exists}"
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT %s"
            args.append(limit)
        for (body,) in self._read(sql, args):
            yield Generation.from_dict(json.loads(body))

    def feedback_for(self, generation_id: str) -> list[Feedback]:
        rows = self._read("SELECT body FROM feedback WHERE generation_id = %s ORDER BY id", (generation_id,))
        return [Feedback.from_dict(json.loads(r[0])) for r in rows]

    def feedback(self, *, unattributed: bool = False, limit: int | None = None) -> Iterator[Feedback]:
        sql = "SELECT body FROM feedback" + (" WHERE generation_id IS NULL" if unattributed else "") + " ORDER BY id"
        args: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT %s"
            args = (int(limit),)
        for (body,) in self._read(sql, args):
            yield Feedback.from_dict(json.loads(body))

    def spans_for_path(self, path: str) -> list[Span]:
        rows = self._read(
            "SELECT generation_id, path, start_line, end_line, start_col, end_col, text, state, commit_sha,"
            " updated_at FROM spans WHERE path = %s ORDER BY start_line", (path,))
        return [Span(r[0], r[1], Range(r[2], r[3], r[4], r[5]), *r[6:]) for r in rows]

    def awaiting(self, prefix: str = "") -> dict[str, int]:
        rows = self._read(
            "SELECT generation_id, COUNT(*) FROM feedback f WHERE starts_with(generation_id, %s)"
            " AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.id = f.generation_id)"
            " GROUP BY generation_id ORDER BY generation_id", (prefix,))
        return dict(rows)  # type: ignore[arg-type]

    def span_paths(self) -> list[str]:
        return [r[0] for r in self._read("SELECT DISTINCT path FROM spans WHERE state != 'deleted' ORDER BY path")]

    # -- housekeeping ------------------------------------------------------------------------------------------

    def prune(self, older_than_days: float) -> int:
        def work(conn: psycopg.Connection[Any]) -> int:
            cutoff = _one(conn.execute(f"SELECT {_AGO}", (older_than_days * 86400,)))[0]
            n = conn.execute("DELETE FROM feedback WHERE created_at < %s", (cutoff,)).rowcount
            n += conn.execute("DELETE FROM generations WHERE created_at < %s AND NOT EXISTS"
                              " (SELECT 1 FROM feedback f WHERE f.generation_id = generations.id)", (cutoff,)).rowcount
            conn.execute("DELETE FROM spans WHERE updated_at < %s", (cutoff,))
            return int(n)

        return self._run(work)

    def counts(self) -> dict[str, Any]:
        def work(conn: psycopg.Connection[Any]) -> dict[str, Any]:
            by_kind = conn.execute("SELECT kind, source, COUNT(*), COUNT(generation_id) FROM feedback"
                                   " GROUP BY kind, source ORDER BY kind, source").fetchall()
            states = dict(conn.execute("SELECT state, COUNT(*) FROM feedback GROUP BY state").fetchall())
            waiting = _one(conn.execute(
                "SELECT COUNT(DISTINCT generation_id), COUNT(*) FROM feedback f WHERE generation_id IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.id = f.generation_id)"))
            return {
                "generations": _one(conn.execute("SELECT COUNT(*) FROM generations"))[0],
                "generations_with_feedback": _one(conn.execute(
                    "SELECT COUNT(DISTINCT f.generation_id) FROM feedback f JOIN generations g"
                    " ON g.id = f.generation_id"))[0],
                "awaiting_generation": dict(zip(("generations", "feedback"), waiting, strict=True)),
                "feedback": sum(r[2] for r in by_kind),
                "attributed": sum(r[3] or 0 for r in by_kind),
                "by_kind_source": [{"kind": k, "source": s, "count": n, "attributed": a or 0}
                                   for k, s, n, a in by_kind],
                "states": states,
                "spans": _one(conn.execute("SELECT COUNT(*) FROM spans"))[0],
            }

        return self._run(work)

    def get_meta(self, key: str) -> Any:
        rows = self._read("SELECT value FROM meta WHERE key = %s", (key,))
        return json.loads(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: Any) -> None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        self._run(lambda conn: conn.execute(
            "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, text)),
            single=True)

#: a whole batch as one statement: each table's rows arrive as one array per column, sent in binary (`%b`: the
#: text format would escape every quote of every JSON body on the client); the counts say what was new
_WRITE = """
WITH g AS (
    INSERT INTO generations (id, repo_id, created_at, split, path, body)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[])
    ON CONFLICT DO NOTHING RETURNING 1
), f AS (
    INSERT INTO feedback (id, fingerprint, generation_id, kind, source, created_at, path, body)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
                         %b::text[])
    ON CONFLICT DO NOTHING RETURNING 1
), s AS (
    INSERT INTO spans (generation_id, path, start_line, end_line, text, state, commit_sha, updated_at, start_col,
                       end_col)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::int[], %b::int[], %b::text[], %b::text[], %b::text[],
                         %b::text[], %b::int[], %b::int[])
    ON CONFLICT (generation_id, path) DO UPDATE SET start_line = excluded.start_line, end_line = excluded.end_line,
        text = excluded.text, state = excluded.state, commit_sha = excluded.commit_sha,
        updated_at = excluded.updated_at, start_col = excluded.start_col, end_col = excluded.end_col
    RETURNING 1
)
SELECT (SELECT COUNT(*) FROM g), (SELECT COUNT(*) FROM f), (SELECT COUNT(*) FROM s)
"""


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as `width` column lists (what `unnest` takes)."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _body(record: Any, where: str) -> str:
    try:
        return to_json(record)
    except ValueError as exc:
        raise RecordError(f"{where} cannot be written as JSON ({str(exc)[:100]})", fix="check its numbers") from None


__all__ = ["PostgresStore", "schema_for", "written_by"]
