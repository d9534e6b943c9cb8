"""A team queue's server going away and coming back, on a real PostgreSQL server this module stops and restarts:
writers spool (one warning line) and send the spool when it is back, nothing lost; a restart under an open store
is invisible; a trainer's connection cut mid-claim keeps its claim; no password is ever printed or logged."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import psycopg
import pytest

from redline import ledger
from redline.config import load_config
from redline.errors import QueueUnavailable
from redline.queue import open_store
from redline.queue.claims import Heartbeat
from redline.queue.postgres import PostgresStore, schema_for
from redline.records import Range, Span
from tests.core.helpers import make_feedback, make_generation
from tests.team.conftest import PYTHON, python_env
from tests.team.pgserver import PgServer


@pytest.fixture
def down(pg_faults: PgServer):  # type: ignore[no-untyped-def]
    """The server, started again after the test whatever it did to it."""
    yield pg_faults
    pg_faults.start()


def _repo(tmp_path: Path, url: str, name: str = "app") -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "redline.toml").write_text(f'repo_id = "github.com/acme/{name}"\nqueue_url = "{url}"\n', encoding="utf-8")
    return root


def test_writers_spool_while_the_server_is_down_and_send_it_when_it_is_back(
        tmp_path: Path, down: PgServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("redline.queue.pg_session.RETRY_S", 0.0)  # try the server at every write, not every 10 s
    config = load_config(_repo(tmp_path, down.url("postgres")))
    store = open_store(config)
    gens = [make_generation(i, path="m.py", start=10 * i) for i in range(6)]
    ledger.record(store, config, generations=gens[:2])
    down.stop()
    caplog.set_level(logging.INFO, logger="redline.queue")
    spooled = [ledger.record(store, config, generations=[g], feedback=[make_feedback(None, i, path="m.py",
                                                                                    range=Range(10 * i, 10 * i + 1))])
               for i, g in enumerate(gens[2:], 2)]
    assert all(r.spooled == 3 and r.spool_file is not None for r in spooled)  # generation, feedback, span
    assert all(r.spool_file.name.endswith(".attribute.jsonl") for r in spooled)  # built without the spans
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "cannot be reached" in warnings[0].getMessage()
    assert "spool" in warnings[0].getMessage()
    with pytest.raises(QueueUnavailable):  # a read has nowhere to go: one line, no hang
        store.counts()
    down.start()
    ledger.record(store, config, generations=[make_generation(99)])
    counts = store.counts()
    assert counts["generations"] == 7 and counts["feedback"] == 4 and counts["attributed"] == 4  # attributed on send
    assert not list((config.state_dir / "spool").glob("*.jsonl"))
    store.close()


def test_a_spool_left_by_a_writer_that_exited_is_sent_by_the_next_open(tmp_path: Path, down: PgServer) -> None:
    root = _repo(tmp_path, down.url("postgres"), "ci")
    down.stop()
    script = ("from redline.config import load_config; from redline.queue import open_store; from redline import "
              "ledger; from tests.core.helpers import make_generation; c = load_config('.'); s = open_store(c); "
              "r = ledger.record(s, c, generations=[make_generation(i) for i in range(5)]); print(r.spooled)")
    out = subprocess.run([PYTHON, "-c", script], cwd=root, env=python_env(), capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "5", out.stderr
    assert out.stderr.count("cannot be reached") == 1  # the one warning line
    down.start()
    with open_store(load_config(root)) as store:  # type: ignore[attr-defined]
        assert store.counts()["generations"] == 5


def test_a_restart_under_an_open_store_is_invisible(tmp_path: Path, down: PgServer) -> None:
    store = PostgresStore(down.url("postgres"), "github.com/acme/restart", spool_dir=tmp_path / "spool")
    store.add([make_generation(1)])
    down.restart()  # every session is cut: the store's connection is dead now
    assert store.add([make_generation(2)]).generations == 1
    assert store.counts()["generations"] == 2
    store.close()


def test_a_trainer_cut_off_mid_claim_keeps_its_claim_and_acks_once(tmp_path: Path, down: PgServer) -> None:
    url = down.url("postgres")
    store = PostgresStore(url, "github.com/acme/claim", spool_dir=tmp_path / "spool")
    gens = [make_generation(i) for i in range(4)]
    store.add(gens, [make_feedback(g.id, i) for i, g in enumerate(gens)])
    claim = store.claim("trainer", stale_after_s=60)
    with Heartbeat(store, claim.token, every_s=0.2) as beat:
        with psycopg.connect(url, autocommit=True) as admin:  # the network drops every session of the trainer
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE"
                          " 'redline %' AND pid != pg_backend_pid()")
        other = PostgresStore(url, "github.com/acme/claim", spool_dir=tmp_path / "spool")
        assert other.claim("second", stale_after_s=60).generation_ids == []
        assert store.heartbeat(claim.token) and not beat.lost.is_set()
    assert store.ack(claim.token) == 4
    assert other.counts()["states"] == {"trained": 4}
    store.close()
    other.close()


def test_no_password_is_printed_or_logged(tmp_path: Path, down: PgServer, caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-Passw0rd"
    url = f"postgresql://redline:{secret}@127.0.0.1:{down.port}/postgres"
    root = tmp_path / "app"
    root.mkdir()
    (root / "redline.toml").write_text(f'queue_url = "{url}"\n', encoding="utf-8")
    down.stop()
    caplog.set_level(logging.DEBUG)
    config = load_config(root)
    assert len(config.warnings) == 1 and "PGPASSFILE" in config.warnings[0] and "PGPASSWORD" in config.warnings[0]
    assert secret not in repr(config.warnings) and secret not in config.queue_location
    store = open_store(config)
    result = ledger.record(store, config, generations=[make_generation()])
    assert result.spooled == 1 and secret not in str(result.busy)
    with pytest.raises(QueueUnavailable) as err:
        store.counts()
    assert secret not in err.value.one_line()
    assert caplog.records and not [r for r in caplog.records if secret in r.getMessage()]
    assert any("PGPASSFILE" in r.getMessage() for r in caplog.records)
    cli = subprocess.run([PYTHON, "-m", "redline", "status"], cwd=root, env=python_env(REDLINE_HOME=str(
        tmp_path / "home")), capture_output=True, text=True, timeout=120)
    assert secret not in cli.stdout + cli.stderr and "PGPASSFILE" in cli.stderr
    store.close()


def test_a_repository_id_owns_its_schema(tmp_path: Path, down: PgServer) -> None:
    url = down.url("postgres")
    PostgresStore(url, "github.com/acme/owned", spool_dir=tmp_path).close()
    with psycopg.connect(url, autocommit=True) as conn:  # another repository's row claims the schema's name
        conn.execute("UPDATE redline.repos SET repo_id = 'github.com/else/where' WHERE schema_name = %s",
                     (schema_for("github.com/acme/owned"),))
        conn.execute(f"DELETE FROM {schema_for('github.com/acme/owned')}._migrations WHERE name LIKE '004%'")
    from redline.errors import QueueError

    with pytest.raises(QueueError, match="belongs to repository"):
        PostgresStore(url, "github.com/acme/owned", spool_dir=tmp_path).counts()


def test_span_text_is_stored_whole(tmp_path: Path, down: PgServer) -> None:
    store = PostgresStore(down.url("postgres"), "github.com/acme/spans", spool_dir=tmp_path)
    text = "x = '✓ tab\there'\n"
    store.add(spans=[Span("g", "a.py", Range(0, 1), text), Span("g", "a.py", Range(0, 2), text + "y\n")])
    assert [s.text for s in store.spans_for_path("a.py")] == [text + "y\n"]  # the last of a batch wins
    store.close()
