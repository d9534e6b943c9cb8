"""JSONL import and export: one generation per line with its feedback list (docs/records.md, "Exchange format").

An import is all or nothing: every line is parsed and validated first, and only then is the whole file written in
one transaction, so a bad line 9,000 leaves the queue exactly as it was. Bundles from remote CI are the same
format, gzip-compressed (`*.jsonl.gz`).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from redline.config import Config
from redline.errors import RecordError
from redline.ledger import record
from redline.queue.protocol import Store
from redline.records import Feedback, Generation

#: longest accepted line; a longer one is almost certainly not a record (and would exhaust memory)
MAX_LINE_BYTES = 16 * 1024 * 1024
#: most bytes read from one file, after decompression (override with REDLINE_IMPORT_MAX_BYTES): counted as read,
#: so `/dev/stdin`, a link to `/dev/zero` or a gzip bomb stops here rather than at MemoryError
MAX_IMPORT_BYTES = 1024 * 1024 * 1024
#: a gzip bundle may expand at most this many times its size (JSON compresses ~5-20x; a bomb 1000x and more)
MAX_GZIP_RATIO = 100
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ImportResult:
    lines: int
    generations: int
    feedback: int
    duplicates: int
    #: records set aside because another process held the queue (merged on its next open)
    spooled: int = 0


def read_records(path: Path) -> Iterator[tuple[int, Generation | None, list[Feedback]]]:
    """Yield (line number, generation, feedback) for each line, raising `RecordError` naming file and line."""
    for lineno, raw in _lines(path):
        if lineno == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]  # as `ci ingest` accepts: Windows editors write one
        if raw.strip():
            yield (lineno, *_parse_line(raw, lineno, path))


_NON_EMPTY = re.compile(rb"[^\n]+")
CHUNK_BYTES = 1 << 20


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each non-empty line, read in chunks: blank lines cost a `count`, not a loop turn,
    so a bundle of a billion newlines stops at the read cap in seconds. Bytes read are capped (`_read_limit`)."""
    limit = _read_limit(path)
    lineno = total = 0  # lineno: newlines before `buf`
    buf = b""
    with _open(path) as stream:
        while True:
            try:
                chunk = stream.read(CHUNK_BYTES)
            except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
                raise RecordError(f"line {lineno + 1}: cannot read ({exc})", fix="re-export the file",
                                  path=path) from None
            total += len(chunk)
            if total > limit:
                raise RecordError(f"more than {limit >> 20} MiB read (line {lineno + 1}); a gzip bomb or an "
                                  "endless stream?", fix="split the file, or raise REDLINE_IMPORT_MAX_BYTES",
                                  path=path)
            buf += chunk
            end = len(buf) if not chunk else buf.rfind(b"\n") + 1  # complete lines only, until the end
            pos = 0
            for m in _NON_EMPTY.finditer(buf, 0, end):
                lineno += buf.count(b"\n", pos, m.start())
                pos = m.start()
                if m.end() - m.start() > MAX_LINE_BYTES:
                    raise RecordError(f"line {lineno + 1} is longer than {MAX_LINE_BYTES >> 20} MB",
                                      fix="split the record or check the file is JSONL", path=path)
                yield lineno + 1, m.group(0)
            lineno += buf.count(b"\n", pos, end)
            buf = buf[end:]
            if len(buf) > MAX_LINE_BYTES:
                raise RecordError(f"line {lineno + 1} is longer than {MAX_LINE_BYTES >> 20} MB",
                                  fix="split the record or check the file is JSONL", path=path)
            if not chunk:
                return


