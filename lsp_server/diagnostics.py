"""Diagnostics: run checkers on a saved file, read what other language servers published, and turn the findings
that fall on generated spans into diagnostic feedback.

`run_checkers` blocks (it runs subprocesses with a timeout) and is meant for a worker thread; everything else is
a pure function. Checkers per language: the built-ins (Python: `py_compile` in a subprocess, and `ruff` when it
is installed) plus the repo config's `checkers.<languageId>` commands, whose output is read as the usual
`path:line[:col]: [severity:] message` lines (gcc, mypy, flake8, ruff concise, eslint unix, go vet, ...).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redline.lsp_server.spans import TrackedSpan, overlapping
from redline.records import Feedback, Range
from redline.toolformats import ToolDiagnostic, diagnostic_lines, ruff_row

logger = logging.getLogger(__name__)

LANGUAGE_BY_SUFFIX = {".py": "python", ".pyi": "python"}

_PY_COMPILE = """
import json, sys
path = sys.argv[1]
try:
    with open(path, "rb") as f:
        compile(f.read(), path, "exec", dont_inherit=True)
except SyntaxError as e:
    print(json.dumps({"msg": e.msg, "lineno": e.lineno, "offset": e.offset,
                      "end_lineno": getattr(e, "end_lineno", None), "end_offset": getattr(e, "end_offset", None)}))
except ValueError as e:
    print(json.dumps({"msg": str(e), "lineno": 1, "offset": 1}))
"""

_LSP_SEVERITY = {1: "error", 2: "warning", 3: "info", 4: "hint"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem at a place in a file: 0-based lines and characters, end exclusive."""

    source: str
    message: str
    start_line: int
    start_col: int = 0
    end_line: int | None = None
    end_col: int = 0
    severity: str = "error"
    rule: str | None = None

    @property
    def last_line(self) -> int:
        if self.end_line is None:
            return self.start_line
        if self.end_col == 0 and self.end_line > self.start_line:
            return self.end_line - 1
        return self.end_line

    def range(self) -> Range:
        end_line = self.start_line if self.end_line is None else self.end_line
        end_col = self.end_col if self.end_line is not None else self.start_col
        return Range(self.start_line, end_line, self.start_col, end_col)


def language_for(language_id: str | None, path: str) -> str:
    return language_id or LANGUAGE_BY_SUFFIX.get(Path(path).suffix, "")


def ruff_command() -> str | None:
    """Ruff beside this interpreter (a venv without PATH set up), else on PATH."""
    beside = Path(sys.executable).with_name("ruff")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("ruff")


def run_checkers(
    path: Path,
    language: str,
    *,
    cwd: Path,
    configured: dict[str, list[list[str]]],
    builtin: bool,
    timeout: float,
) -> list[Finding]:
    """Run every checker for `language` on the file at `path`; a checker that fails or times out is skipped."""
    findings: list[Finding] = []
    if builtin and language == "python":
        compiled = _run("py_compile", [sys.executable, "-I", "-c", _PY_COMPILE, str(path)], cwd, timeout)
        findings += parse_py_compile(compiled)
        ruff = ruff_command()
        if ruff:
            out = _run("ruff", [ruff, "check", "--output-format", "json", "--no-cache", "--exit-zero",
                                "--no-fix", str(path)], cwd, timeout)
            syntax = parse_py_compile(compiled)
            findings += [f for f in parse_ruff_json(out) if not (syntax and f.rule in (None, "invalid-syntax"))]
    for argv in configured.get(language, []):
        if not argv or not all(isinstance(a, str) for a in argv):
            logger.warning("checker for %s is not a list of strings: %r", language, argv)
            continue
        command = [a.replace("{path}", str(path)) for a in argv]
        findings += parse_lines(_run(Path(argv[0]).name, command, cwd, timeout), Path(argv[0]).name, path)
    return findings


