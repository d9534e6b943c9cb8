"""Numbered schema migrations, one list for every backend, run in order on every open and recorded in `_migrations`.

Each record keeps its full JSON body; the columns beside it exist only for lookups and claims, so a new record
field needs no migration — only a new index or claim rule does. Never edit a migration that has shipped; append.

The steps are written in SQL that SQLite and PostgreSQL both run (TEXT, INTEGER, plain indexes); where a dialect
must differ (an index on a JSON expression), `POSTGRES` holds that one step's PostgreSQL text under the same name,
so both backends pass through the same numbered versions. A queue migrated by a newer Redline (a name this list
does not know) is refused with one line naming both versions (`newer_error`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from redline.errors import SchemaTooNew
from redline.records import utc_now

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_initial",
        """
        CREATE TABLE generations (
            id TEXT PRIMARY KEY,
            repo_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            split TEXT,
            path TEXT,
            body TEXT NOT NULL
        );
        CREATE INDEX generations_created ON generations(created_at);
        CREATE INDEX generations_path ON generations(path);

        CREATE TABLE feedback (
            id TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL UNIQUE,
            generation_id TEXT,
            kind TEXT NOT NULL,
            source TEXT NOT NULL,
            created_at TEXT NOT NULL,
            path TEXT,
            state TEXT NOT NULL DEFAULT 'new',
            claim_token TEXT,
            claimed_at TEXT,
            body TEXT NOT NULL
        );
        CREATE INDEX feedback_generation ON feedback(generation_id);
        CREATE INDEX feedback_state ON feedback(state);
        CREATE INDEX feedback_path ON feedback(path);

        CREATE TABLE spans (
            generation_id TEXT NOT NULL,
            path TEXT NOT NULL,
            start_line INTEGER NOT NULL,
            end_line INTEGER NOT NULL,
            text TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'live',
            commit_sha TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (generation_id, path)
        );
        CREATE INDEX spans_path ON spans(path);

        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    ),
    (
        # spans ending mid-line read back one line short without their columns
        "002_span_columns",
        """
        ALTER TABLE spans ADD COLUMN start_col INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE spans ADD COLUMN end_col INTEGER NOT NULL DEFAULT 0
        """,
    ),
    (
        # a chat history's assistant turns are matched to the generation that wrote them (redline serve/proxy);
        # built-in functions only, so any sqlite3 client can still write the table
        "003_completion_head",
        """
        CREATE INDEX generations_completion_head
            ON generations(substr(trim(json_extract(body, '$.completion'), char(32, 9, 10, 13)), 1, 64))
        """,
    ),
    (
        # heartbeats, acks and releases find a claim's rows by its token (a team's trainers heartbeat each minute)
        "004_claim_token",
        """
        CREATE INDEX feedback_claim ON feedback(claim_token)
        """,
    ),
]

#: PostgreSQL's text of the steps its dialect needs written differently (same name, same meaning)
POSTGRES: dict[str, str] = {
    # the same first 64 characters of the trimmed completion; `body` is JSON text, read with PostgreSQL's json
    "003_completion_head": """
        CREATE INDEX generations_completion_head
            ON generations ((substr(btrim((body::json) ->> 'completion', E' \\t\\n\\r'), 1, 64)))
        """,
}


def steps(dialect: str) -> list[tuple[str, str]]:
    """The numbered steps as `dialect` ("sqlite" or "postgres") runs them."""
    variants = POSTGRES if dialect == "postgres" else {}
    return [(name, variants.get(name, sql)) for name, sql in MIGRATIONS]


def statements(sql: str) -> list[str]:
    """One step's statements (none of them holds a `;` inside)."""
    return [s for s in sql.split(";") if s.strip()]


def newer_error(version: int, where: object, upgrade: str = "pip install -U redline") -> SchemaTooNew:
    """The one line for a queue a newer Redline migrated: both versions and the upgrade command."""
    return SchemaTooNew(f"the queue is at schema version {version}, this Redline knows versions up to "
                        f"{len(MIGRATIONS)}", fix=f"upgrade Redline on this machine: `{upgrade}`", path=where)


def check_known(applied: Iterable[str], where: object, upgrade: str = "pip install -U redline") -> None:
    """Raise `newer_error` when `applied` holds a migration this code does not know."""
    applied = set(applied)
    known = {name for name, _ in MIGRATIONS}
    if applied - known:
        raise newer_error(len(applied | known), where, upgrade)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring `conn` up to the newest schema; returns the number of migrations applied.

    Runs under `BEGIN IMMEDIATE` so two processes opening a fresh database at once do not both migrate. A
    database already at the newest version is only read, so opening it never waits on another writer.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == len(MIGRATIONS):
        return 0
    where = next((row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"), None)
    if version > len(MIGRATIONS):
        raise newer_error(version, where)
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    applied = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
        check_known(done, where)
        for name, sql in steps("sqlite"):
            if name in done:
                continue
            for statement in statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, utc_now()))
            applied += 1
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied
