"""mypy `--output json`: one JSON object per line (file, line, column, message, hint, code, severity).

mypy also prints plain lines among them (`setup.cfg: note: unused section(s): …` with `warn_unused_configs`):
those are skipped and counted (`IngestOptions.text_lines`), not fatal.
"""

from __future__ import annotations

from pathlib import Path

from redline.ci_hook.ingest.common import IngestOptions, bad, field_of, line_range, load_json_lines, place
from redline.records import Feedback, Severity

SEVERITIES: dict[str, Severity] = {"error": "error", "warning": "warning", "note": "info"}


def parse(path: Path, repo_root: Path, opts: IngestOptions | None = None) -> list[Feedback]:
    opts = opts or IngestOptions()
    out = []
    for i, row in enumerate(load_json_lines(path, opts=opts), 1):
        where = f"line {i}"
        file = field_of(path, row, "file", str, where)
        line = field_of(path, row, "line", int, where)
        column = field_of(path, row, "column", int, where, required=False)
        message = field_of(path, row, "message", str, where)
        hint = field_of(path, row, "hint", str, where, required=False)
        code = field_of(path, row, "code", str, where, required=False)
        severity = field_of(path, row, "severity", str, where)
        if severity not in SEVERITIES:
            raise bad(path, f"{where}: severity {severity!r} is not error, warning or note")
        rel = place(path, repo_root, file, opts)
        if rel is None:
            continue
        end_line = row.get("end_line") if isinstance(row.get("end_line"), int) else None
        end_column = row.get("end_column") if isinstance(row.get("end_column"), int) else None
        # mypy's JSON columns are 0-based (end exclusive); -1 means "no column"
        col = column + 1 if isinstance(column, int) and column >= 0 else None
        end_col = end_column + 1 if col is not None and end_column is not None and end_column >= 0 else None
        out.append(Feedback(kind="diagnostic", source="mypy", message=message, detail=hint, path=rel,
                            range=line_range(line, end_line, col, end_col), severity=SEVERITIES[severity], rule=code,
                            commit=opts.commit, meta={"report": path.name}))
    return out
