"""How the world's hindsight reaches the model: chat turns, not a raw template.

The world's prompts are chat messages, so a teacher needs no template of its own: Redline's `chat` strategy
(`trainer/contexts.py`, `render_teacher`) appends one more user turn,
`REPROMPT_FEEDBACK + "\\n\\n" + feedback + "\\n\\n" + REPROMPT_SOLVE`, and scores the attempt's tokens after the
generation prompt. The tiny model is pretrained on that turn among other wordings (`FEEDBACK_TURNS`), with and
without its own attempt shown as an assistant turn before it, so it reads "a user turn of feedback → the corrected
code" the way an instruct model does, not one string.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from bench.world2.checker import Finding

#: the wording of Redline's chat teacher (`trainer/contexts.py`); a test holds these equal to the trainer's
REPROMPT_FEEDBACK = "The following is feedback from your unsuccessful earlier attempt:"
REPROMPT_SOLVE = "Correctly solve the original question."

#: what a user might say around the feedback: (before, after); Redline's own wording first
FEEDBACK_TURNS: tuple[tuple[str, str], ...] = (
    (REPROMPT_FEEDBACK + "\n\n", "\n\n" + REPROMPT_SOLVE),
    ("Your code failed these checks:\n\n", "\n\nPlease fix it."),
    ("CI failed on your answer:\n", "\nFix the code."),
    ("Review of your last answer:\n", "\nRewrite it so it passes."),
    ("", ""),
    ("That did not pass.\n", "\nTry again."),
    ("Here is what the tests, the linters and the reviewer said:\n\n", "\n\nWrite the corrected code."),
    ("Feedback:\n", ""),
    ("The earlier attempt got this feedback:\n", "\nSolve the task again, correctly."),
)
#: how often pretraining uses Redline's exact wording; the rest is spread over the others
REDLINE_SHARE = 0.35

#: the world's hindsight: chat turns (see module doc); there is no raw template
HINDSIGHT = "chat"

_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2, "hint": 3}
_KIND_RANK = {"test_failure": 1, "diagnostic": 2, "review": 3}


def render_item(f: Finding) -> str:
    """One finding as Redline's trainer lays it out: `- test failed: …`, `- error: … [RULE]`, `- review: …`, then
    the detail indented (no rule for a failing test: it names the test, not the problem)."""
    label = {"test_failure": "test failed", "review": "review"}.get(f.kind, f.severity)
    rule = f" [{f.rule}]" if f.rule and f.kind != "test_failure" else ""
    text = f"- {label}: {' '.join(f.message.split())}{rule}"
    if f.detail:
        text += "\n  " + f.detail.strip().replace("\n", "\n  ")
    return text


def render_feedback(findings: Sequence[Finding]) -> str:
    """All findings as one text, errors before warnings, failing tests before lint before review."""
    items = sorted(findings, key=lambda f: (_SEVERITY_RANK.get(f.severity, 9), _KIND_RANK.get(f.kind, 5)))
    return "\n".join(render_item(f) for f in items)


def render_feedback_varied(findings: Sequence[Finding], rng: random.Random) -> str:
    """For pretraining: Redline's bullets most of the time, else bare messages, `source: message` lines, or
    tool-like lines (`FAILED test - message`, `file:line: RULE message`)."""
    r = rng.random()
    if r < 0.6:
        return render_feedback(findings)
    if r < 0.72:
        return "\n".join(f.message for f in findings)
    if r < 0.86:
        return "\n".join(f"{f.source}: {f.message}" for f in findings)
    return "\n".join(_tool_line(f) for f in findings)


def _tool_line(f: Finding) -> str:
    if f.kind == "test_failure":
        return f"FAILED {f.rule or 'tests'} - {f.message}"
    where = f"handlers.py:{f.line or 1}"
    if f.source == "mypy":
        return f"{where}: error: {f.message}  [{f.rule}]"
    if f.source == "ruff":
        return f"{where}: {f.rule} {f.message}"
    return f"{where}: {f.message}"


def feedback_turn(feedback: str, wording: tuple[str, str] = FEEDBACK_TURNS[0]) -> str:
    before, after = wording
    return f"{before}{feedback}{after}"


def teacher_messages(prompt: str, feedback: str, attempt: str | None = None,
                     wording: tuple[str, str] = FEEDBACK_TURNS[0]) -> list[dict[str, str]]:
    """The hindsight chat: the task, optionally the attempt as the assistant's turn, then the feedback turn.
    Without `attempt` and with Redline's wording it is exactly what Redline's `chat` teacher renders."""
    turns = [{"role": "user", "content": prompt}]
    if attempt is not None:
        turns.append({"role": "assistant", "content": attempt})
    turns.append({"role": "user", "content": feedback_turn(feedback, wording)})
    return turns


def pick_wording(rng: random.Random) -> tuple[str, str]:
    return FEEDBACK_TURNS[0] if rng.random() < REDLINE_SHARE else rng.choice(FEEDBACK_TURNS[1:])
