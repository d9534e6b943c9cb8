"""Batches: length-bucketed schedules, left-padded collation and completion-only hidden states.

Rows are left-padded so every completion ends at the last position; the decoder's hidden states are gathered at
only the positions that predict a real completion token, and the output head (the vocabulary projection) is
applied to those alone, in chunks (`losses.py`): never for prompt tokens, never for padding."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from redline.trainer.contexts import Pair
from redline.trainer.errors import TrainError


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


def completion_hidden(model: Any, batch: Batch) -> torch.Tensor:
    """Final hidden states [N, H] at the N positions that predict a real completion token, row by row (the
    order of `batch.completion_ids[batch.completion_mask]`). LoRA layers and `disable_adapter` act as usual:
    they live inside the decoder."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    out = base.get_decoder()(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                             position_ids=batch.position_ids, use_cache=False)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    c = batch.completion_ids.shape[1]
    width = hidden.shape[1]
    return hidden[:, width - c - 1:width - 1][batch.completion_mask]


class OutputHead:
    """The model's vocabulary projection, with the logit scaling some architectures apply after it (Gemma's
    soft-cap, Cohere's scale), so hidden states → the same logits the model's own forward returns."""

    def __init__(self, model: Any) -> None:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.linear = base.get_output_embeddings()
        cfg = base.config
        self.softcap = getattr(cfg, "final_logit_softcapping", None)
        self.scale = getattr(cfg, "logit_scale", None)

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.linear(hidden)
        if self.scale:
            logits = logits * self.scale
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


#: defaults that follow the data: small queues get at least MIN_EPOCHS passes and MIN_STEPS optimizer steps
#: (the learning benchmark: 28 steps over 110 records taught nothing, 40+ steps and 3+ epochs did), big ones
#: at most MAX_AUTO_STEPS, so a nightly run stays bounded and does not drift far from the base (SDPO collapses
#: after hundreds of steps)
MIN_STEPS, MIN_EPOCHS, MAX_AUTO_STEPS = 40, 3, 300


def shrinking_batches(lengths: Sequence[int], batch_size: int, run: Callable[[list[int]], None], *, what: str,
                      fix: str, on_batch: Callable[[int], None] | None = None) -> None:
    """`run(indices)` over items of similar length, `batch_size` at a time, shortest first (the passes before
    training: the teacher's rewrites, its cached states). A CUDA out-of-memory error halves the batch and retries
    the same items; at a batch of one it is a TrainError: "out of memory {what} a N-token context". `on_batch(n)`
    is told how many items each batch finished (a progress bar)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    start = 0
    while start < len(order):
        rows = order[start:start + batch_size]
        try:
            run(rows)
            failed = False
        except torch.OutOfMemoryError:
            failed = True
        if failed:  # outside the except block: its traceback no longer holds `run`'s tensors, so they can be freed
            if batch_size == 1:
                raise TrainError(f"out of memory {what} a {lengths[rows[0]]}-token context", fix=fix)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            batch_size //= 2  # fewer at a time, same items
            continue
        start += len(rows)
        if on_batch is not None:
            on_batch(len(rows))


def planned_steps(n_pairs: int, *, batch_size: int, epochs: int | None, max_steps: int | None) -> int:
    """Optimizer steps for a run: `max_steps` when set; else `epochs` passes when set; else follow the data."""
    if max_steps:
        return max_steps
    per_epoch = math.ceil(n_pairs / batch_size)
    if epochs:
        return max(1, per_epoch * epochs)
    return max(1, min(MAX_AUTO_STEPS, max(MIN_STEPS, per_epoch * MIN_EPOCHS)))


def schedule(pairs: Sequence[Pair], *, batch_size: int, seed: int, steps: int) -> list[list[int]]:
    """`steps` optimizer batches of pair indices (as many passes over the data as that takes).

    Each epoch shuffles with a seed derived from (seed, epoch), sorts windows of 50 batches by length so a batch
    holds similar lengths (little padding), then shuffles the batches. Deterministic: a resumed run recomputes
    the same schedule and skips what it already did."""
    out: list[list[int]] = []
    epoch = 0
    while len(out) < steps:
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
    return out[:steps]


def with_rewrites(plan: list[list[int]], pairs: Sequence[Pair], records: int) -> list[list[int]]:
    """Each step's pair indices plus those of the rewrites of the same records (pairs[records:]): a record's
    rewrite rides in the same optimizer step as its attempt."""
    rewrites: dict[int, list[int]] = {}
    for j in range(records, len(pairs)):
        rewrites.setdefault(pairs[j].index, []).append(j)
    return [[*step, *(j for i in step for j in rewrites.get(pairs[i].index, []))] for step in plan]


def micro_batches(indices: Sequence[int], pairs: Sequence[Pair], micro: int) -> list[list[int]]:
    """One optimizer batch split into forward passes of at most `micro` records, similar lengths together."""
    ordered = sorted(indices, key=lambda i: pairs[i].length)
    return [ordered[j:j + micro] for j in range(0, len(ordered), micro)]


def padding_waste(batches: Sequence[Sequence[int]], pairs: Sequence[Pair]) -> float:
    """Share of the token slots in these (micro-)batches that are padding (teacher rows, the longer ones)."""
    slots = real = 0
    for batch in batches:
        lengths = [len(pairs[i].teacher_ids) + len(pairs[i].completion_ids) for i in batch]
        slots += max(lengths) * len(lengths)
        real += sum(lengths)
    return 1 - real / slots if slots else 0.0


def lr_lambda(total: int, warmup: int):
    """Linear warm-up then cosine decay to 10% of the peak learning rate."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
