"""Greedy (or sampled) completions from the model, ended where an editor plugin ends a function completion.

A completion ends at the first line that starts at column 0 with anything but whitespace (a dedent: the next `def`,
a decorator, a closing code fence), or at an end-of-text token. Batches are left-padded and sorted by length; a
row leaves the batch (and the KV cache) as soon as it is done, which on a CPU halves the time of a batch whose
rows end at different lengths.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_LOADED: dict[tuple[str, str | None], tuple[Any, Any]] = {}
_DEDENT = re.compile(r"\n(?=\S)")


def function_end(text: str) -> int | None:
    """Where the function's body ends in `text` (the index of the newline before a column-0 line), or None."""
    m = _DEDENT.search(text)
    return m.start() if m else None


def cut(text: str) -> str:
    end = function_end(text)
    return (text if end is None else text[:end]).rstrip()


def load(model_path: str | Path, adapter_dir: str | Path | None = None, *, threads: int | None = None
         ) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode, the adapter (if any) loaded with peft; one cached at a time."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    key = (str(model_path), str(adapter_dir) if adapter_dir else None)
    if key not in _LOADED:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        tokenizer.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        if adapter_dir:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter_dir)
        model.eval()
        _LOADED.clear()
        _LOADED[key] = (model, tokenizer)
    return _LOADED[key]


def stop_ids(tokenizer: Any) -> list[int]:
    """End-of-text ids: the chat end (`<|im_end|>`, SmolLM2's eos) and the document end (`<|endoftext|>`)."""
    vocab = tokenizer.get_vocab()
    ids = {vocab[t] for t in ("<|endoftext|>", "<|im_end|>") if t in vocab}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)


def generate(model: Any, tokenizer: Any, contexts: Sequence[str], *, max_new_tokens: int, batch_size: int = 16,
             temperature: float = 0.0, seed: int = 0) -> list[tuple[str, list[int]]]:
    """(completion text, its token ids) per context, cut at the end of the function."""
    import torch

    torch.manual_seed(seed)
    order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))
    out: dict[int, tuple[str, list[int]]] = {}
    eos = stop_ids(tokenizer)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        enc = tokenizer([contexts[i] for i in rows], return_tensors="pt", padding=True, add_special_tokens=False)
        new = _decode(model, tokenizer, enc["input_ids"], enc["attention_mask"], max_new_tokens, eos, temperature)
        for i, ids in zip(rows, new, strict=True):
            out[i] = _trim(tokenizer, ids, eos)
    return [out[i] for i in range(len(contexts))]


def _decode(model: Any, tokenizer: Any, input_ids: Any, mask: Any, max_new_tokens: int, eos: list[int],
            temperature: float) -> list[list[int]]:
    """Token-by-token decoding with the KV cache, dropping each row from the batch as soon as it is done (an
    end-of-text id, or the function's end), so a long row does not keep finished ones computing."""
    import torch
    from transformers import DynamicCache

    n = input_ids.shape[0]
    ids: list[list[int]] = [[] for _ in range(n)]
    live = list(range(n))
    cache = DynamicCache()
    extra = _forward_kwargs(model, cache)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    step_ids, step_pos = input_ids, positions
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            logits = model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, use_cache=True,
                           **extra).logits[:, -1, :].float()
            if temperature > 0:
                nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1)[:, 0]
            else:
                nxt = logits.argmax(-1)
            keep = []
            for k, (row, token) in enumerate(zip(live, nxt.tolist(), strict=True)):
                ids[row].append(token)
                if token in eos or function_end(tokenizer.decode(ids[row], skip_special_tokens=True)) is not None:
                    continue
                keep.append(k)
            if not keep:
                break
            if len(keep) < len(live):
                index = torch.tensor(keep)
                cache.batch_select_indices(index)
                mask, nxt, step_pos = mask[index], nxt[index], step_pos[index]
                live = [live[k] for k in keep]
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
            step_ids = nxt[:, None]
            step_pos = step_pos[:, -1:] + 1
    return ids


def _forward_kwargs(model: Any, cache: Any) -> dict[str, Any]:
    """The cache under the name this transformers calls it (`cache` in 5.x, `past_key_values` before), and only
    the last position's logits when the model can skip the rest (a 49k vocabulary over a long prompt is most of a
    prefill's memory)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    out: dict[str, Any] = {"cache" if "cache" in params else "past_key_values": cache}
    if "logits_to_keep" in params:
        out["logits_to_keep"] = 1
    return out


def _trim(tokenizer: Any, row: list[int], eos: list[int]) -> tuple[str, list[int]]:
    """The row up to its first end-of-text id, cut at the function's end; the ids whose text lies inside."""
    for k, t in enumerate(row):
        if t in eos:
            row = row[:k]
            break
    text = cut(tokenizer.decode(row, skip_special_tokens=True))
    kept: list[int] = []
    for t in row:
        if len(tokenizer.decode([*kept, t], skip_special_tokens=True)) > len(text):
            break
        kept.append(t)
    return text, kept
