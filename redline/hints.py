"""The repository's recurring red lines as a few lines of hints: the fallback that works the same day.

A model that cannot learn from feedback yet (too small, too little data) can still be told the conventions the
queue keeps pointing out. `redline serve` and `redline proxy` put them into the prompt when `serve_hints` is set
(the number of lines; 0 = off), and the learning benchmark uses the same hints as the baseline an adapter must
beat. Hints are read from the scrubbed queue only, most frequent first, one line per rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redline.prompts import comment_block
from redline.records import Feedback, Message, Prompt

HEADER = "Conventions of this repository (from its recurring lint and review feedback):"
#: kinds whose words describe a convention; a failing test's message is about one test, an edit about one place
_KINDS = frozenset({"diagnostic", "review"})
_MAX_CHARS = 200


@dataclass(frozen=True)
class Hint:
    text: str
    #: distinct generations (or places, when unattributed) the red line was drawn on
    count: int


def recurring(feedback: Iterable[Feedback], *, limit: int = 5, min_count: int = 2) -> list[Hint]:
    """The `limit` red lines drawn most often (on at least `min_count` distinct generations), one per rule."""
    seen: dict[str, tuple[str, set[str], int]] = {}
    for order, f in enumerate(feedback):
        if f.kind not in _KINDS or not f.message.strip():
            continue
        head = " ".join(f.message.strip().splitlines()[0].split())
        key = f"{f.source.removeprefix('lsp.')}:{f.rule}" if f.rule else head.lower()
        text = f"{head} [{f.rule}]" if f.rule and f.rule not in head else head
        where = f.generation_id or f"{f.path}:{f.range.start_line if f.range else ''}"
        seen.setdefault(key, (text[:_MAX_CHARS], set(), order))[1].add(where)
    ranked = sorted(seen.values(), key=lambda v: (-len(v[1]), v[2]))
    return [Hint(text, len(places)) for text, places, _ in ranked if len(places) >= min_count][:limit]


def hint_lines(hints: list[Hint]) -> list[str]:
    return [HEADER, *(f"- {h.text}" for h in hints)] if hints else []


def with_hints(prompt_format: str, prompt: Prompt, hints: list[Hint], path: str | None = None) -> Prompt:
    """The prompt with the hints where the model reads them: a system turn for chat (merged into one the prompt
    has), a comment block above the cursor's line for fim and raw prompts (in the file's comment syntax)."""
    lines = hint_lines(hints)
    if not lines:
        return prompt
    if prompt_format == "chat":
        messages = list(prompt.messages or [])
        note = "\n".join(lines)
        if messages and messages[0].role == "system":
            messages[0] = Message("system", f"{messages[0].content}\n\n{note}")
        else:
            messages.insert(0, Message("system", note))
        return Prompt(messages=messages)
    if prompt_format == "fim":
        return Prompt(prefix=comment_block(prompt.prefix or "", lines, path), suffix=prompt.suffix)
    return Prompt(text=comment_block(prompt.text or "", lines, path))
