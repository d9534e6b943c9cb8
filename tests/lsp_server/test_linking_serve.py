"""A completion served and recorded by a real `redline serve` (the trainer's tiny model, CPU) is linked when the
editor inserts it through plain `didChange`s: whole (and the checker's error on it is attributed to it), in two
partial accepts, and re-indented. The client sends no
Redline message; the generation id is only in serve's answer, which the test reads to check the link."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_lsp import LanguageClient

from redline.queue import Store
from tests.lsp_server.conftest import PREFIX, SUFFIX
from tests.lsp_server.lsp_helpers import command
from tests.lsp_server.test_linking import opened, tracked

pytestmark = [pytest.mark.slow, pytest.mark.real_part]


@pytest.mark.asyncio
@pytest.mark.parametrize("client", ["neovim"], indirect=True)
async def test_completion_from_redline_serve_is_linked(client: LanguageClient, repo: Path, store: Store,
                                                       served: tuple[str, str]) -> None:
    gid, text = served
    assert len("".join(text.split())) >= 10, f"the tiny model's completion is too short to link: {text!r}"

    whole = await opened(client, repo, "app.py", PREFIX + SUFFIX)
    whole.edit((4, 4), (4, 4), text)
    assert await tracked(client, whole) == {gid: 4}
    await whole.save()  # the tiny model writes no sensible Python: the checkers' findings land on its generation
    assert [f for f in store.feedback_for(gid) if f.kind == "diagnostic"]

    half = len(text) // 2
    parts = await opened(client, repo, "app.py", PREFIX + SUFFIX)  # reopened: linked again, in two accepts
    parts.edit((4, 4), (4, 4), text[:half])
    head = parts.text[:parts.text.index(text[:half]) + half].splitlines(keepends=True)
    parts.edit((len(head) - 1, len(head[-1])), (len(head) - 1, len(head[-1])), text[half:])
    assert await tracked(client, parts) == {gid: 4}
    assert parts.text == PREFIX + text + SUFFIX

    indented = "\n".join("        " + line if i else line for i, line in enumerate(text.split("\n")))
    other = await opened(client, repo, "app.py", PREFIX + SUFFIX)
    other.edit((4, 4), (4, 4), indented)
    assert await tracked(client, other) == {gid: 4}
    assert (await command(client, "redline.status"))["generations"] >= 1
