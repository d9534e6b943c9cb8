"""Completions `redline serve` recorded are linked when an editor inserts them through plain `didChange`s (no
Redline message from the client): whole, in two partial accepts, re-indented, or with a closing bracket the editor
added; a later diagnostic lands on that generation. Text that merely resembles a completion is not linked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from redline.config import load_config
from redline.ledger import record_generation
from redline.queue import Store
from redline.records import Generation, ModelRef, Prompt
from tests.lsp_server.lsp_helpers import Buffer, command

HUMAN = "import sys\n\n\n"
COMPLETION = "def add(a, b):\n    return a + b\n"


def served(repo: Path, store: Store, completion: str = COMPLETION, *, path: str | None = "app.py",
           age_s: float = 1.0, version: str | None = "v0001") -> Generation:
    """A completion as `redline serve` records it: origin "server", the request's file in meta.path."""
    when = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    gen = Generation(prompt_format="fim", prompt=Prompt(prefix=HUMAN, suffix=""), completion=completion,
                     model=ModelRef("tiny"), origin="server", created_at=when, adapter_version=version,
                     meta={"endpoint": "llama_infill", **({"path": path} if path else {})})
    return record_generation(store, load_config(repo), gen)


async def tracked(client: LanguageClient, buf: Buffer) -> dict[str, int]:
    """generation id → first line of each span the server tracks in `buf` (read through its code lenses)."""
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(types.TextDocumentIdentifier(buf.uri)))
    return {lens.command.arguments[0]["generationId"]: lens.range.start.line for lens in lenses or []
            if lens.command}


async def opened(client: LanguageClient, repo: Path, name: str = "app.py", text: str = HUMAN) -> Buffer:
    await command(client, "redline.status")  # reads the queue's recent completions now (the timer would, later)
    buf = Buffer(client, repo / name, text)
    buf.open()
    assert await tracked(client, buf) == {}  # answered once the document is loaded (as before a user's first key)
    return buf


async def queued_span(client: LanguageClient, store: Store, gid: str, path: str = "app.py") -> Any:
    await command(client, "redline.status")  # the span is written on the store thread, ahead of this
    return next((s for s in store.spans_for_path(path) if s.generation_id == gid), None)


@pytest.mark.asyncio
async def test_whole_insert_is_linked_and_a_diagnostic_lands_on_it(
    client: LanguageClient, repo: Path, store: Store
) -> None:
    gen = served(repo, store)
    buf = await opened(client, repo)
    buf.edit((3, 0), (3, 0), COMPLETION)
    assert await tracked(client, buf) == {gen.id: 3}
    span = await queued_span(client, store, gen.id)
    assert span is not None and (span.range.start_line, span.range.end_line) == (3, 5)

    # served and taken: it counts as accepted for its adapter version (`redline status`)
    assert store.acceptance(["server"]) == [{"adapter_version": "v0001", "suggested": 1, "accepted": 1}]

    buf.edit((4, 16), (4, 16), " +")  # the human breaks it, and saves
    hints = await buf.save()
    (diag,) = [f for f in store.feedback_for(gen.id) if f.kind == "diagnostic"]
    assert diag.source == "lsp.py_compile" and diag.range is not None and diag.range.start_line == 4
    assert [h.message for h in hints] == ["1 problem recorded for training"]


@pytest.mark.asyncio
@pytest.mark.parametrize("client", ["visual-studio-code"], indirect=True)
async def test_two_partial_accepts_extend_one_span(client: LanguageClient, repo: Path, store: Store) -> None:
    gen = served(repo, store)
    buf = await opened(client, repo)
    buf.edit((3, 0), (3, 0), "def add(a, b):\n")  # accept line
    buf.edit((4, 0), (4, 0), "    return ")  # accept word
    buf.edit((4, 11), (4, 11), "a + b\n")  # accept the rest
    assert await tracked(client, buf) == {gen.id: 3}
    span = await queued_span(client, store, gen.id)
    assert span is not None and span.text == COMPLETION and span.range.end_line == 5


