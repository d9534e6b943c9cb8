"""Sampling from a (possibly adapted) model from token ids; used by `generate` and the baselines."""

from __future__ import annotations

from typing import Any

import torch


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
