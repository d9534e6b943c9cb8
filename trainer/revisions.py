"""The hindsight teacher's own rewrite of a failed attempt: its greedy continuation of the teacher context.

Two users. `sft-revision` trains on it as plain SFT (context distillation). Self-distillation (with
`use_revisions`) scores it as a second sequence beside the attempt: the attempt's tokens carry the credit for what
the model actually wrote, but after its first wrong token the teacher reads a prefix it would not have written;
on its own rewrite the teacher stays on its own path, so the student also learns what comes *after* a
correction. The rewrite's ids are spliced after both prompts like any completion; nothing is re-tokenized.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from redline.prompts import encode
from redline.trainer.config import TrainConfig
from redline.trainer.contexts import Pair, Rendering, build_pair, render_teacher
from redline.trainer.data import TrainingExample
from redline.trainer.feedback_text import aggregate
from redline.trainer.generation import greedy_ids
from redline.trainer.progress import count_bar

log = logging.getLogger("redline.trainer")


def writes_rewrites(config: TrainConfig) -> bool:
    """Whether a run has the base model write rewrites before training (`sft-revision` trains on them instead of
    the attempts; self-distillation adds them with `use_revisions`)."""
    return config.method == "sft-revision" or config.use_revisions


def teacher_rewrites(model: Any, tokenizer: Any, examples: Sequence[TrainingExample], config: TrainConfig, *,
                     progress: bool = False) -> list[list[int] | None]:
    """Per example, the ids the model writes greedily from its hindsight context (None without feedback text),
    `batch_size` contexts at a time; with `progress`, a bar (minutes on a 7B model with a long queue)."""
    rendering = Rendering.of(config)
    todo: dict[int, list[int]] = {}
    for i, ex in enumerate(examples):
        feedback = aggregate(ex.feedback, max_chars=config.max_feedback_chars)
        if feedback:
            text, special = render_teacher(tokenizer, ex.generation, feedback, rendering)
            todo[i] = encode(tokenizer, text, special)[-(config.max_length // 2):]
    budgets = [rewrite_budget(examples[i], config, len(p)) for i, p in todo.items()]
    with count_bar("teacher rewrites", progress, len(todo)) as advance:
        written = greedy_ids(model, tokenizer, list(todo.values()), budgets, batch_size=config.batch_size,
                             on_batch=advance)
    out: list[list[int] | None] = [None] * len(examples)
    for i, ids in zip(todo, written, strict=True):
        out[i] = ids
    return out


def rewrite_budget(ex: TrainingExample, config: TrainConfig, prompt_len: int) -> int:
    """New tokens a rewrite or sample may take: `revision_max_new_tokens`, but no more than the recorded attempt
    was allowed (its `sampling.max_new_tokens`) and no more than fits in `max_length`."""
    budget = min(config.revision_max_new_tokens, config.max_length - prompt_len)
    recorded = (ex.generation.sampling or {}).get("max_new_tokens")
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > 0:
        budget = min(budget, recorded)
    return max(1, budget)


def rewrite_pairs(model: Any, tokenizer: Any, examples: Sequence[TrainingExample], pairs: Sequence[Pair],
                  config: TrainConfig, *, progress: bool = False) -> list[Pair]:
    """One more self-distillation pair per failed pair: the same student and teacher prompts, the teacher's
    rewrite as the completion. Call before LoRA is attached: the rewrite is the base model's."""
    failed = [p for p in pairs if not p.anchor]
    rewrites = teacher_rewrites(model, tokenizer, [examples[p.index] for p in failed], config, progress=progress)
    rendering = Rendering.of(config)
    out = []
    for p, ids in zip(failed, rewrites, strict=True):
        ex = examples[p.index]
        if ids and (q := build_pair(tokenizer, p.index, ex.generation, ex.feedback, rendering, target_ids=ids)):
            q.rewrite = True
            out.append(q)
    log.info("self-distillation also scores %d teacher rewrites of failed attempts", len(out))
    return out
