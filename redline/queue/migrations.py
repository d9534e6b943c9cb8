"""Numbered schema migrations, run in order on every open and recorded in `_migrations`.

Each record keeps its full JSON body; the columns beside it exist only for lookups and claims, so a new record
field needs no migration — only a new index or claim rule does. Never edit a migration that has shipped; append.
"""

from __future__ import annotations

import sqlite3

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
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring `conn` up to the newest schema; returns the number of migrations applied.

    Runs under `BEGIN IMMEDIATE` so two processes opening a fresh database at once do not both migrate. A
    database already at the newest version is only read, so opening it never waits on another writer.
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS):
        return 0
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    applied = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            for statement in filter(str.strip, sql.split(";")):
                conn.execute(statement)
            conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, utc_now()))
            applied += 1
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied
