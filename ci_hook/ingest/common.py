"""What every parser shares: reading a report safely, placing its paths in the repo, and counting what was dropped.

A report is read whole before anything is queued, so a parser either returns every record or raises one
`RecordError` that names the file and the fix; nothing from a bad file is half-written.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redline.attribution import repo_relative
from redline.errors import RecordError
from redline.toolformats import line_range

__all__ = ["IngestOptions", "bad", "field_of", "line_range", "load_json", "load_json_lines", "place", "read_text",
           "traceback_frames"]

#: reports larger than this are refused, counted as bytes are read (override with REDLINE_CI_MAX_BYTES)
MAX_INPUT_BYTES = 50 * 1024 * 1024


@dataclass
class IngestOptions:
    """Settings for one ingest, plus counters a parser fills in for what it skipped and why."""

    trusted_associations: tuple[str, ...] = ("OWNER", "MEMBER", "COLLABORATOR")
    include_untrusted: bool = False
    commit: str | None = None
    outside_repo: int = 0
    untrusted: int = 0
    #: lines of a JSON-lines report that the tool printed as plain text (mypy's `note:` lines), skipped
    text_lines: int = 0
    #: `--recheck CMD`: how the tool that wrote the reports checks one file again (`ci_hook/recheck.py`)
    recheck: str | None = None
    warnings: list[str] = field(default_factory=list)

    def drop_outside(self, report: Path, where: str) -> None:
        self.outside_repo += 1
        if len(self.warnings) < 20:
            self.warnings.append(f"{report}: skipped a result for {where!r}: it is outside the repository")


def max_input_bytes() -> int:
    try:
        return int(os.environ.get("REDLINE_CI_MAX_BYTES", MAX_INPUT_BYTES))
    except ValueError:
        return MAX_INPUT_BYTES


def read_text(path: Path) -> str:
    """The file as UTF-8 text, refusing missing, huge and undecodable files with one-line errors.

    The cap counts bytes as they are read, not the size on disk, so `/dev/stdin`, a FIFO or a link to
    `/dev/zero` stops at the limit instead of reading until memory runs out."""
    limit = max_input_bytes()
    try:
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
    except OSError as exc:
        raise RecordError(f"cannot read the report ({exc.strerror})", fix="check the path", path=path) from None
    if len(data) > limit:
        raise RecordError(f"the report is over the {limit / 2**20:.0f} MiB limit",
                          fix="split it or raise REDLINE_CI_MAX_BYTES", path=path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"the report is not valid UTF-8 (byte {exc.start})",
                          fix="re-run the tool with UTF-8 output", path=path) from None


def load_json(path: Path, text: str | None = None) -> Any:
    text = read_text(path) if text is None else text
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise RecordError(f"the report is not valid JSON ({_short(exc)})", fix="check the file is complete",
                          path=path) from None


def load_json_lines(path: Path, text: str | None = None, *, opts: IngestOptions | None = None) -> list[Any]:
    """One JSON value per line. With `opts`, a line that does not even start like JSON is the tool's own text
    (mypy prints `note:` lines among its JSON with `warn_unused_configs`): skipped, counted, warned once."""
    text = read_text(path) if text is None else text
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if opts is not None and not line.lstrip().startswith(("{", "[")):
            opts.text_lines += 1
            if opts.text_lines == 1 and len(opts.warnings) < 20:
                opts.warnings.append(f"{path}: skipped line {number}, plain text from the tool: {line.strip()[:80]!r}")
            continue
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise RecordError(f"line {number} is not valid JSON ({_short(exc)})", fix="check the file is complete",
                              path=path) from None
    return rows


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def bad(path: Path, what: str, fix: str = "check it was written by the tool named by its format") -> RecordError:
    return RecordError(what, fix=fix, path=path)


def field_of(path: Path, obj: Any, key: str, kind: type | tuple[type, ...], where: str, *,
             required: bool = True) -> Any:
    """`obj[key]` checked for type, raising a one-line error naming the report and the field."""
    if not isinstance(obj, dict):
        raise bad(path, f"{where} must be an object")
    value = obj.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) and kind in (int, (int,)):
        raise bad(path, f"{where}.{key} must be {_name(kind)}")
    if not isinstance(value, kind):
        raise bad(path, f"{where}.{key} must be {_name(kind)}, got {type(value).__name__}")
    return value


def _name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__


def place(report: Path, repo_root: Path, where: str, opts: IngestOptions) -> str | None:
    """`where` as a repo-relative path, or None (counted, with a warning) when it points outside the repo."""
    rel = repo_relative(repo_root, where) if where else None
    if rel is None:
        opts.drop_outside(report, where)
    return rel


_FRAME = re.compile(r"^(?P<path>[^\s:<>][^:\n]*?\.py):(?P<line>\d+): ", re.MULTILINE)


def traceback_frames(text: str) -> list[tuple[str, int]]:
    """(path, 1-based line) of each `path.py:N: Error` location line in a pytest long report, innermost first."""
    return [(m["path"], int(m["line"])) for m in _FRAME.finditer(text)][::-1]
