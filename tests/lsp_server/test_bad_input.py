"""Bad input gets an LSP error or is ignored with a log line; the server never dies and keeps answering."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from redline.queue import Store
from tests.lsp_server.lsp_helpers import Buffer, command, rng

GENERATED = "def add(a, b):\n    return a + b\n"


async def alive(client: LanguageClient) -> None:
    status = await command(client, "redline.status")
    assert "queued" in status


MALFORMED = [
    ([], "expected one argument"),
    (["a string"], "expected an object"),
    ([{"uri": 7, "range": rng((0, 0))}], "uri must be a string"),
    ([{"uri": "file:///nowhere/x.py", "range": rng((0, 0)), "text": "x"}], "not an open document"),
    ([{"uri": "untitled:Untitled-1", "range": rng((0, 0)), "text": "x"}], "not an open document"),
]


@pytest.mark.asyncio
async def test_malformed_requests_and_unknown_uris(client: LanguageClient, repo: Path) -> None:
    for args, match in MALFORMED:
        with pytest.raises(JsonRpcException, match=match):
            await command(client, "redline.recordInsert", *args)
    blob = Buffer(client, repo / "blob.py", "abc\0def\n" + GENERATED)
    blob.open()
    with pytest.raises(JsonRpcException, match="not an open document"):  # binary: not tracked
        await command(client, "redline.recordInsert", {"uri": blob.uri, "range": rng((1, 0), (3, 0))})
    await alive(client)


@pytest.mark.asyncio
async def test_out_of_range_and_wrong_text(client: LanguageClient, repo: Path) -> None:
    buf = Buffer(client, repo / "m.py", "a = 1\n" + GENERATED)
    buf.open()
    cases = [
        ({"range": rng((99, 0)), "text": "x"}, "the document has 3 lines"),
        ({"range": rng((0, -1)), "text": "x"}, "non-negative integers"),
        ({"range": rng((2, 0), (1, 0))}, "ends before it starts"),
        ({"range": rng((0, 0)), "text": "not there at all"}, "not in the document"),
        ({"range": rng((0, 0), (0, 0))}, "the span is empty"),
        ({"range": {"start": "zero"}, "text": "x"}, "position must be"),
    ]
    for params, match in cases:
        with pytest.raises(JsonRpcException, match=match):
            await command(client, "redline.recordInsert", {"uri": buf.uri, **params})
    for name, args in [("redline.noSuchCommand", []), ("redline.advanceClock", [-5]),
                       ("redline.markGood", [{"uri": buf.uri, "generationId": "nope"}])]:
        with pytest.raises(JsonRpcException):
            await command(client, name, *args)
    # raw frames: a request whose params do not match the protocol, and a body that is not JSON at all
    for body in [b'{"jsonrpc": "2.0", "id": "raw-1", "method": "textDocument/codeAction", "params": {"x": 1}}',
                 b'{"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {"textDocument": 5}}',
                 b"{not json"]:
        client.protocol.writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    # positions far outside the document are harmless
    far = types.Range(types.Position(10**6, 10**6), types.Position(10**6 + 1, 0))
    found = await client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(buf.uri), far, types.CodeActionContext(diagnostics=[])))
    assert not found
    # garbage custom notifications and changes to documents never opened are ignored
    client.protocol.notify("redline/didInsertGeneration", "garbage")
    client.protocol.notify("redline/didInsertGeneration", {"uri": buf.uri, "range": rng((50, 0)), "text": "x"})
    client.protocol.notify("redline/diagnostics", [1, 2, 3])
    client.protocol.notify("redline/diagnostics", {"uri": buf.uri, "diagnostics": "nope"})
    Buffer(client, repo / "never-opened.py", "x\n").edit((0, 0), (0, 0), "y")
    await alive(client)


@pytest.mark.asyncio
@pytest.mark.parametrize("client", ["visual-studio-code"], indirect=True)  # sizes, not capabilities, matter here
async def test_large_files(client: LanguageClient, repo: Path, store: Store) -> None:
    # 50,000 lines: tracked like any other file
    big = Buffer(client, repo / "big.py", "".join(f"v{i} = {i}\n" for i in range(50_000)))
    big.open()
    gid = (await command(client, "redline.recordInsert",
                         {"uri": big.uri, "range": rng((25_000, 0)), "text": "v25000 = 25000\n"}))["generationId"]
    big.edit((0, 0), (0, 0), "import os\n")
    big.edit((25_001, 14), (25_001, 14), " +")
    await big.save()
    assert [f.source for f in store.feedback_for(gid)] == ["lsp.py_compile"]

    # a 10 MB single line: ignored (over maxFileBytes), yet typing into it and saving it never stall the server
    huge = Buffer(client, repo / "huge.py", "x = '" + "a" * 10_000_000 + "'\n")
    huge.open()
    started = time.monotonic()
    huge.edit((0, 5), (0, 5), "b")
    client.text_document_did_save(types.DidSaveTextDocumentParams(types.TextDocumentIdentifier(huge.uri)))
    await alive(client)
    assert time.monotonic() - started < 10
    with pytest.raises(JsonRpcException, match="not an open document"):
        await command(client, "redline.recordInsert", {"uri": huge.uri, "range": rng((0, 0), (0, 3))})
