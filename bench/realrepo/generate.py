"""Greedy (or sampled) completions from the model, ended where an editor plugin ends a function completion.

A completion ends at the first line that starts at column 0 with anything but whitespace (a dedent: the next `def`,
a decorator, a closing code fence), or at an end-of-text token. Batches are left-padded and sorted by length;
each row stops on its own.
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
    from transformers import StoppingCriteria, StoppingCriteriaList

    class EndOfFunction(StoppingCriteria):
        def __init__(self, start: int) -> None:
            self.start = start

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            texts = tokenizer.batch_decode(input_ids[:, self.start:], skip_special_tokens=True)
            return torch.tensor([function_end(t) is not None for t in texts], device=input_ids.device)

    torch.manual_seed(seed)
    order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))
    out: dict[int, tuple[str, list[int]]] = {}
    eos = stop_ids(tokenizer)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        enc = tokenizer([contexts[i] for i in rows], return_tensors="pt", padding=True, add_special_tokens=False)
        width = enc["input_ids"].shape[1]
        sampling = ({"do_sample": True, "temperature": temperature, "top_k": 0} if temperature > 0
                    else {"do_sample": False})
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=eos, stopping_criteria=StoppingCriteriaList([EndOfFunction(width)]),
                                 **sampling)
        for i, row in zip(rows, ids[:, width:].tolist(), strict=True):
            out[i] = _trim(tokenizer, row, eos)
    return [out[i] for i in range(len(contexts))]


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
