"""What the gate also reports but does not decide on: teacher-forced figures, read off the model's probabilities on
fixed texts, not off its answers. They move with any change of confidence, even when every greedy answer stays
the same, so they are shown for diagnosis (and the perplexity on the team's own code is kept as a guard).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch

from redline.prompts import encode
from redline.trainer.batching import OutputHead, collate, completion_hidden
from redline.trainer.contexts import Pair, Rendering
from redline.trainer.data import TrainingExample
from redline.trainer.losses import CHUNK, divergence, token_logprobs


def completion_ids_of(tok: Any, ex: TrainingExample, rendering: Rendering, fp: str) -> list[int]:
    """The accepted completion's ids exactly as training splices them (the recorded ids when they match)."""
    from redline.trainer.contexts import completion_ids

    return completion_ids(tok, ex.generation, fingerprint=fp, append_eos=rendering.append_eos)[0]


def vocab_size(model: Any) -> int:
    return int(getattr(model.config, "vocab_size", 0) or model.get_output_embeddings().weight.shape[0])


def using(model: Any, mode: str) -> Any:
    """A context in which `model` is the base ("base") or carries the named adapter ("default", "baseline")."""
    if mode == "base":
        return model.disable_adapter()
    model.set_adapter(mode)
    return nullcontext()


def split_counts(values: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
    return list(torch.split(values, counts))


def head_logits(model: Any, head: OutputHead, hidden: torch.Tensor, mode: str) -> torch.Tensor:
    """Logits of `hidden` under `mode` (an adapter may target the output head too), in float32."""
    with using(model, mode):
        return head(hidden).float()


@torch.no_grad()
def failed_metrics(model: Any, pairs: Sequence[Pair], pad: int, *, mode: str, batch_size: int) -> dict[str, Any]:
    """Per record: fix share (None when the teacher agrees with every attempt token), mean KL(T‖S), mean
    log-prob of the attempt; and the mean NLL per token over all records (the chance check)."""
    dev = next(model.parameters()).device
    head = OutputHead(model)
    out: dict[str, Any] = {"fix": [], "kl": [], "logp": []}
    nll, n_tok = 0.0, 0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        comps = [p.completion_ids for p in chunk]
        s = collate([p.student_ids for p in chunk], comps, pad_id=pad, device=dev)
        t = collate([p.teacher_ids for p in chunk], comps, pad_id=pad, device=dev)
        with model.disable_adapter():
            t_h = completion_hidden(model, t)
        with using(model, mode):
            s_h = completion_hidden(model, s)
        ids = s.completion_ids[s.completion_mask]
        fix, kl, logp = [], [], []
        for lo in range(0, ids.shape[0], CHUNK):
            tl = head_logits(model, head, t_h[lo:lo + CHUNK], "base")
            sl = head_logits(model, head, s_h[lo:lo + CHUNK], mode)
            t_lp, s_lp = torch.log_softmax(tl, -1), torch.log_softmax(sl, -1)
            part = ids[lo:lo + CHUNK]
            t_arg, s_arg = tl.argmax(-1), sl.argmax(-1)
            fix.append(torch.stack([t_arg != part, s_arg == t_arg]))
            kl.append(divergence(s_lp, t_lp, alpha=0.0))
            logp.append(s_lp.gather(-1, part.unsqueeze(-1)).squeeze(-1))
        counts = s.completion_mask.sum(-1).tolist()
        fixes, kls, lps = torch.cat(fix, 1), torch.cat(kl), torch.cat(logp)
        rows = zip(torch.split(fixes, counts, 1), split_counts(kls, counts), split_counts(lps, counts), strict=True)
        for f, k, lp in rows:
            disagree = f[0]
            out["fix"].append(float(f[1][disagree].float().mean()) if bool(disagree.any()) else None)
            out["kl"].append(float(k.mean()))
            out["logp"].append(float(lp.mean()))
        nll -= float(lps.sum())
        n_tok += int(lps.numel())
    out["nll"] = nll / max(1, n_tok)
    return out


@torch.no_grad()
def logp_per_record(model: Any, pairs: Sequence[Pair], pad: int, *, mode: str, batch_size: int) -> list[float]:
    """Mean log-prob per token of each pair's completion in the student context."""
    dev = next(model.parameters()).device
    head = OutputHead(model)
    out: list[float] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        s = collate([p.student_ids for p in chunk], [p.completion_ids for p in chunk], pad_id=pad, device=dev)
        with using(model, mode):
            h = completion_hidden(model, s)
        ids = s.completion_ids[s.completion_mask]
        lps = torch.cat([token_logprobs(head_logits(model, head, h[lo:lo + CHUNK], mode), ids[lo:lo + CHUNK])
                         for lo in range(0, max(1, ids.shape[0]), CHUNK)])
        out += [float(x.mean()) for x in split_counts(lps, s.completion_mask.sum(-1).tolist())]
    return out


def human_chunks(tok: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    out = []
    for text in texts:
        ids = encode(tok, text, True)
        out += [ids[i:i + max_length] for i in range(0, len(ids), max_length) if len(ids[i:i + max_length]) > 1]
    return out


@torch.no_grad()
def perplexity(model: Any, chunks: Sequence[list[int]], *, mode: str) -> float:
    dev = next(model.parameters()).device
    nll, n = 0.0, 0
    for ids in chunks:
        x = torch.tensor([ids], device=dev)
        with using(model, mode):
            logits = model(input_ids=x, use_cache=False).logits
        nll -= float(token_logprobs(logits[0, :-1], x[0, 1:]).sum())
        n += len(ids) - 1
    return math.exp(nll / max(1, n))


@torch.no_grad()
def kl_from_base(model: Any, pairs: Sequence[Pair], pad: int, *, mode: str, batch_size: int) -> list[float]:
    """Per record, the mean KL(base ‖ model under `mode`) over its completion's positions in the student context:
    how far the adapter moved the next-token distributions on this repository's own prompts (RL's Razor: what
    predicts forgetting)."""
    dev = next(model.parameters()).device
    head = OutputHead(model)
    out: list[float] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        s = collate([p.student_ids for p in chunk], [p.completion_ids for p in chunk], pad_id=pad, device=dev)
        with model.disable_adapter():
            b_h = completion_hidden(model, s)
        with using(model, mode):
            a_h = completion_hidden(model, s)
        kls = torch.cat([divergence(torch.log_softmax(head_logits(model, head, a_h[lo:lo + CHUNK], mode), -1),
                                    torch.log_softmax(head_logits(model, head, b_h[lo:lo + CHUNK], "base"), -1),
                                    alpha=0.0)
                         for lo in range(0, max(1, a_h.shape[0]), CHUNK)])
        out += [float(x.mean()) for x in split_counts(kls, s.completion_mask.sum(-1).tolist())]
    return out
