"""GitHub pull-request review comments (REST `GET /repos/{o}/{r}/pulls/{n}/comments`, a JSON array).

A ```suggestion block is a reviewer's concrete correction: it becomes `edit` feedback whose `correction` is the
suggested text for lines `start_line..line`. Other comments become `review` feedback. Comments from authors whose
`author_association` is not trusted are skipped (counted) unless `include_untrusted` is set; then they are kept
with low trust. Comments on the LEFT side refer to the base version, so they keep the path but no lines.
"""

from __future__ import annotations

import re
from pathlib import Path

from redline.ci_hook.ingest.common import IngestOptions, bad, field_of, load_json, place
from redline.records import Feedback, Range

SUGGESTION = re.compile(r"```suggestion[^\n]*\n(?P<body>.*?)^```", re.DOTALL | re.MULTILINE)


def parse(path: Path, repo_root: Path, opts: IngestOptions | None = None) -> list[Feedback]:
    opts = opts or IngestOptions()
    rows = load_json(path)
    if not isinstance(rows, list):
        raise bad(path, "not a list of pull-request review comments (expected a JSON array)")
    out = []
    for i, row in enumerate(rows):
        where = f"[{i}]"
        file = field_of(path, row, "path", str, where)
        body = field_of(path, row, "body", str, where)
        association = field_of(path, row, "author_association", str, where)
        line = field_of(path, row, "line", int, where, required=False)
        start = field_of(path, row, "start_line", int, where, required=False)
        side = row.get("side") or "RIGHT"
        commit = field_of(path, row, "commit_id", str, where, required=False)
        field_of(path, row, "diff_hunk", str, where, required=False)
        trusted = association in opts.trusted_associations
        if not trusted:
            opts.untrusted += 1
            if not opts.include_untrusted:
                continue
        rel = place(path, repo_root, file, opts)
        if rel is None:
            continue
        rng = None
        if side == "RIGHT" and line is not None and line >= 1:
            first = start if start is not None and 1 <= start <= line else line
            rng = Range(first - 1, line)
        user = row.get("user") if isinstance(row.get("user"), dict) else {}
        meta = {"author": user.get("login"), "author_association": association, "side": side,
                "url": row.get("html_url"), "in_reply_to_id": row.get("in_reply_to_id"),
                "diff_hunk": row.get("diff_hunk"), "report": path.name}
        common = dict(source="github-review", path=rel, range=rng, commit=commit or opts.commit,
                      trust="normal" if trusted else "low", meta=meta)
        match = SUGGESTION.search(body)
        if match and rng is not None:
            prose = SUGGESTION.sub("", body).strip()
            out.append(Feedback(kind="edit", message=prose or "suggested change", correction=match["body"],
                                detail=body, **common))  # type: ignore[arg-type]
        else:
            out.append(Feedback(kind="review", message=body.strip()[:4000], **common))  # type: ignore[arg-type]
    return out
