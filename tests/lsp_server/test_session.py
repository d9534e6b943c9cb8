"""End to end over stdio, once with VS Code's and once with Neovim's client capabilities: insert generations, edit
around and inside them, save with an error, and read the feedback rows the server queued."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from redline.config import load_config
from redline.ledger import record_generation
from redline.queue import Store
from redline.records import Generation, Message, ModelRef, Prompt
from redline.status import AdapterStatus, GateFigure, write_adapter
from tests.lsp_server.lsp_helpers import Buffer, command, rng

HUMAN = "# café ✓ human code\nimport sys\n\nprint(sys.argv)\n"
GENERATED = "def add(a, b):\n    return a + b\n"


def known_generation(repo: Path, store: Store, completion: str = GENERATED) -> Generation:
    gen = Generation(prompt_format="chat", prompt=Prompt(messages=[Message("user", "write add")]),
                     completion=completion, model=ModelRef("local-coder"))
    return record_generation(store, load_config(repo), gen)


def kinds(store: Store, gid: str) -> list[tuple[str, str]]:
    return sorted((f.kind, f.source) for f in store.feedback_for(gid))


@pytest.mark.asyncio
async def test_generation_edited_around_and_inside_then_saved_with_error(
    client: LanguageClient, repo: Path, store: Store
) -> None:
    gen = known_generation(repo, store)
    buf = Buffer(client, repo / "app.py", HUMAN)
    buf.open()

    # the model's text lands at line 3 and the client reports it with the custom notification
    buf.edit((3, 0), (3, 0), GENERATED)
    client.protocol.notify("redline/didInsertGeneration",
                           {"generationId": gen.id, "uri": buf.uri, "range": rng((3, 0), (5, 0)),
                            "text": GENERATED})
    # a second generation of unknown id, through the command clients without custom messages use
    other = await command(client, "redline.recordInsert",
                          {"generationId": "unknown-gen-1", "uri": buf.uri, "range": rng((1, 0)),
                           "text": "import sys\n"})
    assert other["known"] is False

    # human edits around the span: a line above, a blank line below
    buf.edit((0, 0), (0, 0), "import os\n")
    buf.edit((7, 0), (7, 0), "\n")
    # … and inside it: the human breaks the model's code (a syntax error at line 5)
    assert buf.text.splitlines()[5] == "    return a + b"
    buf.edit((5, 16), (5, 16), " +")

    hints = await buf.save()
    rows = [f for f in store.feedback_for(gen.id) if f.kind == "diagnostic"]
    assert {f.source for f in rows} == {"lsp.py_compile"}
    assert rows[0].range is not None and rows[0].range.start_line == 5
    assert rows[0].path == "app.py"
    assert [h.message for h in hints] == ["1 problem recorded for training"]
    assert hints[0].severity == types.DiagnosticSeverity.Hint and hints[0].range.start.line == 4

    await buf.save()  # the same error again: deduplicated across saves
    assert len([f for f in store.feedback_for(gen.id) if f.kind == "diagnostic"]) == 1
    assert store.feedback_for("unknown-gen-1") == []  # the error is not in that span

    # the human fixes it their own way; once saved and settled it becomes edit feedback with the final text
    buf.edit((5, 13), (5, 18), "- b")
    assert buf.text.splitlines()[5] == "    return a - b"
    await buf.save()
    result = await command(client, "redline.advanceClock", 29)
    assert result["recorded"] == 0  # not settled yet
    result = await command(client, "redline.advanceClock", 600)
    assert result["recorded"] == 1
    (edit,) = [f for f in store.feedback_for(gen.id) if f.kind == "edit"]
    assert edit.correction == "def add(a, b):\n    return a - b\n"
    assert edit.meta["generated_chars"] == len(GENERATED)
    assert set(edit.meta["retained_chars"]) == {"30s", "2m", "10m"}
    assert edit.meta["retained_chars"]["10m"] == len(GENERATED) - 1
    assert (await command(client, "redline.advanceClock", 600))["recorded"] == 0  # recorded once

    spans = {s.generation_id: s for s in store.spans_for_path("app.py")}
    assert spans[gen.id].range.start_line == 4 and spans[gen.id].state == "edited"
    assert spans["unknown-gen-1"].text == "import sys\n"  # unknown ids are kept, with their text


@pytest.mark.asyncio
async def test_code_kept_as_written_saved_and_clean_becomes_accept(
    client: LanguageClient, repo: Path, store: Store
) -> None:
    kept, broken, edited = (known_generation(repo, store, text) for text in (
        GENERATED, "def bad(:\n    pass\n", "def sub(a, b):\n    return a - b\n"))
    buf = Buffer(client, repo / "kept.py", HUMAN)
    buf.open()
    # answered once the server has loaded the document: an insert that arrives while it loads is checked against
    # the text as it is when loading ends, after the human's edit below, and dropped as not found
    await client.text_document_code_lens_async(types.CodeLensParams(types.TextDocumentIdentifier(buf.uri)))
    for gen, line in ((kept, 4), (broken, 6), (edited, 8)):  # each lands at the end of the file
        buf.edit((line, 0), (line, 0), gen.completion)
        client.protocol.notify("redline/didInsertGeneration", {"generationId": gen.id, "uri": buf.uri,
                                                               "range": rng((line, 0), (line + 2, 0)),
                                                               "text": gen.completion})
    buf.edit((9, 15), (9, 16), "+")  # the human changes the third one
    await buf.save()  # the second one's syntax error is recorded against it
    unsaved = Buffer(client, repo / "unsaved.py", HUMAN)
    unsaved.open()
    later = known_generation(repo, store, "def mul(a, b):\n    return a * b\n")
    unsaved.edit((4, 0), (4, 0), later.completion)
    client.protocol.notify("redline/didInsertGeneration", {"generationId": later.id, "uri": unsaved.uri,
                                                           "range": rng((4, 0), (6, 0)), "text": later.completion})

    assert (await command(client, "redline.advanceClock", 599))["recorded"] == 0  # the last checkpoint is at 10m
    await command(client, "redline.advanceClock", 2)
    assert kinds(store, kept.id) == [("accept", "lsp.kept")]
    (accept,) = store.feedback_for(kept.id)
    assert accept.meta["retained_chars"] == {"30s": len(GENERATED), "2m": len(GENERATED), "10m": len(GENERATED)}
    assert kinds(store, broken.id) == [("diagnostic", "lsp.py_compile")]
    assert kinds(store, edited.id) == [("edit", "lsp.edit")]
    assert kinds(store, later.id) == []  # never saved: never checked
    assert (await command(client, "redline.advanceClock", 600))["recorded"] == 0  # recorded once


@pytest.mark.asyncio
async def test_marked_span_gets_a_reconstructed_fim_prompt(client: LanguageClient, repo: Path, store: Store) -> None:
    buf = Buffer(client, repo / "mod.py", HUMAN + GENERATED + "\nadd(1, 2)\n")
    buf.open()
    result = await command(client, "redline.recordInsert", {"uri": buf.uri, "range": rng((4, 0), (6, 0))})
    gen = store.get_generation(result["generationId"])
    assert gen is not None and gen.prompt_format == "fim" and gen.origin == "lsp"
    assert gen.completion == GENERATED
    assert gen.prompt.prefix == HUMAN and gen.prompt.suffix == "\nadd(1, 2)\n"
    assert [s.range.start_line for s in store.spans_for_path("mod.py")] == [4]


@pytest.mark.asyncio
async def test_review_actions_become_review_accept_reject(client: LanguageClient, repo: Path, store: Store) -> None:
    buf = Buffer(client, repo / "rev.py", HUMAN + GENERATED)
    buf.open()
    gid = (await command(client, "redline.recordInsert", {"uri": buf.uri, "range": rng((4, 0), (6, 0))}))[
        "generationId"]

    found = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(buf.uri), range=types.Range(types.Position(5, 2),
                                                                                types.Position(5, 2)),
        context=types.CodeActionContext(diagnostics=[])))
    assert found is not None
    # (lsprotocol's client-side converter reads any CodeAction carrying a command as a Command: titles only)
    titles = [a.title for a in found]
    assert titles == ["Redline: tell the model what was wrong…", "Redline: Mark good", "Redline: Mark bad"]
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(types.TextDocumentIdentifier(buf.uri)))
    assert lenses is not None and {lens.range.start.line for lens in lenses} == {4}

    target = {"uri": buf.uri, "generationId": gid}
    await command(client, "redline.comment", {**target, "text": "use operator.add, we never hand-roll it"})
    await command(client, "redline.markGood", target)
    await command(client, "redline.markBad", target)
    await command(client, "redline.markGood", target)  # twice: deduplicated
    assert kinds(store, gid) == [("accept", "lsp.review"), ("reject", "lsp.review"), ("review", "lsp.review")]
    review = next(f for f in store.feedback_for(gid) if f.kind == "review")
    assert review.message == "use operator.add, we never hand-roll it" and review.trust == "high"

    with pytest.raises(JsonRpcException, match="needs the user's text"):
        await command(client, "redline.comment", target)


@pytest.mark.asyncio
async def test_forwarded_diagnostics_on_a_saved_buffer(client: LanguageClient, repo: Path, store: Store) -> None:
    buf = Buffer(client, repo / "fwd.py", HUMAN + GENERATED)
    buf.open()
    gid = (await command(client, "redline.recordInsert", {"uri": buf.uri, "range": rng((4, 0), (6, 0))}))[
        "generationId"]
    diagnostic = {"range": rng((5, 11), (5, 16)), "severity": 1, "source": "Pyright", "code": "reportOperatorIssue",
                  "message": 'Operator "+" not supported for types "str" and "int"'}
    outside = {**diagnostic, "range": rng((1, 0), (1, 3)), "message": "unused import"}
    client.protocol.notify("redline/diagnostics", {"uri": buf.uri, "diagnostics": [diagnostic, outside, "junk"]})
    await buf.hints()
    (row,) = store.feedback_for(gid)
    assert (row.kind, row.source, row.rule) == ("diagnostic", "lsp.Pyright", "reportOperatorIssue")


@pytest.mark.asyncio
async def test_reopen_and_checkout_reanchor_by_content(client: LanguageClient, repo: Path, store: Store) -> None:
    buf = Buffer(client, repo / "re.py", HUMAN + GENERATED)
    buf.open()
    gid = (await command(client, "redline.recordInsert", {"uri": buf.uri, "range": rng((4, 0), (6, 0))}))[
        "generationId"]
    await buf.save()
    buf.close()

    # reopened after three lines were added above it outside the editor
    buf = Buffer(client, repo / "re.py", "a = 1\nb = 2\nc = 3\n" + HUMAN + GENERATED)
    buf.open()
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(types.TextDocumentIdentifier(buf.uri)))
    assert lenses and {lens.range.start.line for lens in lenses} == {7}
    assert {lens.command.arguments[0]["generationId"] for lens in lenses if lens.command} == {gid}

    # a checkout rewrites the whole buffer: the span is found again by its text
    buf.replace_all(GENERATED + "\n" + HUMAN)
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(types.TextDocumentIdentifier(buf.uri)))
    assert lenses and {lens.range.start.line for lens in lenses} == {0}


@pytest.mark.asyncio
async def test_deleting_a_generated_span_is_recorded_as_reject(
    client: LanguageClient, repo: Path, store: Store
) -> None:
    buf = Buffer(client, repo / "del.py", HUMAN + GENERATED)
    buf.open()
    gid = (await command(client, "redline.recordInsert", {"uri": buf.uri, "range": rng((4, 0), (6, 0))}))[
        "generationId"]
    buf.edit((4, 0), (6, 0), "")
    await buf.save()
    await command(client, "redline.advanceClock", 601)
    assert kinds(store, gid) == [("reject", "lsp.edit")]


@pytest.mark.asyncio
async def test_status_and_adapter_promotion(client: LanguageClient, repo: Path, store: Store) -> None:
    status = await command(client, "redline.status")
    assert status["adapter"] is None and "queued" in status
    write_adapter(store, AdapterStatus("v2", None, True, (GateFigure("pass@1", 0.61, 0.68, True),)))
    status = await command(client, "redline.status")
    assert status["adapter"] == "v2"
    # window/showMessage is sent before the command's answer, so it has arrived by now
    (message,) = [m.message for m in client.messages if "promoted" in m.message]
    assert "adapter v2 promoted" in message and "pass@1 0.61 → 0.68" in message
