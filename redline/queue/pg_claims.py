"""The team queue's trainer claims and the team's view: claims taken with `FOR UPDATE SKIP LOCKED` under a lease
that heartbeats renew on the server's clock (a dead holder's records return when it lapses), and the per-repository
training job a `redline worker` holds as a session advisory lock (freed when its connection ends).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from redline.errors import QueueError, QueueUnavailable
from redline.queue.claims import LEASE_S, claim_lost, claim_token, owner_alive
from redline.queue.pg_session import _AGO, _NOW, DIRECTORY, PgSession, _one
from redline.queue.protocol import Claim


class PgClaims(PgSession):
    """Claims and jobs; `PostgresStore` adds the records."""

    _claimed: dict[str, int]

    # -- trainer claims ----------------------------------------------------------------------------------------

    def claim(self, owner: str, *, limit: int = 10_000, stale_after_s: float = 3600) -> Claim:
        """Claim up to `limit` generations that have feedback not yet trained on, as the SQLite queue does.

        First, claims whose holder is gone return: one made on this host whose process is dead, at once; one
        from another machine once `stale_after_s` passed since its last `heartbeat` (checked again row by row as
        they are taken, so a heartbeat that lands meanwhile keeps its claim whole). Then generations are taken
        with `FOR UPDATE SKIP LOCKED`: a generation another trainer is claiming right now is skipped, not waited
        for, and one it has claimed is no longer new. Feedback awaiting its generation record is left for later.
        """
        token = claim_token(owner)

        def work(conn: psycopg.Connection[Any]) -> list[str]:
            stale = _one(conn.execute(f"SELECT {_AGO}", (stale_after_s,)))[0]
            held = conn.execute("SELECT claim_token, MIN(claimed_at) FROM feedback WHERE state = 'claimed'"
                                " GROUP BY claim_token").fetchall()
            gone = [t for t, at in held if t and not owner_alive(t, at, stale)]
            dead = [t for t in gone if _local_owner(t)]  # a dead process: no heartbeat can come
            lapsed = [t for t in gone if t not in dead]
            if dead:
                conn.execute("UPDATE feedback SET state = 'new', claim_token = NULL, claimed_at = NULL"
                             " WHERE claim_token = ANY(%s) AND state = 'claimed'", (dead,))
            if lapsed:
                conn.execute("UPDATE feedback SET state = 'new', claim_token = NULL, claimed_at = NULL"
                             " WHERE claim_token = ANY(%s) AND state = 'claimed' AND claimed_at < %s",
                             (lapsed, stale))
            ids = [r[0] for r in conn.execute(
                "SELECT g.id FROM generations g WHERE g.id IN (SELECT generation_id FROM feedback"
                " WHERE state = 'new' AND generation_id IS NOT NULL) ORDER BY g.id LIMIT %s"
                " FOR UPDATE OF g SKIP LOCKED", (limit,))]
            if not ids:
                return []
            got = conn.execute(f"UPDATE feedback SET state = 'claimed', claim_token = %s, claimed_at = {_NOW}"
                               " WHERE generation_id = ANY(%s) AND state = 'new' RETURNING generation_id",
                               (token, ids)).fetchall()
            self._claimed[token] = len(got)
            return sorted({r[0] for r in got})

        try:
            return Claim(token, self._run(work, retry=False))
        except QueueUnavailable:
            self._claimed.pop(token, None)
            try:  # the commit may have landed before the connection broke: give those rows back
                self.release(token)
            except QueueError:
                pass  # this process's claim: the next claim on this host returns it once the process is gone
            raise

    def heartbeat(self, token: str) -> bool:
        """Renew the claim's time on the server's clock; False once it is no longer held (taken over)."""
        n = self._run(lambda conn: conn.execute(
            f"UPDATE feedback SET claimed_at = {_NOW} WHERE claim_token = %s AND state = 'claimed'",
            (token,)).rowcount, single=True)
        return n > 0 or not self._claimed.get(token)

    def backlog(self) -> tuple[int, str | None]:
        """(attributed feedback records to train on, the oldest one's `created_at`), as for SQLite: new ones and
        those of claims without a heartbeat for `LEASE_S`; `accept` records and feedback awaiting its generation
        left out."""
        n, oldest = self._read(
            "SELECT COUNT(*), MIN(created_at) FROM feedback f WHERE generation_id IS NOT NULL"
            f" AND (state = 'new' OR (state = 'claimed' AND claimed_at < {_AGO})) AND kind != 'accept'"
            " AND EXISTS (SELECT 1 FROM generations g WHERE g.id = f.generation_id)", (LEASE_S,))[0]
        return int(n), oldest

    def ack(self, token: str) -> int:
        """Mark the claim's records trained; `ClaimLost` when it was taken over first (nothing to promote)."""
        n = self._run(lambda conn: conn.execute(
            "UPDATE feedback SET state = 'trained' WHERE claim_token = %s AND state = 'claimed'", (token,)).rowcount,
            single=True)
        if n == 0 and self._claimed.pop(token, 0):
            raise claim_lost()
        return int(n)

    def release(self, token: str) -> int:
        self._claimed.pop(token, None)
        return int(self._run(lambda conn: conn.execute(
            "UPDATE feedback SET state = 'new', claim_token = NULL, claimed_at = NULL WHERE claim_token = %s",
            (token,)).rowcount, single=True))

    def release_owner(self, owner: str) -> int:
        """Release every claim `owner` holds (its process died without releasing them)."""
        prefix = owner + ":"
        return int(self._run(lambda conn: conn.execute(
            "UPDATE feedback SET state = 'new', claim_token = NULL, claimed_at = NULL"
            " WHERE state = 'claimed' AND starts_with(claim_token, %s)", (prefix,)).rowcount,
            single=True))

    # -- the team's view ---------------------------------------------------------------------------------------

    @contextmanager
    def hold_job(self, worker: str) -> Iterator[bool]:
        """Hold this repository's training job while the block runs; yields False when another worker holds it.

        A session-level advisory lock on a connection of its own: it ends with the connection, so a worker that
        is killed frees the job at once, and one that lost power or its network within a minute (the server
        sees the dead peer through TCP keepalives and ends its session). The claim's lease keeps the records."""
        try:
            conn = self._connect()
        except psycopg.OperationalError as exc:
            raise self._went_away(exc) from None
        try:
            conn.execute("SELECT set_config('application_name', %s, false)", (f"redline worker {worker}",))
            held = bool(_one(conn.execute("SELECT pg_try_advisory_lock(hashtext('redline.job'), hashtext(%s))",
                                          (self.schema,)))[0])
            yield held
        finally:
            conn.close()

    def job_holder(self) -> str | None:
        """The application name of the session holding this repository's training job, None when none does."""
        rows = self._read(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.classid::int = hashtext('redline.job')"
            " AND l.objid::int = hashtext(%s)", (self.schema,))
        return rows[0][0] if rows else None

    def repositories(self) -> list[str]:
        """Every repository id with a schema in this database (`redline.repos`)."""
        return [r[0] for r in self._read(f"SELECT repo_id FROM {DIRECTORY}.repos ORDER BY repo_id")]

    def schema_version(self) -> int:
        return len(self._read("SELECT name FROM _migrations"))


def _local_owner(token: str) -> bool:
    """Whether the claim token was made on this host (so its process was checked, and found gone)."""
    parts = token.rsplit(":", 4)
    return len(parts) == 5 and parts[1] == socket.gethostname().replace(":", "-")
