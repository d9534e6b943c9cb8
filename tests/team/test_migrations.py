"""One numbered migration list for both backends, upgraded from every older schema on each; a queue migrated by
a newer Redline is refused in one line naming both versions and the upgrade command."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from redline.errors import SchemaTooNew
from redline.queue import SQLiteStore
from redline.queue.migrations import MIGRATIONS, statements, steps
from redline.queue.postgres import _COMPLETION_HEAD, PostgresStore, schema_for
from redline.records import Range, Span
from tests.core.helpers import make_feedback, make_generation


def test_the_backends_differ_only_where_the_dialect_must() -> None:
    sqlite, postgres = steps("sqlite"), steps("postgres")
    assert [n for n, _ in sqlite] == [n for n, _ in postgres] == [n for n, _ in MIGRATIONS]
    assert [n for (n, a), (_, b) in zip(sqlite, postgres, strict=True) if a != b] == ["003_completion_head"]


@pytest.mark.parametrize("applied", range(1, len(MIGRATIONS)))
def test_postgres_upgrades_from_every_older_schema(pg_url: str, tmp_path: Path, applied: int) -> None:
    repo = f"github.com/acme/old{applied}"
    schema = schema_for(repo)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the schema as an older Redline left it
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}")
        conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, sql in steps("postgres")[:applied]:
            for statement in statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO _migrations VALUES (%s, 'then')", (name,))
        conn.execute("INSERT INTO spans (generation_id, path, start_line, end_line, text, updated_at)"
                     " VALUES ('g', 'a.py', 1, 3, 'x', 'then')")
        g = make_generation(1, completion="def kept():\n    pass\n")
        from redline.records import to_json

        conn.execute("INSERT INTO generations VALUES (%s, %s, %s, %s, %s, %s)",
                     (g.id, g.repo_id, g.created_at, g.split, None, to_json(g)))
    with PostgresStore(pg_url, repo, spool_dir=tmp_path / "spool") as store:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.spans_for_path("a.py")[0].range == Range(1, 3)
        store.add(spans=[Span("h", "a.py", Range(5, 6, 4, 9), "y")])
        assert store.spans_for_path("a.py")[1].range == Range(5, 6, 4, 9)
        assert [x.id for x in store.generations_with_completion("def kept():\n    pass")] == [g.id]  # 003's index
        store.add(feedback=[make_feedback(g.id)])
        claim = store.claim("t")
        assert claim.generation_ids == [g.id] and store.ack(claim.token) == 1
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the lookup's expression is the index's
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT body FROM {schema}.generations WHERE {_COMPLETION_HEAD} = 'x'"))
        assert "generations_completion_head" in plan


def test_sqlite_upgrades_to_the_same_list(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, sql in steps("sqlite")[:3]:
        for statement in statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO _migrations VALUES (?, 'then')", (name,))
    conn.close()
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")] == [n for n, _ in MIGRATIONS]
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'feedback_claim'").fetchone()


def test_a_newer_schema_is_one_line_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO _migrations VALUES ('005_from_the_future', 'later')")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew) as err:
        SQLiteStore(path)
    line = err.value.one_line()
    assert f"schema version {len(MIGRATIONS) + 1}" in line and f"up to {len(MIGRATIONS)}" in line
    assert "pip install -U redline" in line and "\n" not in line
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1  # untouched


def test_a_newer_schema_is_one_line_on_postgres(pg_url: str, tmp_path: Path) -> None:
    PostgresStore(pg_url, "github.com/acme/app", spool_dir=tmp_path).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {schema_for('github.com/acme/app')}._migrations VALUES ('005_future', 'later')")
    with pytest.raises(SchemaTooNew) as err:
        PostgresStore(pg_url, "github.com/acme/app", spool_dir=tmp_path)
    line = err.value.one_line()
    assert f"schema version {len(MIGRATIONS) + 1}" in line and f"up to {len(MIGRATIONS)}" in line
    assert "pip install -U 'redline[team]'" in line


def test_repositories_share_a_database_each_in_its_own_schema(pg_url: str, tmp_path: Path) -> None:
    a = PostgresStore(pg_url, "github.com/acme/app", spool_dir=tmp_path)
    b = PostgresStore(pg_url, "github.com/other/app", spool_dir=tmp_path)
    g = make_generation()
    same = make_feedback(None, path="m.py", range=Range(1, 2))  # one finding text and place in both repositories
    a.add([g], [same])
    b.add(feedback=[make_feedback(None, path="m.py", range=Range(1, 2))])
    assert a.counts()["feedback"] == b.counts()["feedback"] == 1 and b.counts()["generations"] == 0
    assert a.schema != b.schema and sorted(a.repositories()) == ["github.com/acme/app", "github.com/other/app"]
    a.close()
    b.close()
