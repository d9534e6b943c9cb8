"""pytest-reportlog JSONL: one `{"$report_type": ...}` object per line; failed test and collect reports become
feedback, located at their innermost project frame (pytest's serialised `reprtraceback` entries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redline.attribution import repo_relative
from redline.ci_hook.ingest.common import IngestOptions, bad, field_of, load_json_lines
from redline.records import Feedback, Range

REPORT_TYPES = {"SessionStart", "SessionFinish", "TestReport", "CollectReport", "WarningMessage"}


def parse(path: Path, repo_root: Path, opts: IngestOptions | None = None) -> list[Feedback]:
    opts = opts or IngestOptions()
    out = []
    for i, row in enumerate(load_json_lines(path), 1):
        where = f"line {i}"
        kind = field_of(path, row, "$report_type", str, where)
        if kind not in REPORT_TYPES:
            raise bad(path, f"{where}: unknown $report_type {kind!r}")
        if kind not in ("TestReport", "CollectReport") or row.get("outcome") != "failed":
            continue
        nodeid = field_of(path, row, "nodeid", str, where)
        longrepr = row.get("longrepr")
        crash, detail, frames = _longrepr(path, longrepr, where)
        rel, line = _locate(repo_root, frames, row)
        out.append(Feedback(
            kind="test_failure", source="pytest", message=crash or f"{nodeid} failed", detail=detail or None,
            path=rel, range=Range(line, line + 1) if rel and line is not None else None, rule=nodeid,
            commit=opts.commit,
            meta={"when": row.get("when", "collect"), "frames": [list(f) for f in frames], "report": path.name},
        ))
    return out


def _longrepr(report: Path, longrepr: Any, where: str) -> tuple[str, str, list[tuple[str, int]]]:
    """(crash message, long text, frames innermost first) from a serialised longrepr."""
    if longrepr is None:
        return "", "", []
    if isinstance(longrepr, str):
        return longrepr.strip().splitlines()[-1] if longrepr.strip() else "", longrepr, []
    if isinstance(longrepr, list):  # a skip: (path, line, reason)
        return str(longrepr[-1]) if longrepr else "", "", []
    if not isinstance(longrepr, dict):
        raise bad(report, f"{where}: longrepr must be an object, string or array")
    crash = longrepr.get("reprcrash") or {}
    tb = longrepr.get("reprtraceback") or {}
    if not isinstance(crash, dict) or not isinstance(tb, dict):
        raise bad(report, f"{where}: longrepr.reprcrash and reprtraceback must be objects")
    lines: list[str] = []
    frames: list[tuple[str, int]] = []
    for entry in _list(report, tb.get("reprentries"), where):
        data = entry.get("data") if isinstance(entry, dict) else None
        if not isinstance(data, dict):
            raise bad(report, f"{where}: a reprentry has no data object")
        lines.extend(str(x) for x in _list(report, data.get("lines"), where))
        loc = data.get("reprfileloc")
        if isinstance(loc, dict) and isinstance(loc.get("path"), str) and _line_no(loc.get("lineno")):
            lines.append(f"{loc['path']}:{loc['lineno']}: {loc.get('message', '')}")
            frames.append((loc["path"], loc["lineno"]))
        lines.append("")
    for section in _list(report, longrepr.get("sections"), where):
        if isinstance(section, list) and len(section) >= 2:
            lines.extend([f"--- {section[0]} ---", str(section[1])])
    message = crash.get("message")
    return (message if isinstance(message, str) else ""), "\n".join(lines).strip(), frames[::-1]


def _line_no(value: Any) -> bool:
    return type(value) is int and value >= 1


def _list(report: Path, value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad(report, f"{where}: expected an array in longrepr, got {type(value).__name__}")
    return value


def _locate(repo_root: Path, frames: list[tuple[str, int]], row: dict[str, Any]) -> tuple[str | None, int | None]:
    for frame_path, line in frames:
        rel = repo_relative(repo_root, frame_path)
        if rel is not None and (repo_root / rel).is_file():
            return rel, line - 1
    location = row.get("location")
    if isinstance(location, list) and location and isinstance(location[0], str):
        rel = repo_relative(repo_root, location[0])
        lineno = location[1] if len(location) > 1 and type(location[1]) is int and location[1] >= 0 else None
        return rel, lineno
    return None, None
