"""ruff `--output-format json`: an array of violations (code, message, filename, location, end_location, fix).

Rows are read by the core's one ruff parser (`redline.toolformats.ruff_row`, shared with the language server).
A fix is kept in `meta["fix"]` (its applicability says how safe it is); it is the linter's suggestion, not a
human's correction, so it never becomes `edit` feedback.
"""

from __future__ import annotations

from pathlib import Path

from redline.ci_hook.ingest.common import IngestOptions, bad, load_json, place
from redline.records import Feedback
from redline.toolformats import ruff_row


def parse(path: Path, repo_root: Path, opts: IngestOptions | None = None) -> list[Feedback]:
    opts = opts or IngestOptions()
    rows = load_json(path)
    if not isinstance(rows, list):
        raise bad(path, "not a ruff JSON report (expected an array)")
    out = []
    for i, row in enumerate(rows):
        try:
            d = ruff_row(row, f"[{i}]")
        except ValueError as exc:
            raise bad(path, str(exc)) from None
        if not d.path:
            raise bad(path, f"[{i}].filename must be str")
        rel = place(path, repo_root, d.path, opts)
        if rel is None:
            continue
        meta: dict[str, object] = {"report": path.name}
        if d.fix is not None:
            meta["fix"] = d.fix
        out.append(Feedback(kind="diagnostic", source="ruff", message=d.message, path=rel, range=d.range,
                            severity=d.severity, rule=d.code, commit=opts.commit, meta=meta))
    return out
