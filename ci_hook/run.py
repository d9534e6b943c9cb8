"""`redline ci run -- CMD…`: run a build or check, pass its output and exit code through untouched, and turn the
`file:line:col: error: message` lines it printed into feedback.

Understood: gcc/clang (`a.c:3:5: error: …  [-Wflag]`), rustc's short format (`src/m.rs:2:5: error[E0425]: …`),
mypy's text (`a.py:12: error: …  [code]`), tsc (`a.ts(12,5): error TS2322: …` and `a.ts:12:5 - error TS2322: …`).
A `note:` line is folded into the diagnostic before it, where it belongs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from redline.attribution import repo_relative
from redline.records import Feedback, Range, Severity

#: output kept for parsing per stream; the pass-through itself is never cut
MAX_CAPTURE_BYTES = 16 * 1024 * 1024

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_COLON = re.compile(
    r"^(?P<path>[^\s:][^:\n]*?):(?P<line>\d+):(?:(?P<col>\d+):)?\s*"
    r"(?P<sev>fatal error|error|warning|note)(?:\[(?P<code>[\w-]+)\])?:\s*(?P<msg>.*)$"
)
_TSC = re.compile(
    r"^(?P<path>[^\s(][^(\n]*?)\((?P<line>\d+),(?P<col>\d+)\):\s*(?P<sev>error|warning)\s+(?P<code>TS\d+):\s*(?P<msg>.*)$"
)
_TSC_PRETTY = re.compile(
    r"^(?P<path>\S+?):(?P<line>\d+):(?P<col>\d+) - (?P<sev>error|warning)\s+(?P<code>TS\d+):\s*(?P<msg>.*)$"
)
_TRAILING_CODE = re.compile(r"\s+\[(?P<code>-?[\w-]+(?:=[\w-]+)?)\]$")
SEVERITIES: dict[str, Severity] = {"fatal error": "error", "error": "error", "warning": "warning", "note": "info"}


@dataclass
class ParsedOutput:
    feedback: list[Feedback] = field(default_factory=list)
    outside_repo: int = 0


def parse_diagnostics(text: str, *, source: str, cwd: Path, repo_root: Path) -> ParsedOutput:
    """Feedback for every diagnostic line in `text` (paths relative to `cwd`; outside the repo: counted, dropped)."""
    result = ParsedOutput()
    last: Feedback | None = None
    for raw in text.splitlines():
        line = _ANSI.sub("", raw).rstrip()
        m = _TSC.match(line) or _TSC_PRETTY.match(line) or _COLON.match(line)
        if m is None:
            continue
        severity = m["sev"]
        if severity == "note" and last is not None:
            last.detail = f"{last.detail}\n{line}" if last.detail else line
            continue
        rel = repo_relative(repo_root, cwd / m["path"])
        if rel is None:
            result.outside_repo += 1
            last = None
            continue
        message, code = m["msg"], m["code"]
        trailing = _TRAILING_CODE.search(message)
        if trailing and code is None:
            code = trailing["code"]
            message = message[: trailing.start()]
        row = int(m["line"]) - 1
        col = int(m["col"]) - 1 if m["col"] else 0
        last = Feedback(kind="diagnostic", source=source, message=message.strip(), path=rel,
                        range=Range(row, row + 1, max(col, 0), 0), severity=SEVERITIES[severity], rule=code,
                        meta={"line": line})
        result.feedback.append(last)
    return result


def source_for(cmd: Sequence[str]) -> str:
    """A short source name for a command line: `python -m mypy x` → mypy, `npx tsc` → tsc, `cargo build` → cargo."""
    words = [os.path.basename(w) for w in cmd if not w.startswith("-")]
    if words and words[0] in ("npx", "uv", "poetry", "pipx") and len(words) > 1:
        words = words[1:] if words[0] != "uv" else words[2:] or words
    if words and words[0].startswith("python") and "-m" in cmd:
        return cmd[cmd.index("-m") + 1] if cmd.index("-m") + 1 < len(cmd) else words[0]
    return words[0] if words else "ci-run"


def run_passthrough(cmd: Sequence[str], *, cwd: Path | None = None) -> tuple[int, str]:
    """Run `cmd`, copying its stdout and stderr to ours byte for byte as they arrive; returns (exit code, output).

    The returned text (both streams, for parsing) is cut at `MAX_CAPTURE_BYTES` per stream.
    """
    try:
        proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    except FileNotFoundError:
        sys.stderr.write(f"redline: command not found: {cmd[0]}\n")
        return 127, ""
    except PermissionError:
        sys.stderr.write(f"redline: permission denied: {cmd[0]}\n")
        return 126, ""
    captured: dict[str, bytearray] = {"out": bytearray(), "err": bytearray()}
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout.buffer, captured["out"]), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr.buffer, captured["err"]), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # the child got the same SIGINT; let it finish and report its own code
        code = proc.wait()
    for pump in pumps:
        pump.join()
    text = (captured["out"] + b"\n" + captured["err"]).decode("utf-8", "replace")
    return code, text


def _pump(src: BinaryIO, dst: BinaryIO, keep: bytearray) -> None:
    fd = src.fileno()
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        try:
            dst.write(chunk)
            dst.flush()
        except (OSError, ValueError):
            pass
        if len(keep) < MAX_CAPTURE_BYTES:
            keep.extend(chunk[: MAX_CAPTURE_BYTES - len(keep)])
    src.close()
