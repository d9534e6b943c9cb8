"""Fixtures for the language server tests: a throwaway repo, a real stdio session (pytest-lsp) per client
capability set, and helpers that keep the client's copy of a document in step with the server's."""

from __future__ import annotations

import os
import subprocess
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
from tests.conftest import skip_or_fail

SERVER = [sys.executable, "-c", "from redline.cli import main; main(['lsp', '--log-level', 'warning'])"]
#: each session test runs once per client's capabilities; the fast lane keeps VS Code's (the slow lane adds Neovim's)
CLIENTS = ["visual-studio-code", pytest.param("neovim", marks=pytest.mark.slow)]


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


#: the document around a completion asked of `redline serve` (fill-in-the-middle)
PREFIX = "import sys\n\n\ndef main():\n    "
SUFFIX = "\n"


def serve_unavailable() -> str | None:
    """None when `redline serve --help` runs here, else the last line it printed."""
    done = subprocess.run([sys.executable, "-m", "redline", "serve", "--help"], capture_output=True, text=True,
                          check=False, timeout=120)
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["no output"])[-1]


@pytest.fixture
def served(repo: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(generation id, completion) from one FIM request to a `redline serve` running for `repo`."""
    if why := serve_unavailable():
        skip_or_fail(f"`redline serve` is not available: {why}")
    import httpx

    from tests.trainer.conftest import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    proc = subprocess.Popen([sys.executable, "-m", "redline", "serve", "--model", str(model), "--port", "0"],
                            cwd=repo, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        line = ""
        while not line.startswith("redline serve: "):
            line = proc.stderr.readline().decode()
            assert line or proc.poll() is None, "redline serve exited before it was ready"
        url = line.split()[2]
        answer = httpx.post(f"{url}/v1/completions", headers={"x-redline-path": "app.py"}, timeout=120,
                            json={"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 40, "temperature": 0}).json()
        yield answer["id"], answer["choices"][0]["text"]
    finally:
        proc.terminate()
        proc.wait(30)
