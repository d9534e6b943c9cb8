"""SFT baselines, selected with `method`: each turns records into (student prompt, target ids) pairs.

- sft-revision: the hindsight teacher's own greedy rewrite (context distillation, Snell et al. 2022), and an
  accepted attempt itself (with `use_passed_anchors`);
- sft-edit: the human's correction, where one exists;
- scalar: k samples from the student per prompt, kept only when `checker` passes them (rejection sampling).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from redline.prompts import encode, student_prompt_ids
from redline.trainer.config import TrainConfig
from redline.trainer.contexts import Pair, build_pair
from redline.trainer.data import TrainingExample
from redline.trainer.errors import TrainError
from redline.trainer.feedback_text import correction_of, is_accepted
from redline.trainer.generation import decode, sample_ids
from redline.trainer.revisions import rewrite_budget, teacher_rewrites

log = logging.getLogger("redline.trainer")

Checker = Callable[[TrainingExample, str], bool]


def sft_pairs(model: Any, tokenizer: Any, examples: Sequence[TrainingExample], config: TrainConfig, *,
              checker: Checker | None = None) -> list[Pair]:
    if config.method == "sft-edit":
        return _edit_pairs(tokenizer, examples, config)
    if config.method == "sft-revision":
        return _revision_pairs(model, tokenizer, examples, config)
    if config.method == "scalar":
        return _scalar_pairs(model, tokenizer, examples, config, checker)
    raise TrainError(f"{config.method!r} is not an SFT baseline", fix="use sft-revision, sft-edit or scalar")


def require_checker(config: TrainConfig, checker: Checker | None) -> Checker | None:
    if config.method == "scalar" and checker is None:
        raise TrainError("method `scalar` needs a checker to tell passing samples from failing ones",
                         fix="pass checker=(example, text) -> bool, or use another method")
    return checker


def _sft_pair(tokenizer: Any, index: int, ex: TrainingExample, target: list[int], config: TrainConfig
              ) -> Pair | None:
    pair = build_pair(tokenizer, index, ex.generation, [], config, target_ids=target)
    if pair is not None:
        pair.teacher_ids = pair.student_ids  # no teacher: plain SFT on the target
    return pair


def _eos(tokenizer: Any, ids: list[int], config: TrainConfig) -> list[int]:
    eos = tokenizer.eos_token_id
    return [*ids, eos] if config.append_eos and eos is not None and (not ids or ids[-1] != eos) else ids


def _edit_pairs(tokenizer: Any, examples: Sequence[TrainingExample], config: TrainConfig) -> list[Pair]:
    pairs = []
    for i, ex in enumerate(examples):
        text = correction_of(ex.feedback)
        if text is None:
            continue
        pair = _sft_pair(tokenizer, i, ex, _eos(tokenizer, encode(tokenizer, text, False), config), config)
        if pair is not None:
            pairs.append(pair)
    if not pairs:
        raise TrainError("no record has a human edit to train on", fix="use --method self-distill")
    return pairs


def _revision_pairs(model: Any, tokenizer: Any, examples: Sequence[TrainingExample], config: TrainConfig
                    ) -> list[Pair]:
    pairs = []
    for i, (ex, revision) in enumerate(zip(examples, teacher_rewrites(model, tokenizer, examples, config),
                                           strict=True)):
        if revision is None:
            # an accepted attempt is its own target: the same anchors self-distillation gets
            if config.use_passed_anchors and is_accepted(ex.feedback):
                pair = build_pair(tokenizer, i, ex.generation, ex.feedback, config)
                if pair is not None:
                    pairs.append(pair)
            continue
        pair = _sft_pair(tokenizer, i, ex, revision, config)
        if pair is not None:
            pairs.append(pair)
    return pairs


def _scalar_pairs(model: Any, tokenizer: Any, examples: Sequence[TrainingExample], config: TrainConfig,
                  checker: Checker | None) -> list[Pair]:
    check = require_checker(config, checker)
    pairs, tried = [], 0
    for i, ex in enumerate(examples):
        prompt = student_prompt_ids(tokenizer, ex.generation)
        budget = rewrite_budget(ex, config, len(prompt))
        for ids in sample_ids(model, tokenizer, prompt, max_new_tokens=budget, greedy=False, n=config.scalar_k,
                              temperature=config.scalar_temperature):
            tried += 1
            if check is not None and check(ex, decode(tokenizer, ids)):
                pair = _sft_pair(tokenizer, i, ex, ids, config)
                if pair is not None:
                    pairs.append(pair)
    log.info("scalar: %d of %d samples passed the checker", len(pairs), tried)
    return pairs
