"""Sampling from a (possibly adapted) model from token ids; used by `generate` and the baselines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from redline.trainer.batching import shrinking_batches


@torch.no_grad()
def sample_ids(model: Any, tokenizer: Any, prompt_ids: list[int], *, max_new_tokens: int, greedy: bool = True,
               n: int = 1, temperature: float = 1.0) -> list[list[int]]:
    """`n` continuations of `prompt_ids`, each cut after the first eos (kept) and without padding."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    input_ids = torch.tensor([prompt_ids], device=device)
    kwargs: dict[str, Any] = {"do_sample": not greedy, "max_new_tokens": max_new_tokens,
                              "num_return_sequences": 1 if greedy else n, "pad_token_id": tokenizer.pad_token_id,
                              "eos_token_id": tokenizer.eos_token_id}
    if not greedy:
        kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
    else:
        kwargs.update(temperature=None, top_k=None, top_p=None)
    out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
    if was_training:
        model.train()
    eos = tokenizer.eos_token_id
    result = []
    for row in out[:, len(prompt_ids):].tolist():
        if eos is not None and eos in row:
            row = row[: row.index(eos) + 1]
        result.append(row)
    return result * n if greedy else result  # greedy decoding gives one answer; repeat it n times


def decode(tokenizer: Any, ids: list[int]) -> str:
    eos = tokenizer.eos_token_id
    if eos is not None and ids and ids[-1] == eos:
        ids = ids[:-1]
    return tokenizer.decode(ids, skip_special_tokens=True)


@torch.no_grad()
def greedy_ids(model: Any, tokenizer: Any, prompts: Sequence[list[int]], budgets: Sequence[int], *,
               batch_size: int = 8, on_batch: Callable[[int], None] | None = None) -> list[list[int]]:
    """Greedy continuations of many prompts, each cut at its own budget and after its first eos (kept).

    Prompts of similar length go `batch_size` at a time, left-padded and masked: one pass per token for the whole
    batch instead of one per prompt, which is what makes a rewrite per failed record affordable on a 7B model.
    Greedy decoding is causal, so a row cut at its own budget is what it would get alone (up to float ties).
    `on_batch(n)` is told after each batch how many prompts it finished (a progress bar)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos if eos is not None else 0)
    out: list[list[int]] = [[] for _ in prompts]

    def run(rows: list[int]) -> None:
        width = max(len(prompts[i]) for i in rows)
        ids = torch.tensor([[pad] * (width - len(prompts[i])) + list(prompts[i]) for i in rows], device=device)
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in rows],
                            device=device)
        gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, temperature=None,
                             top_k=None, top_p=None, max_new_tokens=max(budgets[i] for i in rows),
                             pad_token_id=pad, eos_token_id=eos)
        for i, row in zip(rows, gen[:, width:].tolist(), strict=True):
            row = row[:budgets[i]]
            if eos is not None and eos in row:
                row = row[: row.index(eos) + 1]
            out[i] = row

    # the KV cache of long contexts is what runs out: fewer at a time
    shrinking_batches([len(p) for p in prompts], batch_size, run, what="writing a greedy continuation of",
                      fix='set quantize = "4bit" or a lower max_length (for the teacher\'s rewrites: '
                          "use_revisions = false)", on_batch=on_batch)
    if was_training:
        model.train()
    return out
