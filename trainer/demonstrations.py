"""A correct version for the teacher's context, where one exists: SDPO's successful rollout in the reprompt.

In order: a human's correction (`edit` feedback, rendered as such), a checker's own fix applied to the attempt
(kept at harvest: `redline.demonstrations`), and a later answer to the same prompt that passed (a sibling: the
model, or the developer retrying, got it right afterwards). The teacher then sees the feedback and what passing
looks like; the student still sees only the prompt. `aggregate` renders `meta["demonstration"]`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from redline.trainer.data import TrainingExample
from redline.trainer.feedback_text import correction_of, is_accepted, is_passed

SIBLING = "a later answer to the same prompt that passed"


def with_demonstrations(examples: Sequence[TrainingExample]) -> list[TrainingExample]:
    """`examples` with a sibling's passing answer attached to each failed record that has no correction and no
    checker's fix: on a copy of its first red line, in memory only (the queue is not changed)."""
    passed: dict[str, list[TrainingExample]] = {}
    for ex in examples:
        if is_accepted(ex.feedback):
            passed.setdefault(ex.generation.prompt.canonical(), []).append(ex)
    if not passed:
        return list(examples)
    out = []
    for ex in examples:
        out.append(ex)
        if is_passed(ex.feedback) or correction_of(ex.feedback) is not None or any(
                "demonstration" in f.meta for f in ex.feedback):
            continue
        later = [p for p in passed.get(ex.generation.prompt.canonical(), ())
                 if p.generation.created_at > ex.generation.created_at
                 and p.generation.completion != ex.generation.completion]
        if not later:
            continue
        first = next(i for i, f in enumerate(ex.feedback) if not is_passed([f]))
        shown = dataclasses.replace(ex.feedback[first], meta={
            **ex.feedback[first].meta, "demonstration": {"source": SIBLING, "text": later[0].generation.completion}})
        out[-1] = TrainingExample(ex.generation, [*ex.feedback[:first], shown, *ex.feedback[first + 1:]])
    return out
