"""Review on generated spans: code actions and code lenses that run Redline's commands, and the feedback each
command becomes.

Every command takes one object argument `{"uri", "generationId"}`; `redline.comment` also needs `"text"` (the
client asks the user for it — LSP has no free-text prompt a server could open), `redline.markBad` may carry it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lsprotocol import types

from redline.lsp_server.spans import TrackedSpan
from redline.records import Feedback

COMMENT = "redline.comment"
MARK_GOOD = "redline.markGood"
MARK_BAD = "redline.markBad"
RECORD_INSERT = "redline.recordInsert"
STATUS = "redline.status"
ADVANCE_CLOCK = "redline.advanceClock"

ALL_COMMANDS = (RECORD_INSERT, COMMENT, MARK_GOOD, MARK_BAD, STATUS, ADVANCE_CLOCK)

_TITLES = (
    (COMMENT, "Redline: tell the model what was wrong…"),
    (MARK_GOOD, "Redline: Mark good"),
    (MARK_BAD, "Redline: Mark bad"),
)


def _lsp_range(span: TrackedSpan) -> types.Range:
    return types.Range(types.Position(*span.start), types.Position(*span.end))


def _commands(uri: str, span: TrackedSpan) -> list[types.Command]:
    arg = {"uri": uri, "generationId": span.generation_id}
    return [types.Command(title=title, command=name, arguments=[arg]) for name, title in _TITLES]


def code_actions(uri: str, spans: Iterable[TrackedSpan], rng: types.Range) -> list[types.CodeAction]:
    """The review actions for every live span the requested range touches."""
    lo, hi = (rng.start.line, rng.start.character), (rng.end.line, rng.end.character)
    actions = []
    for span in spans:
        if span.state == "deleted" or span.end < lo or span.start > hi:
            continue
        for cmd in _commands(uri, span):
            actions.append(types.CodeAction(title=cmd.title, command=cmd))
    return actions


def code_lenses(uri: str, spans: Iterable[TrackedSpan]) -> list[types.CodeLens]:
    lenses = []
    for span in spans:
        if span.state == "deleted":
            continue
        at = types.Range(types.Position(span.start[0], 0), types.Position(span.start[0], 0))
        lenses += [types.CodeLens(range=at, command=cmd) for cmd in _commands(uri, span)]
    return lenses


def review_target(args: Any) -> tuple[str, str, str | None]:
    """(uri, generationId, text) from a review command's arguments; ValueError naming what is wrong."""
    if not isinstance(args, list | tuple) or len(args) != 1 or not isinstance(args[0], Mapping):
        raise ValueError('expected one argument {"uri", "generationId", "text"?}')
    arg = args[0]
    uri, gid, text = arg.get("uri"), arg.get("generationId"), arg.get("text")
    if not isinstance(uri, str) or not isinstance(gid, str) or not gid:
        raise ValueError("uri and generationId must be strings")
    if text is not None and not isinstance(text, str):
        raise ValueError("text must be a string")
    return uri, gid, (text.strip() or None) if text else None


def review_feedback(command: str, span: TrackedSpan, path: str, text: str | None) -> Feedback:
    """`redline.comment` → review, `redline.markGood` → accept, `redline.markBad` → reject."""
    common: dict[str, Any] = {"generation_id": span.generation_id, "path": path, "range": span.line_range(),
                              "trust": "high", "source": "lsp.review", "meta": {"text_now": span.text}}
    if command == COMMENT:
        if not text:
            raise ValueError("redline.comment needs the user's text")
        return Feedback(kind="review", message=text, severity="warning", **common)
    if command == MARK_GOOD:
        return Feedback(kind="accept", message=text or "marked good", severity="info", **common)
    if command == MARK_BAD:
        return Feedback(kind="reject", message=text or "marked bad", severity="warning", **common)
    raise ValueError(f"unknown review command {command}")
