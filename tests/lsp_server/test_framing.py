"""Defect #12.11 (LSP framing): a Content-Length of 10^12 killed the server with MemoryError; a missing, negative,
non-numeric or slightly wrong one left it running but never answering again. Each bad frame is sent over a real
stdio session, and the server must answer the next request; `FramedReader` is also checked on its own."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from pytest_lsp import LanguageClient

from redline.lsp_server.framing import FramedReader
from tests.lsp_server.lsp_helpers import command

BODY = b'{"jsonrpc": "2.0", "method": "redline/diagnostics", "params": {"uri": "file:///nowhere.py"}}'

BAD_FRAMES = {
    "huge": b"Content-Length: 1000000000000\r\n\r\n" + BODY,
    "missing": b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n" + BODY,
    "negative": b"Content-Length: -5\r\n\r\n" + BODY,
    "non-numeric": b"Content-Length: lots\r\n\r\n" + BODY,
    "too short": b"Content-Length: %d\r\n\r\n" % (len(BODY) - 7) + BODY,
    "too long": b"Content-Length: %d\r\n\r\n" % (len(BODY) + 9) + BODY,
    "junk": b"\x00\xff not a header at all\r\n\r\n" + BODY,
}


@pytest.mark.asyncio
@pytest.mark.parametrize("client", ["visual-studio-code"], indirect=True)  # framing, not capabilities, matters
async def test_bad_frames_never_stop_the_server_answering(client: LanguageClient) -> None:
    for name, frame in BAD_FRAMES.items():
        client.protocol.writer.write(frame)
        status = await asyncio.wait_for(command(client, "redline.status"), 20)
        assert "queued" in status, name


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def bodies(reader: FramedReader) -> list[bytes]:
    """What pygls's loop would read: header lines up to the blank one, then the body; until end of input."""
    out = []
    while True:
        header = reader.readline()
        if not header:
            return out
        length = int(header.split(b":")[1])
        assert reader.readline() == b"\r\n"
        out.append(reader.read(length))


def test_reader_resynchronises_on_the_next_header() -> None:
    good = [json.dumps({"jsonrpc": "2.0", "id": i, "method": "m"}).encode() for i in range(3)]
    stream = (frame(good[0]) + b"Content-Length: 99999999999999\r\n\r\n{}" + frame(good[1])
              + b"Content-Length: %d\r\n\r\n" % (len(good[2]) + 4) + good[2] + frame(good[0]))
    # the overlong frame is cut where the next header starts, so its own message is kept too
    assert bodies(FramedReader(io.BytesIO(stream), max_body=1 << 20)) == [good[0], good[1], good[2], good[0]]


def test_reader_gives_up_after_too_much_junk_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    stream = b"Content-Length: x\r\n" + b"y" * 5000 + frame(b"{}")
    with caplog.at_level(logging.WARNING, logger="redline.lsp_server.framing"):
        assert bodies(FramedReader(io.BytesIO(stream), max_skip=1000)) == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "exiting so the editor restarts" in errors[0].getMessage()


def test_header_lines_without_newline_are_bounded() -> None:
    stream = b"C" * 100_000 + frame(b"{}")
    assert bodies(FramedReader(io.BytesIO(stream))) == [b"{}"]