def import_jsonl(store: Store, config: Config, path: str | os.PathLike[str]) -> ImportResult:
    """Validate the whole file, then queue it in one transaction. Re-importing the same file adds nothing."""
    path = Path(path)
    generations: list[Generation] = []
    feedback: list[Feedback] = []
    lines = 0
    seen: dict[str, tuple[int, str]] = {}
    for lineno, gen, fbs in read_records(path):
        lines += 1
        if gen is not None:
            body = json.dumps(gen.to_dict(), sort_keys=True)
            first = seen.setdefault(gen.id, (lineno, body))
            if first[1] != body:
                raise RecordError(f"lines {first[0]} and {lineno} hold different generations with one id "
                                  f"{gen.id}", fix="give each generation its own id", path=path)
            if first[0] != lineno:
                feedback.extend(fb.attributed_to(gen.id) if fb.generation_id is None else fb for fb in fbs)
                continue
            generations.append(gen)
            fbs = [fb.attributed_to(gen.id) if fb.generation_id is None else fb for fb in fbs]
        feedback.extend(fbs)
    try:
        added = record(store, config, generations=generations, feedback=feedback)
    except RecordError as exc:  # refused by the queue's own check: name the file
        raise RecordError(exc.message, fix=exc.fix, path=exc.path or path) from None
    if added.spooled:
        return ImportResult(lines, 0, 0, 0, spooled=len(generations) + len(feedback))
    duplicates = len(generations) - added.generations + len(feedback) - added.feedback
    return ImportResult(lines, added.generations, added.feedback, duplicates)


def export_jsonl(store: Store, out: IO[str]) -> int:
    """Write every generation with its feedback, then unattributed feedback and feedback awaiting its generation,
    one per line; returns lines written."""
    n = 0
    for gen in store.generations():
        line = {"generation": gen.to_dict(), "feedback": [f.to_dict() for f in store.feedback_for(gen.id)]}
        out.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    # feedback on an id whose generation never arrived travels too, still keyed to that id
    awaiting = [fb for gid in store.awaiting() for fb in store.feedback_for(gid)]
    for fb in [*store.feedback(unattributed=True), *awaiting]:
        out.write(json.dumps({"generation": None, "feedback": [fb.to_dict()]}, ensure_ascii=False, sort_keys=True)
                  + "\n")
        n += 1
    return n


def _read_limit(path: Path) -> int:
    try:
        limit = int(os.environ.get("REDLINE_IMPORT_MAX_BYTES", MAX_IMPORT_BYTES))
    except ValueError:
        limit = MAX_IMPORT_BYTES
    if path.name.endswith(".gz"):
        try:
            limit = min(limit, max(16 << 20, path.stat().st_size * MAX_GZIP_RATIO))
        except OSError:
            pass
    return limit


def _open(path: Path) -> IO[bytes]:
    try:
        if path.name.endswith(".gz"):
            return gzip.open(path, "rb")
        return path.open("rb")
    except OSError as exc:
        raise RecordError(f"cannot open ({exc.strerror})", fix="check the path", path=path) from None


def _parse_line(raw: bytes, lineno: int, path: Path) -> tuple[Generation | None, list[Feedback]]:
    where = f"line {lineno}"
    try:
        obj: Any = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RecordError(f"{where}: invalid UTF-8 at byte {exc.start}", fix="re-encode the file as UTF-8",
                          path=path) from None
    except json.JSONDecodeError as exc:
        raise RecordError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})",
                          fix="fix or remove the line (truncated export?)", path=path) from None
    except RecursionError:
        raise RecordError(f"{where}: JSON nested too deeply to read", fix="flatten the record",
                          path=path) from None
    except ValueError as exc:  # an integer past Python's 4,300-digit limit
        raise RecordError(f"{where}: {str(exc).split('; ')[0][:100]}", fix="send numbers within 64 bits",
                          path=path) from None
    if not isinstance(obj, dict) or set(obj) - {"generation", "feedback"}:
        raise RecordError(f'{where}: expected an object with "generation" and "feedback"',
                          fix="see docs/records.md", path=path)
    try:
        gen = None if obj.get("generation") is None else Generation.from_dict(obj["generation"])
        fbs = obj.get("feedback", [])
        if not isinstance(fbs, list):
            raise RecordError('"feedback" must be a list', fix="see docs/records.md")
        feedback = [Feedback.from_dict(f) for f in fbs]
    except RecordError as exc:
        raise RecordError(f"{where}: {exc.message}", fix=exc.fix, path=path) from None
    if gen is None and not feedback:
        raise RecordError(f"{where}: neither a generation nor feedback", fix="remove the line", path=path)
    return gen, feedback
