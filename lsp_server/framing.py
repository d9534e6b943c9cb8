"""LSP base-protocol framing that a bad `Content-Length` cannot break.

pygls's stdio loop reads a header line at a time and then exactly `Content-Length` bytes. A length of 10^12 makes
it allocate until MemoryError; a missing, negative or non-numeric one is ignored, so the body is then read as
headers and every later frame is glued to junk and never matched again: the server hangs. `FramedReader` sits
between stdin and that loop (through `LanguageServer.start_io`'s `stdin` parameter, pygls's public API): it parses
each header block itself, hands pygls only well-formed frames, and after a bad one skips to the next
`Content-Length:` header. If none turns up within `max_skip` bytes it reports end of input with one log line, so
the server exits and the editor restarts it.
"""

from __future__ import annotations

import logging
from typing import BinaryIO

logger = logging.getLogger(__name__)

MARKER = b"Content-Length:"
#: the largest body accepted (a 4 MB document, JSON-escaped, fits many times over)
MAX_BODY = 64 * 1024 * 1024
#: the longest header line; a longer one is junk
MAX_HEADER_LINE = 4096
#: bytes of junk skipped while looking for the next header before giving up
MAX_SKIP = 64 * 1024 * 1024
_CHUNK = 65536


class FramedReader:
    """The `readline` / `read` pair pygls's stdio loop reads from, yielding only valid frames."""

    def __init__(self, stream: BinaryIO, *, max_body: int = MAX_BODY, max_skip: int = MAX_SKIP) -> None:
        self._stream = stream
        self._buf = bytearray()
        self._pending: list[bytes] = []
        self._max_body = max_body
        self._max_skip = max_skip

    # -- what pygls calls ------------------------------------------------------------------------------------------

    def readline(self) -> bytes:
        """The next header line of a valid frame (`Content-Length: N` then the blank line); b"" at the end."""
        if not self._pending:
            length = self._next_frame()
            if length is None:
                return b""
            self._pending = [b"Content-Length: %d\r\n" % length, b"\r\n"]
        return self._pending.pop(0)

    def read(self, n: int) -> bytes:
        """The frame's body. A body that does not end like JSON and holds the next frame's header (the length
        was too long) is cut there, and the rest is read again as the next frame."""
        body = self._take(n)
        if body and not body.rstrip().endswith((b"}", b"]")):
            at = body.find(MARKER, 1)
            if at < 0:  # overran by less than a header: the body ends with the start of one
                at = next((len(body) - k for k in range(len(MARKER) - 1, 0, -1)
                           if len(body) > k and body.endswith(MARKER[:k])), -1)
            if at > 0:
                logger.warning("a frame's Content-Length overran its message by %d bytes; cut at the next header",
                               len(body) - at)
                self._buf[0:0] = body[at:]
                body = body[:at]
        return body

    # -- parsing ---------------------------------------------------------------------------------------------------

    def _next_frame(self) -> int | None:
        """The body length of the next well-formed header block, skipping malformed ones; None at the end."""
        while True:
            length: int | None = None
            problem = None
            seen = False
            while problem is None:
                line = self._line()
                if line is None:
                    return None
                if len(line) > MAX_HEADER_LINE:
                    problem = f"a header line over {MAX_HEADER_LINE} bytes"
                    break
                text = line.strip()
                if not text:
                    if seen:
                        break
                    continue  # stray blank lines between frames
                seen = True
                name, sep, value = text.partition(b":")
                if not sep:
                    problem = f"not a header: {_show(text)}"
                elif name.strip().lower() == b"content-length":
                    number = value.strip()
                    if not number.isdigit():
                        problem = f"Content-Length {_show(number)} is not a positive integer"
                    elif int(number) == 0 or int(number) > self._max_body:
                        problem = f"Content-Length {int(number)} is outside 1..{self._max_body}"
                    else:
                        length = int(number)
                elif name.strip().lower() != b"content-type":
                    problem = f"not an LSP header: {_show(text)}"
            if problem is None and length is None:
                problem = "a header block without Content-Length"
            if problem is None:
                return length
            logger.warning("dropped a malformed message (%s); reading on from the next Content-Length header",
                           problem)
            self._buf[0:0] = (line or b"")[1:]  # the next header may start inside the bad line
            if not self._resync():
                return None

    def _resync(self) -> bool:
        """Drop bytes up to the next `Content-Length:`; False (with one log line) at the end or past `max_skip`."""
        skipped = 0
        while True:
            at = self._buf.find(MARKER)
            cut = at if at >= 0 else max(0, len(self._buf) - (len(MARKER) - 1))  # keep a header's possible start
            skipped += cut
            del self._buf[:cut]
            if skipped > self._max_skip:
                logger.error("no LSP header in the last %d bytes of input; exiting so the editor restarts the server",
                             skipped)
                return False
            if at >= 0:
                return True
            if not self._fill():
                return False

    def _line(self) -> bytes | None:
        """Bytes up to and including the next newline (or MAX_HEADER_LINE + 1 bytes of a line that has none)."""
        while True:
            at = self._buf.find(b"\n", 0, MAX_HEADER_LINE + 1)
            if at >= 0:
                return self._cut(at + 1)
            if len(self._buf) > MAX_HEADER_LINE:
                return self._cut(MAX_HEADER_LINE + 1)
            if not self._fill():
                return self._cut(len(self._buf)) if self._buf else None

    def _take(self, n: int) -> bytes:
        while len(self._buf) < n and self._fill():
            pass
        return self._cut(min(n, len(self._buf)))

    def _cut(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _fill(self) -> bool:
        read1 = getattr(self._stream, "read1", None)
        chunk = read1(_CHUNK) if read1 is not None else self._stream.readline(_CHUNK)
        if not chunk:
            return False
        self._buf += chunk
        return True


def _show(raw: bytes) -> str:
    text = raw[:60].decode("utf-8", "replace")
    return repr(text + ("…" if len(raw) > 60 else ""))
