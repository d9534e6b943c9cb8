"""JSONL import and export: one generation per line with its feedback list (docs/records.md, "Exchange format").

An import is all or nothing: every line is parsed and validated first, and only then is the whole file written in
one transaction, so a bad line 9,000 leaves the queue exactly as it was. Bundles from remote CI are the same
format, gzip-compressed (`*.jsonl.gz`).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from redline.config import Config
from redline.errors import RecordError
from redline.ledger import attribute_feedback, prepare_generation
from redline.queue.store import Store
from redline.records import Feedback, Generation, Span

#: longest accepted line; a longer one is almost certainly not a record (and would exhaust memory)
MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImportResult:
    lines: int
    generations: int
    feedback: int
    duplicates: int


def read_records(path: Path) -> Iterator[tuple[int, Generation | None, list[Feedback]]]:
    """Yield (line number, generation, feedback) for each line, raising `RecordError` naming file and line."""
    with _open(path) as stream:
        lineno = 0
        while True:
            try:
                raw = stream.readline(MAX_LINE_BYTES + 1)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise RecordError(f"line {lineno + 1}: cannot read ({exc})", fix="re-export the file",
                                  path=path) from None
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                raise RecordError(f"line {lineno} is longer than {MAX_LINE_BYTES >> 20} MB",
                                  fix="split the record or check the file is JSONL", path=path)
            if not raw.strip():
                continue
            yield (lineno, *_parse_line(raw, lineno, path))


def import_jsonl(store: Store, config: Config, path: str | os.PathLike[str]) -> ImportResult:
    """Validate the whole file, then queue it in one transaction. Re-importing the same file adds nothing."""
    path = Path(path)
    generations: list[Generation] = []
    spans: list[Span] = []
    feedback: list[Feedback] = []
    lines = 0
    for _, gen, fbs in read_records(path):
        lines += 1
        if gen is not None:
            spans.extend(prepare_generation(config, gen))
            generations.append(gen)
            for fb in fbs:
                if fb.generation_id is None:
                    fb.generation_id = gen.id
                    fb.fingerprint = fb.compute_fingerprint()
        feedback.extend(fbs)
    feedback = attribute_feedback(store, config, feedback)
    added = store.add(generations=generations, feedback=feedback, spans=spans)
    duplicates = len(generations) - added.generations + len(feedback) - added.feedback
    return ImportResult(lines, added.generations, added.feedback, duplicates)


def export_jsonl(store: Store, out: IO[str]) -> int:
    """Write every generation with its feedback, then unattributed feedback one per line; returns lines written."""
    n = 0
    for gen in store.generations():
        line = {"generation": gen.to_dict(), "feedback": [f.to_dict() for f in store.feedback_for(gen.id)]}
        out.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    for fb in store.feedback(unattributed=True):
        out.write(json.dumps({"generation": None, "feedback": [fb.to_dict()]}, ensure_ascii=False, sort_keys=True)
                  + "\n")
        n += 1
    return n


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