def _run(name: str, argv: Sequence[str], cwd: Path, timeout: float) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        logger.warning("checker %s timed out after %.0f s; its findings are dropped", name, timeout)
        return ""
    except OSError as exc:
        logger.warning("checker %s could not run: %s", name, exc)
        return ""
    return done.stdout + ("\n" + done.stderr if name != "ruff" and name != "py_compile" else "")


def parse_py_compile(out: str) -> list[Finding]:
    for line in out.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("lineno"), int):
            continue
        start = max(data["lineno"] - 1, 0)
        col = max((data.get("offset") or 1) - 1, 0)
        end_line = data.get("end_lineno")
        end_col = data.get("end_offset")
        if isinstance(end_line, int) and isinstance(end_col, int) and (end_line - 1, end_col - 1) > (start, col):
            return [Finding("py_compile", str(data.get("msg")), start, col, end_line - 1, end_col - 1, "error",
                            "SyntaxError")]
        return [Finding("py_compile", str(data.get("msg")), start, col, severity="error", rule="SyntaxError")]
    return []


def parse_ruff_json(out: str) -> list[Finding]:
    """ruff's JSON output, read by the core's one ruff parser; rows not of ruff's shape are skipped."""
    try:
        items = json.loads(out) if out.strip() else []
    except ValueError:
        logger.warning("ruff printed something that is not JSON; ignored")
        return []
    findings = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        try:
            d = ruff_row(item, f"[{i}]")
        except ValueError:
            continue
        findings.append(_finding("ruff", d))
    return findings


def parse_lines(out: str, source: str, path: Path) -> list[Finding]:
    """`path:line[:col]: [severity:] message` lines about `path` (matched by name; other files are skipped), read
    by the core's one line parser (`redline.toolformats`), so a checker reads the same here and in CI."""
    return [_finding(source, d) for d in diagnostic_lines(out, require_severity=False)
            if Path(d.path).name == path.name]


def _finding(source: str, d: ToolDiagnostic) -> Finding:
    r = d.range
    if r.end_col == 0 and r.end_line == r.start_line + 1:  # a line and a column: a point
        return Finding(source, d.message, r.start_line, r.start_col, severity=d.severity, rule=d.code)
    return Finding(source, d.message, r.start_line, r.start_col, r.end_line, r.end_col, d.severity, d.code)


def findings_from_lsp(diagnostics: Any, default_source: str) -> list[Finding]:
    """Diagnostics another language server published (forwarded by the client); malformed ones are skipped."""
    findings = []
    for d in diagnostics if isinstance(diagnostics, list) else []:
        try:
            start, end = d["range"]["start"], d["range"]["end"]
            nums = [start["line"], start["character"], end["line"], end["character"]]
            if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**31 for n in nums):
                continue
            message = d["message"]
            if not isinstance(message, str) or not message.strip():
                continue
            source = d.get("source") or default_source
            if source == "redline":
                continue
            code = d.get("code")
            findings.append(Finding(str(source)[:100], message[:2000], nums[0], nums[1], nums[2], nums[3],
                                    _LSP_SEVERITY.get(d.get("severity") or 1, "error"),
                                    None if code is None else str(code)[:200]))
        except (KeyError, TypeError):
            continue
    return findings


def diagnostic_feedback(findings: Iterable[Finding], spans: Sequence[TrackedSpan], path: str) -> list[Feedback]:
    """One diagnostic feedback per finding that falls on a generated span (the innermost span wins), keyed by
    its line within the span, as CI keys it, so two call sites are two records and CI adds no third.

    Findings elsewhere are the human's code and are not recorded.
    """
    out = []
    for f in findings:
        hits = overlapping(spans, f.start_line, f.last_line)
        if not hits:
            continue
        out.append(Feedback(kind="diagnostic", source=f"lsp.{f.source}", message=f.message, rule=f.rule,
                            severity=f.severity,  # type: ignore[arg-type]
                            generation_id=hits[0].generation_id, path=path, range=f.range(),
                            meta={"attribution": "lsp-span",
                                  "span_line": max(f.start_line - hits[0].start[0], 0)}))
    return out
