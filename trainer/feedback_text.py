"""All feedback on one generation, as one hindsight text for the teacher.

Deduplicated (same fingerprint or same words), most informative first: a human edit is the strongest signal,
then by severity (error → hint) and kind (failing test, diagnostic, review, reject). Capped in length; the cap
cuts whole items first so the strongest feedback always survives.
"""

from __future__ import annotations

from collections.abc import Sequence

from redline.records import SEVERITY_RANK, Feedback

_KIND_RANK = {"edit": 0, "test_failure": 1, "diagnostic": 2, "review": 3, "reject": 4}
#: kinds that only say "this was fine"; a generation with nothing else is a passed attempt
POSITIVE_KINDS = frozenset({"accept"})
#: the source of the in-memory item `aggregate` renders a demonstration as
DEMONSTRATION = "redline.demonstration"


def is_passed(feedback: Sequence[Feedback]) -> bool:
    """True when nothing said the attempt was wrong (no feedback, or only accepts)."""
    return all(f.kind in POSITIVE_KINDS for f in feedback)


def is_accepted(feedback: Sequence[Feedback]) -> bool:
    """An explicit accept and nothing against it: a passed record (no feedback at all proves nothing)."""
    return bool(feedback) and is_passed(feedback)


def correction_of(feedback: Sequence[Feedback]) -> str | None:
    """The most recent human edit's final text, if any."""
    edits = [f for f in feedback if f.kind == "edit" and f.correction is not None]
    return edits[-1].correction if edits else None


def render_item(f: Feedback) -> str:
    """One item: `- <label>: <headline> [RULE]`, then the message's further lines and the detail's new lines.

    No file path or line number: the teacher sees the attempt, not the file, so a file location points at nothing
    it can see. No test id either (the plugin keeps it in `rule`): it names the record, not what went wrong. Detail
    lines that repeat the message (pytest's `E   ` lines do) are dropped."""
    if f.kind == "edit":
        return f"The reviewer changed it to:\n{f.correction}"
    if f.source == DEMONSTRATION:  # code, as written: no bullet, no re-indented lines
        return f.message
    head, *more = (f.message or "").strip().split("\n")
    rule = f" [{f.rule}]" if f.rule and f.kind != "test_failure" else ""
    label = {"test_failure": "test failed", "review": "review", "reject": "rejected"}.get(f.kind, f.severity)
    text = f"- {label}: {' '.join(head.split())}{rule}"
    said = {_said(head)}
    lines = [ln.rstrip() for ln in more]
    said.update(_said(ln) for ln in lines)
    detail = (f.detail or "").strip()
    if len(detail) > 400:
        detail = detail[:400] + " …"
    for ln in detail.split("\n"):
        key = _said(ln)
        if key and key not in said:
            said.add(key)
            lines.append(ln.rstrip())
    lines = [ln for ln in lines if ln.strip()]
    if lines:
        text += "\n  " + "\n  ".join(lines)
    return text


def _said(line: str) -> str:
    """A line's words, without pytest's `E` marker, to spot a detail line that repeats the message."""
    words = line.split()
    return " ".join(words[1:] if words[:1] == ["E"] else words)


def aggregate(feedback: Sequence[Feedback], *, max_chars: int = 2000) -> str:
    """One text for all negative feedback; empty when there is none (the record then trains nothing)."""
    seen: set[str] = set()
    items: list[Feedback] = []
    for f in feedback:
        if f.kind in POSITIVE_KINDS:
            continue
        key = " ".join((f.message or f.correction or "").split()).lower()
        if f.fingerprint in seen or (key and key in seen):
            continue
        seen.update({f.fingerprint, key} - {""})
        items.append(f)
    items.sort(key=lambda f: (_KIND_RANK.get(f.kind, 5) != 0, SEVERITY_RANK.get(f.severity, 9),
                              _KIND_RANK.get(f.kind, 5)))
    shown = demonstration_of(items)
    if shown:  # right after the strongest item: what passing looks like outranks the weaker findings
        items.insert(1, Feedback(kind="review", source=DEMONSTRATION, message=shown))
    out: list[str] = []
    used = 0
    for f in items:
        piece = render_item(f)
        if used + len(piece) + 1 > max_chars:
            if not out:  # the strongest item alone is too long: keep its head
                out.append(piece[: max(0, max_chars - 2)] + " …")
            break
        out.append(piece)
        used += len(piece) + 1
    return "\n".join(out)


def demonstration_of(feedback: Sequence[Feedback]) -> str | None:
    """The first demonstration kept with a finding (a checker's own fix, a sibling that passed), as the teacher
    reads it; None when a human's correction is there already (it is the stronger demonstration)."""
    if correction_of(feedback) is not None:
        return None
    for f in feedback:
        demo = f.meta.get("demonstration")
        if isinstance(demo, dict) and isinstance(demo.get("text"), str) and demo["text"].strip():
            return f"A version that passes ({demo.get('source') or 'a demonstration'}):\n{demo['text']}"
    return None


def truncate_text(text: str, max_chars: int) -> str:
    """Cut feedback text to `max_chars`, marking the cut."""
    return text if len(text) <= max_chars else text[: max(0, max_chars - 2)].rstrip() + " …"
