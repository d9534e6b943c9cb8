"""Fixtures for the language server tests: a throwaway repo, a real stdio session (pytest-lsp) per client
capability set, and helpers that keep the client's copy of a document in step with the server's."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from redline.config import load_config
from redline.queue import Store, open_store

SERVER = [sys.executable, "-c", "from redline.cli import main; main(['lsp', '--log-level', 'warning'])"]
CLIENTS = ["visual-studio-code", "neovim"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    return root


@pytest.fixture
def store(repo: Path) -> Iterator[Store]:
    """The queue the server writes to, opened from the test (same REDLINE_HOME, same repo)."""
    s = open_store(load_config(repo))
    yield s
    s.close()


@pytest.fixture
def lsp_options() -> dict[str, Any]:
    """initializationOptions for the server under test (a module overrides this fixture to change them)."""
    return {"manualClock": True}


@pytest_lsp.fixture(params=CLIENTS, config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest, repo: Path, lsp_options: dict[str, Any]):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(request.param),
            root_uri=repo.as_uri(),
            initialization_options=lsp_options,
        )
    )
    yield
    await lsp_client.shutdown_session()
