"""ruff `--output-format json`: an array of violations (code, message, filename, location, end_location, fix).

A fix whose edits all sit inside the reported lines is kept in `meta["fix"]` (its applicability says how safe it
is); it is the linter's suggestion, not a human's correction, so it never becomes `edit` feedback.
"""

from __future__ import annotations

from pathlib import Path

from ci_hook.ingest.common import IngestOptions, bad, field_of, line_range, load_json, place
from redline.records import Feedback, Severity


def parse(path: Path, repo_root: Path, opts: IngestOptions | None = None) -> list[Feedback]:
    opts = opts or IngestOptions()
    rows = load_json(path)
    if not isinstance(rows, list):
        raise bad(path, "not a ruff JSON report (expected an array)")
    out = []
    for i, row in enumerate(rows):
        where = f"[{i}]"
        filename = field_of(path, row, "filename", str, where)
        message = field_of(path, row, "message", str, where)
        code = field_of(path, row, "code", str, where, required=False)
        start = field_of(path, row, "location", dict, where)
        end = field_of(path, row, "end_location", dict, where, required=False) or {}
        rel = place(path, repo_root, filename, opts)
        if rel is None:
            continue
        row_no = field_of(path, start, "row", int, f"{where}.location")
        rng = line_range(row_no, end.get("row"), start.get("column"), end.get("column"))
        if rng is None:
            raise bad(path, f"{where}.location.row must be a positive line number")
        meta: dict[str, object] = {"report": path.name}
        fix = row.get("fix")
        if isinstance(fix, dict):
            meta["fix"] = {"applicability": fix.get("applicability"), "message": fix.get("message")}
        out.append(Feedback(kind="diagnostic", source="ruff", message=message, path=rel, range=rng,
                            severity=_severity(row.get("severity"), code), rule=code, commit=opts.commit,
                            meta=meta))
    return out


def _severity(value: object, code: str | None) -> Severity:
    if value in ("error", "warning", "info", "hint"):
        return value  # type: ignore[return-value]
    return "error" if code is None else "warning"  # no code: a syntax error
