"""The hindsight format the tiny model is pretrained on, and how a check's findings become feedback text.

A previous attempt, the feedback on it, then the task restated: the model's next tokens are the corrected
attempt. The trainer builds its teacher context with exactly this template (`hindsight="template"`) and scores the
attempt's tokens right after the restated prompt — where the student's own completion starts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from bench.world.checker import Finding

HINDSIGHT_TEMPLATE = (
    "# Previous attempt:\n{prompt}{completion}\n# Feedback on it:\n{feedback}\n# Corrected attempt:\n{prompt}"
)

_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2, "hint": 3}
_KIND_RANK = {"test_failure": 1, "diagnostic": 2, "review": 3}


def render_item(f: Finding) -> str:
    """One finding as a bullet: `- test failed: <message>` / `- error: <message> [RULE]` / `- review: …`."""
    label = {"test_failure": "test failed", "review": "review"}.get(f.kind, f.severity)
    rule = f" [{f.rule}]" if f.rule else ""
    text = f"- {label}: {' '.join(f.message.split())}{rule}"
    if f.detail:
        text += "\n  " + f.detail.strip().replace("\n", "\n  ")
    return text


def render_feedback(findings: Sequence[Finding]) -> str:
    """All findings as one text, errors before warnings, failing tests before lint before review."""
    items = sorted(findings, key=lambda f: (_SEVERITY_RANK.get(f.severity, 9), _KIND_RANK.get(f.kind, 5)))
    return "\n".join(render_item(f) for f in items)


def render_feedback_varied(findings: Sequence[Finding], rng: random.Random) -> str:
    """For pretraining: the bullet form most of the time, plain messages or `source: message` lines otherwise, so
    the model reads feedback however a trainer lays it out."""
    r = rng.random()
    if r < 0.7:
        return render_feedback(findings)
    if r < 0.85:
        return "\n".join(f.message for f in findings)
    return "\n".join(f"{f.source}: {f.message}" for f in findings)


def hindsight_context(prompt: str, attempt: str, feedback: str, template: str = HINDSIGHT_TEMPLATE) -> str:
    return template.format(prompt=prompt, completion=attempt, feedback=feedback)
