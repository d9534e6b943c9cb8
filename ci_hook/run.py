"""`redline ci run -- CMD…`: run a build or check, pass its output and exit code through untouched, and turn the
`file:line:col: error: message` lines it printed into feedback.

Understood: gcc/clang (`a.c:3:5: error: …  [-Wflag]`), rustc's short format (`src/m.rs:2:5: error[E0425]: …`),
mypy's text (`a.py:12: error: …  [code]`), tsc (`a.ts(12,5): error TS2322: …` and `a.ts:12:5 - error TS2322: …`).
A `note:` line is folded into the diagnostic before it, where it belongs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from redline.attribution import repo_relative
from redline.records import Feedback
from redline.toolformats import diagnostic_lines

#: output kept for parsing per stream; the pass-through itself is never cut
MAX_CAPTURE_BYTES = 16 * 1024 * 1024


@dataclass
class ParsedOutput:
    feedback: list[Feedback] = field(default_factory=list)
    outside_repo: int = 0


def parse_diagnostics(text: str, *, source: str, cwd: Path, repo_root: Path) -> ParsedOutput:
    """Feedback for every diagnostic line in `text` (paths relative to `cwd`; outside the repo: counted, dropped).

    The lines are read by the core's one parser (`redline.toolformats.diagnostic_lines`, shared with the
    language server); only lines that name a severity count, since a build log holds many other `a:1:` lines.
    """
    result = ParsedOutput()
    for d in diagnostic_lines(text, require_severity=True):
        rel = repo_relative(repo_root, cwd / d.path)
        if rel is None:
            result.outside_repo += 1
            continue
        result.feedback.append(Feedback(kind="diagnostic", source=source, message=d.message, detail=d.detail,
                                        path=rel, range=d.range, severity=d.severity, rule=d.code,
                                        meta={"line": d.line}))
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
