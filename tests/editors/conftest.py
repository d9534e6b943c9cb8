"""A real `redline lsp` over stdio, initialised the way the VS Code extension does (VS Code's capabilities); the
repository and queue fixtures are the language server tests' own."""

from __future__ import annotations

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.lsp_server.conftest import SERVER, repo, store

__all__ = ["client", "repo", "store"]


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient, repo):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=repo.as_uri(),
        initialization_options={"manualClock": True}))
    yield
    await lsp_client.shutdown_session()
