"""Checker output formats, parsed once for every harvester: the language server and CI read a checker the same
way, so the same finding becomes the same feedback in the editor and in CI.

* `path:line[:col]: severity: message` lines: gcc/clang (`[-Wflag]`), rustc's short format (`error[E0425]`),
  mypy's text (`  [code]`), flake8/eslint-unix (no severity), tsc (`a.ts(12,5): error TS2322: …` and
  `a.ts:12:5 - error TS2322: …`). A `note:` line is folded into the diagnostic before it, where it belongs.
* ruff's `--output-format json` rows.

Positions come out as `Range` (0-based, end exclusive, as LSP); paths exactly as the tool printed them (each
side places them: CI in the repository, the editor by file name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from redline.demonstrations import fix_edits
from redline.records import Range, Severity

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_COLON = re.compile(
    r"^(?P<path>[^\s:][^:\n]*?):(?P<line>\d+):(?:(?P<col>\d+):)?\s*"
    r"(?:(?P<sev>fatal error|error|warning|note|info|hint)(?:\[(?P<code>[\w-]+)\])?\s*:\s*)?(?P<msg>\S.*)$",
    re.IGNORECASE,
)
_TSC = re.compile(
    r"^(?P<path>[^\s(][^(\n]*?)\((?P<line>\d+),(?P<col>\d+)\):\s*(?P<sev>error|warning)\s+(?P<code>TS\d+):\s*(?P<msg>.*)$"
)
_TSC_PRETTY = re.compile(
    r"^(?P<path>\S+?):(?P<line>\d+):(?P<col>\d+) - (?P<sev>error|warning)\s+(?P<code>TS\d+):\s*(?P<msg>.*)$"
)
_TRAILING_CODE = re.compile(r"\s+\[(?P<code>-?[\w-]+(?:=[\w-]+)?)\]$")
SEVERITIES: dict[str, Severity] = {"fatal error": "error", "error": "error", "warning": "warning", "note": "info",
                                   "info": "info", "hint": "hint"}
_SYNTAX_CODES = (None, "invalid-syntax")


@dataclass(slots=True)
class ToolDiagnostic:
    """One finding as a checker reported it."""

    path: str
    range: Range
    severity: Severity
    message: str
    code: str | None = None
    #: folded `note:` lines
    detail: str | None = None
    #: the line as printed (line formats), for the record's meta
    line: str = ""
    #: ruff's fix suggestion: applicability, message and (when usable) its edits
    fix: dict[str, Any] | None = None


def diagnostic_lines(text: str, *, require_severity: bool = True) -> list[ToolDiagnostic]:
    """Every diagnostic line in `text`. `require_severity=False` also takes `path:line:col: message` lines
    (flake8, eslint-unix): right for a configured checker, too loose for a whole build log."""
    found: list[ToolDiagnostic] = []
    last: ToolDiagnostic | None = None
    for raw in text.splitlines():
        line = _ANSI.sub("", raw).strip()
        m = _TSC.match(line) or _TSC_PRETTY.match(line) or _COLON.match(line)
        if m is None or (require_severity and not m["sev"]):
            continue
        severity = (m["sev"] or "error").lower()
        if severity == "note" and last is not None:
            last.detail = f"{last.detail}\n{line}" if last.detail else line
            continue
        message, code = m["msg"], m["code"]
        trailing = _TRAILING_CODE.search(message)
        if trailing and code is None:
            code = trailing["code"]
            message = message[: trailing.start()]
        row = int(m["line"]) - 1
        col = max(int(m["col"]) - 1, 0) if m["col"] else 0
        last = ToolDiagnostic(m["path"], Range(max(row, 0), max(row, 0) + 1, col, 0), SEVERITIES[severity],
                              message.strip(), code, line=line)
        found.append(last)
    return found


def line_range(line: object, end_line: object = None, col: object = None, end_col: object = None) -> Range | None:
    """A `Range` from 1-based lines and 1-based columns (the convention of every report format read here).

    Values that are not positive integers are ignored (a missing line gives no range at all).
    """
    line, end_line, col, end_col = (_positive(v) for v in (line, end_line, col, end_col))
    if line is None:
        return None
    if end_line is None or end_line < line:
        end_line = line
    start_col = col - 1 if col is not None else 0
    if end_col is not None and col is not None and (end_line > line or end_col > col):
        return Range(line - 1, end_line - 1, start_col, end_col - 1)
    return Range(line - 1, end_line, start_col, 0)


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def ruff_row(row: Any, where: str) -> ToolDiagnostic:
    """One row of ruff's JSON output (`path` is "" when the row names no file). Raises `ValueError` naming the
    field when the row is not ruff's shape: CI turns that into an error naming the report, the editor skips it."""
    if not isinstance(row, dict):
        raise ValueError(f"{where} must be an object")
    filename, message, code = row.get("filename"), row.get("message"), row.get("code")
    start, end = row.get("location"), row.get("end_location") or {}
    if filename is not None and not isinstance(filename, str):
        raise ValueError(f"{where}.filename must be str")
    if not isinstance(message, str):
        raise ValueError(f"{where}.message must be str")
    if code is not None and not isinstance(code, str):
        raise ValueError(f"{where}.code must be str")
    if not isinstance(start, dict) or not isinstance(end, dict):
        raise ValueError(f"{where}.location must be an object")
    rng = line_range(start.get("row"), end.get("row"), start.get("column"), end.get("column"))
    if rng is None:
        raise ValueError(f"{where}.location.row must be a positive line number")
    given = row.get("severity")
    severity: Severity = SEVERITIES[given] if isinstance(given, str) and given in SEVERITIES else \
        "error" if code in _SYNTAX_CODES else "warning"  # no code: a syntax error
    fix = row.get("fix")
    fix_meta = {"applicability": fix.get("applicability"), "message": fix.get("message")} \
        if isinstance(fix, dict) else None
    if fix_meta is not None and (edits := fix_edits(fix)):
        fix_meta["edits"] = edits
    return ToolDiagnostic(filename or "", rng, severity, message, code, fix=fix_meta)
