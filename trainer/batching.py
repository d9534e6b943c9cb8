"""Batches: length-bucketed micro-batch schedules, left-padded collation and completion-only logits.

Rows are left-padded so every completion ends at the last position; the model is then asked for logits of only
the C positions that predict completion tokens (`logits_to_keep` as indices), so the vocabulary projection is
never paid for prompt tokens."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trainer.contexts import Pair


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    position_ids: torch.Tensor  # [B, L]
    completion_ids: torch.Tensor  # [B, C], right-aligned
    completion_mask: torch.Tensor  # [B, C] bool

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


def collate(prompts: Sequence[list[int]], completions: Sequence[list[int]], *, pad_id: int,
            device: torch.device) -> Batch:
    rows = [p + c for p, c in zip(prompts, completions, strict=True)]
    width = max(len(r) for r in rows)
    c_width = max(len(c) for c in completions)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    comp = torch.full((len(rows), c_width), pad_id, dtype=torch.long)
    comp_mask = torch.zeros((len(rows), c_width), dtype=torch.bool)
    for i, (row, c) in enumerate(zip(rows, completions, strict=True)):
        ids[i, width - len(row):] = torch.tensor(row)
        mask[i, width - len(row):] = 1
        comp[i, c_width - len(c):] = torch.tensor(c)
        comp_mask[i, c_width - len(c):] = True
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return Batch(ids.to(device), mask.to(device), positions.to(device), comp.to(device), comp_mask.to(device))


def completion_logits(model: Any, batch: Batch) -> torch.Tensor:
    """Logits [B, C, V] at the positions that predict each completion token."""
    c = batch.completion_ids.shape[1]
    width = batch.input_ids.shape[1]
    keep = torch.arange(width - c - 1, width - 1, device=batch.input_ids.device)  # a contiguous [B, C, V] result
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                logits_to_keep=keep, use_cache=False)
    return out.logits


def schedule(pairs: Sequence[Pair], *, batch_size: int, seed: int, epochs: int, min_micro: int = 0
             ) -> list[list[int]]:
    """Micro-batches of pair indices for `epochs` passes (more if `min_micro` needs them).

    Each epoch shuffles with a seed derived from (seed, epoch), sorts windows of 50 batches by length so a batch
    holds similar lengths (little padding), then shuffles the batches. Deterministic: a resumed run recomputes
    the same schedule and skips what it already did."""
    out: list[list[int]] = []
    epoch = 0
    while epoch < epochs or len(out) < min_micro:
        rng = random.Random(seed * 1_000_003 + epoch)
        order = list(range(len(pairs)))
        rng.shuffle(order)
        window = batch_size * 50
        batches = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start:start + window], key=lambda i: pairs[i].length)
            batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        out += batches
        epoch += 1
    return out


def total_steps(n_micro: int, *, grad_accum: int, max_steps: int | None) -> int:
    steps = math.ceil(n_micro / grad_accum)
    return min(steps, max_steps) if max_steps else steps


def lr_lambda(total: int, warmup: int):
    """Linear warm-up then cosine decay to 10% of the peak learning rate."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
