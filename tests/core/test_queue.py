"""The queue: idempotent, transactional, safe under concurrent writers and kill -9."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from redline.errors import QueueError
from redline.queue.migrations import MIGRATIONS
from redline.queue.store import SQLiteStore
from tests.core.helpers import make_feedback, make_generation


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "q.sqlite3")
    yield s
    s.close()


def test_new_queue_is_private_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    SQLiteStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT name FROM _migrations")] == [name for name, _ in MIGRATIONS]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_reopening_applies_no_migration_twice(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    SQLiteStore(path).add(generations=[make_generation()])
    with SQLiteStore(path) as again:
        assert again.counts()["generations"] == 1


def test_add_is_idempotent(store: SQLiteStore) -> None:
    g = make_generation()
    f = make_feedback(g.id)
    assert store.add([g], [f]).generations == 1
    again = store.add([g], [make_feedback(g.id)])
    assert (again.generations, again.feedback) == (0, 0)
    assert store.counts()["feedback"] == 1


def test_a_failing_batch_writes_nothing(store: SQLiteStore) -> None:
    class Boom(Exception):
        pass

    def generations():
        yield make_generation(1)
        raise Boom

    with pytest.raises(Boom):
        store.add(generations())
    assert store.counts()["generations"] == 0


def test_claim_ack_release(store: SQLiteStore) -> None:
    gens = [make_generation(i) for i in range(3)]
    store.add(gens, [make_feedback(g.id, i) for i, g in enumerate(gens)])
    first = store.claim("trainer-a", limit=2)
    assert len(first.generation_ids) == 2
    second = store.claim("trainer-b")
    assert len(second.generation_ids) == 1 and not set(second.generation_ids) & set(first.generation_ids)
    assert store.release(second.token) == 1
    assert store.ack(first.token) == 2
    assert store.counts()["states"] == {"trained": 2, "new": 1}
    # a live owner's claim is never taken over; one whose owner cannot be checked is, once stale
    stuck = store.claim("mine")
    assert store.claim("other", stale_after_s=0).generation_ids == []
    store._conn().execute("UPDATE feedback SET claim_token = 'old-format:token' WHERE claim_token = ?",
                          (stuck.token,))
    time.sleep(0.01)  # claim times have millisecond resolution
    assert store.claim("alive", stale_after_s=0).generation_ids == stuck.generation_ids


def test_accepted_code_does_not_count_towards_the_backlog_but_is_claimed(store: SQLiteStore) -> None:
    gens = [make_generation(i) for i in range(3)]
    store.add(gens, [make_feedback(gens[0].id, 0, kind="accept", message="kept as written", detail=None),
                     make_feedback(gens[1].id, 1, kind="accept", message="kept as written", detail=None)])
    assert store.backlog()[0] == 0  # accepted code alone teaches nothing: the daemon waits
    store.add(feedback=[make_feedback(gens[2].id, 2)])
    assert store.backlog()[0] == 1
    assert sorted(store.claim("trainer").generation_ids) == sorted(g.id for g in gens)  # the accepts anchor it


def test_attribute_merges_duplicates(store: SQLiteStore) -> None:
    g = make_generation()
    attributed = make_feedback(g.id)
    loose = make_feedback(None)
    store.add([g], [attributed, loose])
    assert store.attribute(loose.id, g.id)
    assert [f.id for f in store.feedback_for(g.id)] == [attributed.id]


def test_prune_keeps_recent_records(store: SQLiteStore) -> None:
    old = make_generation(1)
    old.created_at = "2001-01-01T00:00:00.000Z"
    store.add([old, make_generation(2)])
    assert store.prune(30) == 1
    assert store.counts()["generations"] == 1


def test_scrubber_runs_on_every_free_text_field(tmp_path: Path) -> None:
    from redline.scrub import scrub

    s = SQLiteStore(tmp_path / "q.sqlite3", scrubber=scrub)
    g = make_generation(completion='KEY = "AKIAIOSFODNN7EXAMPLE"\n')
    g.prompt.messages[1].content = "use password = 'hunter2hunter2'"
    s.add([g], [make_feedback(g.id, detail="token ghp_abcdefghijklmnopqrstuvwxyz0123456789")])
    raw = (tmp_path / "q.sqlite3").read_bytes() + (tmp_path / "q.sqlite3-wal").read_bytes()
    for secret in (b"AKIAIOSFODNN7EXAMPLE", b"hunter2hunter2", b"ghp_abcdefghijklmnopqrstuvwxyz0123456789"):
        assert secret not in raw
    stored = s.get_generation(g.id)
    assert stored.token_ids is None and stored.meta["scrubbed"] is True


def test_locked_queue_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "q.sqlite3"
    SQLiteStore(path).close()
    monkeypatch.setattr("redline.queue.store.BUSY_TIMEOUT_MS", 100)
    s = SQLiteStore(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(QueueError, match="another process holds a write lock"):
        s.add([make_generation()])
    blocker.execute("ROLLBACK")
    assert s.add([make_generation()]).generations == 1


def _writer(path: str, worker: int, n: int) -> None:
    s = SQLiteStore(path)
    for start in range(0, n, 50):
        gens = [make_generation(worker * 10_000 + i) for i in range(start, start + 50)]
        s.add(gens, [make_feedback(g.id, worker * 10_000 + i) for i, g in enumerate(gens, start)])
    s.close()


@pytest.mark.slow
def test_eight_processes_write_4000_records_without_loss(tmp_path: Path) -> None:
    path = str(tmp_path / "q.sqlite3")
    SQLiteStore(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 500)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM generations").fetchone() == (4000, 4000)
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT fingerprint) FROM feedback").fetchone() == (4000, 4000)


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from redline.queue.store import SQLiteStore
    from tests.core.helpers import make_generation
    s = SQLiteStore(sys.argv[1])
    i = 0
    while True:
        s.add([make_generation(i * 100 + j) for j in range(100)])
        i += 1
        print(i, flush=True)
    """
)


def test_writer_killed_mid_batch_leaves_a_sound_queue(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[2])
    committed = 0
    deadline = time.monotonic() + 60
    while committed < 5 and time.monotonic() < deadline:
        committed = int(proc.stdout.readline() or committed)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    assert rows >= committed * 100  # every batch it reported committed is there
    assert rows % 100 == 0  # and no batch is there in part
    conn.close()
    with SQLiteStore(path) as again:
        assert again.add([make_generation(10**7)]).generations == 1


def test_upgrade_from_every_older_schema_keeps_records(tmp_path: Path) -> None:
    from redline.queue.migrations import migrate
    from redline.records import Range, Span

    for applied in range(1, len(MIGRATIONS)):
        path = tmp_path / f"v{applied}.sqlite3"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, sql in MIGRATIONS[:applied]:
            for statement in filter(str.strip, sql.split(";")):
                conn.execute(statement)
            conn.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))
        conn.execute("INSERT INTO spans (generation_id, path, start_line, end_line, text, updated_at)"
                     " VALUES ('g', 'a.py', 1, 3, 'x', 'then')")
        conn.close()
        with SQLiteStore(path) as s:
            assert s.spans_for_path("a.py")[0].range == Range(1, 3)
            s.add(spans=[Span("h", "a.py", Range(5, 6, 4, 9), "y")])
            assert s.spans_for_path("a.py")[1].range == Range(5, 6, 4, 9)
        conn = sqlite3.connect(path)
        assert migrate(conn) == 0
