"""The teacher's side of a step.

The teacher is the base model (adapter disabled) in the hindsight context. It is frozen and its contexts are
fixed, so `cache_teacher_hidden` runs it once per sequence before training and keeps its final hidden states at
the completion positions: every later step applies the output head to those instead of running the teacher
again, on every epoch. (A teacher that changes during training, such as the bench's EMA teacher, runs live.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch

from redline.trainer.batching import collate, completion_hidden, shrinking_batches
from redline.trainer.contexts import Pair

log = logging.getLogger("redline.trainer")

#: the cache may take at most this share of the RAM available when training starts
CACHE_RAM_SHARE = 0.25


def cache_bytes(pairs: Sequence[Pair], hidden_size: int, dtype: torch.dtype) -> int:
    return sum(len(p.completion_ids) for p in pairs) * hidden_size * dtype.itemsize


@torch.no_grad()
def cache_teacher_hidden(model: Any, pairs: Sequence[Pair], pad_id: int, *, batch_size: int,
                         on_batch: Callable[[int], None] | None = None) -> bool:
    """Set `pair.teacher_hidden` (CPU, the model's dtype) for every pair: the base model's final hidden states at
    the completion positions of its teacher context. Call before LoRA is attached. Pairs of similar length go
    `batch_size` at a time; out of memory halves the batch. False (nothing cached) when the cache would take more
    than `CACHE_RAM_SHARE` of the available RAM: the loop then runs the teacher every step, as it can."""
    import psutil

    hidden = model.get_output_embeddings().weight
    need = cache_bytes(pairs, hidden.shape[1], hidden.dtype)
    room = int(psutil.virtual_memory().available * CACHE_RAM_SHARE)
    if need > room:
        log.info("teacher runs every step: its cache would take %.1f GiB of RAM, over %.0f%% of what is available",
                 need / 2**30, CACHE_RAM_SHARE * 100)
        return False
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()

    def run(rows: list[int]) -> None:
        batch = collate([pairs[i].teacher_ids for i in rows], [pairs[i].completion_ids for i in rows], pad_id=pad_id,
                        device=device)
        states = completion_hidden(model, batch).to("cpu")
        at = 0
        for i in rows:
            pairs[i].teacher_hidden = states[at:at + len(pairs[i].completion_ids)].clone()
            at += len(pairs[i].completion_ids)

    shrinking_batches([len(p.teacher_ids) + len(p.completion_ids) for p in pairs], batch_size, run,
                      what="in the teacher's pass over", fix='set quantize = "4bit" or a lower max_length',
                      on_batch=on_batch)
    if was_training:
        model.train()
    return True


def cached_hidden(pairs: Sequence[Pair], device: torch.device) -> torch.Tensor | None:
    """The pairs' cached teacher states as one [N, H] tensor in `completion_hidden` order, or None when one of
    them has none (no cache, or a sequence made during training)."""
    if not pairs or any(p.teacher_hidden is None for p in pairs):
        return None
    return torch.cat([p.teacher_hidden for p in pairs]).to(device, non_blocking=True)
