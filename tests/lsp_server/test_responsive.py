"""A checker that hangs never blocks the server: requests are answered while it runs, and it is killed."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.lsp_server.lsp_helpers import Buffer, command, rng


@pytest.fixture
def lsp_options() -> dict[str, Any]:
    return {"manualClock": True, "checkerTimeout": 3, "builtinCheckers": False}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    hang = [sys.executable, "-c", "import time; time.sleep(60)"]
    command_list = ", ".join(f'"{a}"' for a in hang)
    (root / "redline.toml").write_text(f"[checkers]\npython = [[{command_list}]]\n", encoding="utf-8")
    return root


@pytest.mark.asyncio
@pytest.mark.parametrize("client", ["neovim"], indirect=True)
async def test_hanging_checker_does_not_block_requests(client: LanguageClient, repo: Path) -> None:
    buf = Buffer(client, repo / "slow.py", "x = 1\ndef f():\n    return 2\n")
    buf.open()
    await command(client, "redline.recordInsert", {"uri": buf.uri, "range": rng((1, 0), (3, 0))})
    saved = asyncio.ensure_future(buf.save())
    await asyncio.sleep(0.5)  # let the checker start
    started = time.monotonic()
    buf.edit((0, 0), (0, 0), "# typing while the checker runs\n")
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(types.TextDocumentIdentifier(buf.uri)))
    assert time.monotonic() - started < 1.5
    assert lenses and {lens.range.start.line for lens in lenses} == {2}
    assert not saved.done()
    assert await asyncio.wait_for(saved, 30) == []  # the checker was killed at checkerTimeout; nothing recorded