@pytest.mark.asyncio
@pytest.mark.parametrize("client", ["neovim"], indirect=True)
async def test_reindented_and_auto_closed_inserts_are_linked(client: LanguageClient, repo: Path, store: Store) -> None:
    gen = served(repo, store)
    call = served(repo, store, "print(add(2, 3)", path=None)
    buf = await opened(client, repo, text="class Calc:\n")
    buf.edit((1, 0), (1, 0), "    def add(a, b):\n        return a + b\n")  # the editor indented it into the class
    buf.edit((3, 0), (3, 0), "print(add(2, 3))")  # ... and closed the bracket the completion left open
    assert await tracked(client, buf) == {gen.id: 1, call.id: 3}


@pytest.mark.asyncio
@pytest.mark.parametrize("client", ["visual-studio-code"], indirect=True)
async def test_resembling_text_is_not_linked(client: LanguageClient, repo: Path, store: Store) -> None:
    served(repo, store)
    old = served(repo, store, "def mul(a, b):\n    return a * b\n", age_s=3600)  # outside the time window
    served(repo, store, "def sub(a, b):\n    return a - b\n", path="other.py")  # asked for another file
    buf = await opened(client, repo)
    for i, ch in enumerate("def add(a, b):"):  # typed by hand, one key at a time
        buf.edit((3, i), (3, i), ch)
    buf.edit((3, 14), (3, 14), "\n    ret")  # a short piece of the completion, below the length floor
    buf.edit((5, 0), (5, 0), old.completion)
    buf.edit((0, 0), (0, 0), "def sub(a, b):\n    return a - b\n")
    assert await tracked(client, buf) == {}
    assert [s for s in store.spans_for_path("app.py")] == []


@pytest.mark.asyncio
@pytest.mark.parametrize("client", ["visual-studio-code"], indirect=True)
@pytest.mark.parametrize("lsp_options", [{"manualClock": True, "linkCompletions": False}])
async def test_the_setting_turns_linking_off(client: LanguageClient, repo: Path, store: Store,
                                             lsp_options: dict[str, Any]) -> None:
    served(repo, store)
    buf = await opened(client, repo)
    buf.edit((3, 0), (3, 0), COMPLETION)
    assert await tracked(client, buf) == {}


@pytest.mark.asyncio
@pytest.mark.parametrize("client", ["visual-studio-code"], indirect=True)
@pytest.mark.parametrize("lsp_options", [{"manualClock": True, "linkRefreshSeconds": 0.1}])
async def test_a_completion_served_later_is_picked_up_by_the_timer(
    client: LanguageClient, repo: Path, store: Store, lsp_options: dict[str, Any]
) -> None:
    buf = await opened(client, repo)
    gen = served(repo, store)  # no request follows that would reread the queue: only the timer does
    for _ in range(100):
        buf.edit((3, 0), (3, 0), COMPLETION)
        if await tracked(client, buf):
            break
        buf.edit((3, 0), (5, 0), "")
        await asyncio.sleep(0.05)
    assert await tracked(client, buf) == {gen.id: 3}


@pytest.mark.asyncio
@pytest.mark.parametrize("client", ["visual-studio-code"], indirect=True)
async def test_insert_right_after_opening_is_linked(client: LanguageClient, repo: Path, store: Store) -> None:
    """An editor may insert a completion while the server is still looking up the document's repository; those
    changes are linked once it knows (Neovim's headless test hit this)."""
    gen = served(repo, store)
    unseen = served(repo, store, "def never(x):\n    return x\n")
    await command(client, "redline.status")
    buf = Buffer(client, repo / "app.py", HUMAN)
    buf.open()
    buf.edit((3, 0), (3, 0), COMPLETION)  # no request in between: it may arrive before the open is done
    buf.edit((0, 0), (0, 0), "# moved down by one line\n")
    assert await tracked(client, buf) == {gen.id: 4}
    assert await queued_span(client, store, gen.id) is not None
    assert store.acceptance(["server"]) == [{"adapter_version": "v0001", "suggested": 2, "accepted": 1}]
    assert unseen.id not in await tracked(client, buf)

