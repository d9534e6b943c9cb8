"""The VS Code extension's messages, checked against the real language server through the shared fixture
`messages.json` (the extension's unit tests build and parse the same examples), so neither side can drift:
every message the extension sends is accepted and means what the extension intends, and every message the
extension parses has the shape the server sends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from redline.lsp_server import actions
from redline.queue import Store
from tests.lsp_server.lsp_helpers import Buffer, command

FIXTURE = json.loads((Path(__file__).parent / "messages.json").read_text(encoding="utf-8"))


def real(obj: Any, uri: str) -> Any:
    """The fixture with its placeholder URI replaced by the open document's."""
    return json.loads(json.dumps(obj).replace(FIXTURE["uri"], uri))


def end_of(start: dict[str, int], text: str) -> dict[str, int]:
    lines = text.split("\n")
    if len(lines) == 1:
        return {"line": start["line"], "character": start["character"] + len(text)}
    return {"line": start["line"] + len(lines) - 1, "character": len(lines[-1])}


def opened(client: LanguageClient, repo: Path, text: str) -> Buffer:
    buf = Buffer(client, repo / "app.py", text)
    buf.open()
    return buf


async def lenses(client: LanguageClient, uri: str) -> list[types.CodeLens]:
    found = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    return list(found or [])


def test_fixture_names_the_servers_commands() -> None:
    used = {FIXTURE["markSelection"]["command"], FIXTURE["review"]["command"]}
    used |= {c["command"] for c in FIXTURE["codeLens"]["commands"]}
    assert used <= set(actions.ALL_COMMANDS)


@pytest.mark.asyncio
async def test_completion_insert_is_tracked_with_the_lenses_the_extension_expects(
        client: LanguageClient, repo: Path) -> None:
    done = FIXTURE["before"] + FIXTURE["completion"]["text"]
    buf = opened(client, repo, done)
    msg = FIXTURE["didInsertGeneration"]
    client.protocol.notify(msg["method"], real(msg["params"], buf.uri))
    got = await lenses(client, buf.uri)
    commands = [{"title": lens.command.title, "command": lens.command.command,
                 "arguments": list(lens.command.arguments or [])} for lens in got if lens.command]
    assert commands == real(FIXTURE["codeLens"]["commands"], buf.uri)
    assert {lens.range.start.line for lens in got} == {FIXTURE["completion"]["start"]["line"]}


@pytest.mark.asyncio
async def test_partial_accept_reports_grow_one_span(client: LanguageClient, repo: Path, store: Store) -> None:
    buf = opened(client, repo, FIXTURE["before"])
    start = FIXTURE["completion"]["start"]
    for step in FIXTURE["partialAccept"]["steps"]:
        change = step["change"]
        at = buf.text[:change["rangeOffset"]]
        pos = (at.count("\n"), len(at.split("\n")[-1]))
        buf.edit(pos, pos, change["text"])
        if step["report"] is None:
            continue
        params = real(step["report"], buf.uri)
        # the notification and redline.recordInsert take the same object; the command answers where it landed
        result = await command(client, actions.RECORD_INSERT, params)
        assert result["generationId"] == params["generationId"]
        assert result["range"] == {"start": start, "end": end_of(start, params["text"])}
    assert len(await lenses(client, buf.uri)) == 3  # one span, not one per report
    spans = store.spans_for_path("app.py")
    assert [s.generation_id for s in spans] == [FIXTURE["completion"]["generationId"]]


@pytest.mark.asyncio
async def test_mark_selection_arguments(client: LanguageClient, repo: Path, store: Store) -> None:
    buf = opened(client, repo, FIXTURE["before"] + FIXTURE["completion"]["text"])
    sel = FIXTURE["markSelection"]
    args = real(sel["arguments"], buf.uri)
    result = await command(client, sel["command"], *args)
    assert sorted(result) == sorted(sel["resultKeys"])
    assert result["range"] == args[0]["range"]
    assert store.get_generation(result["generationId"]).completion == "import math"


@pytest.mark.asyncio
async def test_forwarded_diagnostics_and_review_become_feedback(client: LanguageClient, repo: Path,
                                                                store: Store) -> None:
    buf = opened(client, repo, FIXTURE["before"] + FIXTURE["completion"]["text"])
    ins = FIXTURE["didInsertGeneration"]
    client.protocol.notify(ins["method"], real(ins["params"], buf.uri))
    fwd = FIXTURE["forwardedDiagnostics"]
    client.protocol.notify(fwd["method"], real(fwd["params"], buf.uri))
    await buf.save()
    gid = FIXTURE["completion"]["generationId"]
    # the save's answer may be the hints published for the insert (they race under load): wait for the records
    for _ in range(600):
        diag = [f for f in store.feedback_for(gid) if f.kind == "diagnostic"]
        if len(diag) >= len(fwd["params"]["diagnostics"]):
            break
        await asyncio.sleep(0.05)
    assert [f.message for f in diag] == [d["message"] for d in fwd["params"]["diagnostics"]]

    rev = FIXTURE["review"]
    assert await command(client, rev["command"], *real(rev["arguments"], buf.uri)) == rev["result"]
    assert [f.message for f in store.feedback_for(gid) if f.kind == "review"] == [rev["arguments"][0]["text"]]


def json_type(v: Any) -> str:
    return {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(v), "null")


@pytest.mark.asyncio
async def test_status_has_the_fixtures_keys_and_types(client: LanguageClient, repo: Path) -> None:
    status = await command(client, actions.STATUS)
    example = FIXTURE["status"]["params"]
    assert sorted(status) == sorted(example)
    for key, value in status.items():
        assert value is None or json_type(value) == json_type(example[key]), key
