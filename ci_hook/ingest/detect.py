"""Which format is this report? Sniffed from its first bytes and first record, not trusted from its name."""

from __future__ import annotations

import json
from pathlib import Path

from redline.ci_hook.ingest.common import bad

FORMATS = ("junit", "sarif", "mypy", "ruff", "reportlog", "github")

#: bytes read to decide; enough for the first JSON record of every supported format
SNIFF_BYTES = 64 * 1024


def detect(path: Path) -> str:
    """One of `FORMATS`, or a `RecordError` naming the file and the `--format` fix."""
    try:
        with path.open("rb") as stream:
            head = stream.read(SNIFF_BYTES)
    except OSError as exc:
        raise bad(path, f"cannot read the report ({exc.strerror})", fix="check the path") from None
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").decode("utf-8", "replace")
    if text.startswith("<"):
        return "junit"
    if path.name.endswith(".sarif") or path.name.endswith(".sarif.json"):
        return "sarif"
    if text.startswith("{"):
        first = _first_json_object(text)
        if first is not None:
            if "runs" in first or "$schema" in first:
                return "sarif"
            if "$report_type" in first:
                return "reportlog"
            if {"file", "line", "severity", "message"} <= set(first):
                return "mypy"
        if '"runs"' in text[:4096] or "sarif" in text[:4096]:
            return "sarif"
    if text.startswith("["):
        body = text[1:].lstrip()
        if body.startswith("]"):
            return "ruff"
        if '"diff_hunk"' in text or '"author_association"' in text or '"pull_request_review_id"' in text:
            return "github"
        if '"filename"' in text and '"location"' in text:
            return "ruff"
    raise bad(path, "cannot tell which report format this is",
              fix=f"pass --format ({', '.join(FORMATS)})")


def _first_json_object(text: str) -> dict[str, object] | None:
    line = text.split("\n", 1)[0]
    for candidate in (line, text):
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        return obj if isinstance(obj, dict) else None
    try:
        obj, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None
