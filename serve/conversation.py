"""A chat is feedback too: the user's next message after an assistant turn Redline recorded is a review of it.

When a chat request arrives, its history may hold assistant messages that an earlier request through
`redline serve` or `redline proxy` produced. Each such message is found in the queue by its text (the store's
completion index, migration 006), and the user message that follows it becomes `review` feedback on that
generation, so a chat session teaches the adapter the way a review comment does.

Trust rule (kept simple on purpose, documented in docs/export.md): a follow-up is `trust="low"` — "shorter",
"now add a docstring" may be a new request rather than a verdict — unless it reads as a correction, which is
`trust="normal"`. A message reads as a correction when it

- starts with a refusal: "no", "nope", "not", "don't"/"do not", "wrong", "incorrect", "stop", "never", "actually",
  "instead", or "use … instead" appears anywhere;
- says the code fails: "that/it/this (still) fails/failed/breaks/crashes/errors/doesn't work/is wrong",
  "still fails", "doesn't compile";
- or holds an error report: a Python traceback, a line starting with `SomethingError:`/`…Exception:`,
  a compiler/linter line (`error:`, `error[E0308]`, `path.py:3:1: E501 …`) or a pytest `FAILED`/`assert` line.

Idempotent: the feedback's fingerprint is (kind, source, rule, message, generation), so the same history sent
again (every chat request repeats the whole conversation) adds nothing to the queue.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from redline.config import Config
from redline.queue.store import Store
from redline.records import Feedback, Generation

SOURCE = "chat"
RULE_CORRECTION = "chat.correction"
RULE_FOLLOW_UP = "chat.follow-up"

_REFUSAL = re.compile(r"^\W*(no|nope|not|don'?t|do not|wrong|incorrect|stop|never|actually|instead)\b", re.I)
_USE_INSTEAD = re.compile(r"\buse\b.{1,80}?\binstead\b", re.I | re.S)
_FAILS = re.compile(
    r"\b(?:(?:that|it|this|the (?:test|code|build))\s+(?:still\s+)?"
    r"(?:fails|failed|breaks|broke|crashes|crashed|errors|errored|doesn'?t work|does not work|is wrong|"
    r"doesn'?t compile|does not compile)|still (?:fails|failing|broken|crashes|errors))\b",
    re.I,
)
_ERROR_LINE = re.compile(
    r"^\s*(?:Traceback \(most recent call last\)|File \".+\", line \d+|[\w.]*(?:Error|Exception)\b:|"
    r"error(?:\[\w+\])?:|\S+:\d+:\d+: [A-Z]+\d+|FAILED |E\s+assert|E\s+\w+Error)",
    re.M,
)


def is_correction(text: str) -> bool:
    """The documented rule above: does this follow-up say the previous answer was wrong?"""
    return bool(_REFUSAL.search(text) or _USE_INSTEAD.search(text) or _FAILS.search(text)
                or _ERROR_LINE.search(text))


def feedback_from_history(store: Store, config: Config, messages: Iterable[Any]) -> list[Feedback]:
    """`review` feedback for every recorded assistant turn in `messages` that a user message answers.

    `messages` are OpenAI/Ollama chat messages (dicts with `role` and `content`, where content may be a list
    of parts) or `redline.records.Message` objects. Nothing is written: the caller queues the result
    (`store.add(feedback=...)`), and fingerprints make a repeated history a no-op there.
    """
    del config  # the store is per repository already; kept for the caller's uniform signature
    turns = [(_role(m), _text(m)) for m in messages]
    out: list[Feedback] = []
    for i in range(len(turns) - 1):
        (role, text), (next_role, reply) = turns[i], turns[i + 1]
        if role != "assistant" or next_role != "user" or not text.strip() or not reply.strip():
            continue
        generation = _recorded(store, text, turns[:i])
        if generation is None:
            continue
        correction = is_correction(reply)
        out.append(Feedback(kind="review", source=SOURCE, message=reply.strip(), generation_id=generation.id,
                            rule=RULE_CORRECTION if correction else RULE_FOLLOW_UP,
                            trust="normal" if correction else "low",
                            severity="error" if correction else "info"))
    return out


def _recorded(store: Store, text: str, before: list[tuple[str, str]]) -> Generation | None:
    """The generation that wrote `text`: when several wrote the same text, the one whose prompt was exactly
    the conversation before it, else the newest."""
    candidates = store.generations_with_completion(text)
    for g in candidates:
        msgs = g.prompt.messages or []
        if [(m.role, m.content) for m in msgs] == before:
            return g
    return candidates[0] if candidates else None


def _role(message: Any) -> str:
    role = message.get("role") if isinstance(message, Mapping) else getattr(message, "role", None)
    return role if isinstance(role, str) else ""


def _text(message: Any) -> str:
    """A message's text: a string content, or the text parts of an OpenAI content list (images skipped)."""
    content = message.get("content") if isinstance(message, Mapping) else getattr(message, "content", None)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""
