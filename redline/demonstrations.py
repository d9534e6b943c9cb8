"""What a fix looks like: a linter's own fix applied to the model's lines, kept with the finding.

Self-distillation teaches only what the teacher, shown the hindsight, does better than the student; a finding's
words alone may not be enough for a small model, a correct version usually is (SDPO puts a successful rollout in
its reprompt). Where a checker says how to fix its finding (ruff's `fix.edits`), the fix is applied to the span of
the generation it was attributed to, and the corrected text goes into `Feedback.meta["demonstration"]` for the
teacher. Only when every edit lies inside the span, so nothing outside the model's lines is guessed at.
"""

from __future__ import annotations

from typing import Any

from redline.records import Span

#: edits larger than this are not a demonstration of a small fix
MAX_EDIT_CHARS = 2000


def fix_edits(fix: Any) -> list[dict[str, Any]]:
    """The edits of ruff's `fix` object, checked and trimmed to what applying them needs ([] when unusable)."""
    if not isinstance(fix, dict) or not isinstance(fix.get("edits"), list):
        return []
    out = []
    for edit in fix["edits"]:
        if not isinstance(edit, dict):
            return []
        content, start, end = edit.get("content"), edit.get("location"), edit.get("end_location")
        if not isinstance(content, str) or len(content) > MAX_EDIT_CHARS or not all(
                isinstance(p, dict) and isinstance(p.get("row"), int) and isinstance(p.get("column"), int)
                for p in (start, end)):
            return []
        out.append({"content": content, "location": {"row": start["row"], "column": start["column"]},
                    "end_location": {"row": end["row"], "column": end["column"]}})
    return out


def apply_fix(span: Span, edits: list[dict[str, Any]]) -> str | None:
    """The span's text with `edits` (file rows and columns, 1-based) applied, or None when an edit falls outside
    the span or the edits overlap. The span must start at a line's start (its text is whole file lines)."""
    if not edits or span.range.start_col:
        return None
    lines = span.text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)

    def offset(pos: dict[str, int]) -> int | None:
        line, col = pos["row"] - 1 - span.range.start_line, pos["column"] - 1
        if not 0 <= line < len(lines) or not 0 <= col <= len(lines[line]):
            return None
        return starts[line] + col

    spans = []
    for edit in edits:
        a, b = offset(edit["location"]), offset(edit["end_location"])
        if a is None or b is None or b < a:
            return None
        spans.append((a, b, edit["content"]))
    spans.sort()
    if any(spans[i][1] > spans[i + 1][0] for i in range(len(spans) - 1)):
        return None
    text = span.text
    for a, b, content in reversed(spans):
        text = text[:a] + content + text[b:]
    return text if text != span.text else None
