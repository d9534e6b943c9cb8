"""Fixtures for the team tests: a real PostgreSQL server (`tests/team/pgserver.py`) and repositories that use it.

Without PostgreSQL's binaries or psycopg these tests skip saying why on a developer's machine; under CI
(`REDLINE_CI=1`, as `.ci/run` sets) they fail instead (`tests.conftest.skip_or_fail`), so a CI that lost its server
cannot pass by skipping.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.team.pgserver import PgServer, start_server

ROOT = Path(__file__).resolve().parents[2]


def _server() -> PgServer:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        reason = "psycopg is not installed (pip install 'redline[team]')"
    else:
        try:
            return start_server()
        except (RuntimeError, OSError, KeyError) as exc:  # KeyError: no unprivileged user to run it as
            reason = f"cannot start a PostgreSQL server: {str(exc).strip()[:300]}"
    skip_or_fail(f"the team tests need a PostgreSQL server: {reason}")


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    """One server for the session (per xdist worker); tests keep apart by database or repository id."""
    server = _server()
    yield server
    server.close()


@pytest.fixture(scope="module")
def pg_faults() -> Iterator[PgServer]:
    """A server of the module's own, which its tests stop, restart and cut off without disturbing others."""
    server = _server()
    yield server
    server.close()


@pytest.fixture
def pg_url(pg: PgServer, request: pytest.FixtureRequest) -> str:
    """A new, empty database for this test (its own `redline.repos` directory)."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[-40:] + f"_{os.getpid()}"
    return pg.create_database(name[:63])


@pytest.fixture
def team_repo(tmp_path: Path, pg_url: str) -> Path:
    """A repository whose `redline.toml` points at the test's database and a shared adapter store."""
    root = tmp_path / "app"
    root.mkdir()
    (root / "redline.toml").write_text(
        f'repo_id = "github.com/acme/app"\nqueue_url = "{pg_url}"\nadapter_store = "{tmp_path / "store"}"\n',
        encoding="utf-8")
    return root


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python process that imports Redline and the tests from the checkout."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


PYTHON = sys.executable
