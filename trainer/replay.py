"""Replay: held-out prompts answered again, greedily, by the model before and after training, and each answer
judged by the evidence that drew the record's red line (`redline.evidence`).

This is behaviour, not a teacher-forced proxy: the gate asks whether the red lines the base drew still come back
on the adapter's own answers, and whether what was accepted still passes; the hindsight probe asks the same of
the base model's retries with the feedback in context. Answers are cut as the served ones were: at the recorded
stop strings and token budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from redline.evidence import Judge, Verdict
from redline.prompts import student_prompt_ids
from redline.trainer.data import TrainingExample
from redline.trainer.generation import decode, greedy_ids

#: new tokens an answer may take when its record does not say how many the model was allowed
DEFAULT_BUDGET = 256


@dataclass(frozen=True)
class Judged:
    """One record's answer and its verdict."""

    example: TrainingExample
    answer: str
    verdict: Verdict


def budget_of(example: TrainingExample, cap: int = DEFAULT_BUDGET) -> int:
    """The recorded attempt's token budget (`max_tokens` / `max_new_tokens`); when none was recorded, twice the
    attempt's length (a fix is rarely longer), within `cap`."""
    g = example.generation
    for key in ("max_tokens", "max_new_tokens"):
        value = (g.sampling or {}).get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return min(value, cap)
    tokens = len(g.token_ids) if g.token_ids else len(g.completion) // 3 + 8
    return min(cap, max(32, 2 * tokens))


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """`text` up to the first of the recorded stop strings (the server stopped there too)."""
    cut = min((i for s in stops if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def answers(model: Any, tokenizer: Any, contexts: Sequence[list[int]], examples: Sequence[TrainingExample], *,
            using: Callable[[], AbstractContextManager[Any]], batch_size: int = 8,
            on_batch: Callable[[int], None] | None = None) -> list[str]:
    """Greedy answers to `contexts` (token ids, one per example) under `using()` (adapter on, off or another),
    each within its example's budget and cut at its stop strings."""
    with using():
        ids = greedy_ids(model, tokenizer, contexts, [budget_of(ex) for ex in examples], batch_size=batch_size,
                         on_batch=on_batch)
    out = []
    for ex, row in zip(examples, ids, strict=True):
        stops = (ex.generation.sampling or {}).get("stop") or []
        out.append(cut_at_stops(decode(tokenizer, row), [s for s in stops if isinstance(s, str)]))
    return out


def student_contexts(tokenizer: Any, examples: Sequence[TrainingExample], max_length: int) -> list[list[int]]:
    """Each record's prompt as the model saw it, cut to leave room for its answer."""
    out = []
    for ex in examples:
        ids = student_prompt_ids(tokenizer, ex.generation)
        out.append(ids[-max(1, max_length - budget_of(ex)):])
    return out


def judge_all(judge: Judge, examples: Sequence[TrainingExample], texts: Sequence[str], *,
              references: Sequence[str | None] | None = None) -> list[Judged]:
    refs = references if references is not None else [None] * len(examples)
    return [Judged(ex, text, judge.verdict(ex.generation, ex.feedback, text, reference=ref))
            for ex, text, ref in zip(examples, texts, refs, strict=True)]
