"""Loss functions: pure functions of tensors, keyword-only settings, no model and no loop.

`token_divergence` is the SDPO per-token divergence between the student's and the (stop-gradient) teacher's
next-token distributions, with α mixing (0 = forward KL(T‖S), 1 = reverse KL(S‖T), between = the generalised
Jensen-Shannon divergence against M = (1−α)·S + α·T) over either the full vocabulary or the student's top-K ids
plus one tail bucket holding the rest of the mass.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

_TINY = 1e-7


def topk_with_tail(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, k: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs over the student's top-K ids plus a tail entry log(1 − Σ_topK p), for both models.

    Returns two [..., K+1] tensors of normalised log-probabilities. The tail is computed as
    log(−expm1(logsumexp(top-K log-probs))) with a clamp, which stays finite when the top-K holds all the mass.
    """
    k = min(k, student_logits.shape[-1])
    s, t = student_logits.float(), teacher_logits.float()
    ids = s.detach().topk(k, dim=-1).indices
    # gather − logsumexp instead of a full log_softmax: no [N, V] log-prob tensor is materialised
    s_top = s.gather(-1, ids) - torch.logsumexp(s, dim=-1, keepdim=True)
    t_top = t.gather(-1, ids) - torch.logsumexp(t, dim=-1, keepdim=True)
    return _with_tail(s_top), _with_tail(t_top)


def _with_tail(top: torch.Tensor) -> torch.Tensor:
    mass = torch.logsumexp(top, dim=-1, keepdim=True).clamp(max=-_TINY)
    tail = torch.log(-torch.expm1(mass)).clamp(min=math.log(_TINY) * 3)
    return torch.cat([top, tail], dim=-1)


def divergence(s_logp: torch.Tensor, t_logp: torch.Tensor, *, alpha: float) -> torch.Tensor:
    """Per-position divergence between two normalised log-prob tensors [..., V] → [...]."""
    t_logp = t_logp.detach()
    if alpha <= 0.0:
        return _kl(t_logp, s_logp)
    if alpha >= 1.0:
        return _kl(s_logp, t_logp)
    log_m = torch.logsumexp(torch.stack([s_logp + math.log(1 - alpha), t_logp + math.log(alpha)]), dim=0)
    return alpha * _kl(t_logp, log_m) + (1 - alpha) * _kl(s_logp, log_m)


def _kl(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    """KL(P‖Q) = Σ p (log p − log q), summed over the last dimension; 0·log 0 = 0."""
    p = p_logp.exp()
    return (p * (p_logp - q_logp)).sum(-1)


def token_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, alpha: float,
                     top_k: int = 0) -> torch.Tensor:
    """Per-token divergence [N] from logits [N, V]; `top_k` = 0 uses the full vocabulary."""
    if top_k and top_k < student_logits.shape[-1]:
        s, t = topk_with_tail(student_logits, teacher_logits, k=top_k)
    else:
        s = F.log_softmax(student_logits.float(), dim=-1)
        t = F.log_softmax(teacher_logits.float(), dim=-1)
    return divergence(s, t, alpha=alpha)


def importance_weights(logp: torch.Tensor, logp_old: torch.Tensor, *, clip: float = 2.0) -> torch.Tensor:
    """exp(logπ − logπ_old), clipped at `clip`, as a constant weight (no gradient through it)."""
    return torch.exp((logp.detach() - logp_old).clamp(max=math.log(clip)))


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log p(ids) under `logits` [..., V] → [...]."""
    return F.log_softmax(logits.float(), dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)


#: positions per chunk of the output head: the [chunk, V] logits are the largest tensor a step holds
CHUNK = 1024


def chunked_divergence(s_hidden: torch.Tensor, t_hidden: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor],
                       ids: torch.Tensor, *, alpha: float, top_k: int, chunk: int = CHUNK
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token divergence [N] (with gradient to `s_hidden`) and the student's log-prob of `ids` [N]
    (detached) from hidden states [N, H]: the head runs on `chunk` positions at a time and, with a gradient,
    is recomputed in the backward pass (activation checkpointing), so no [N, V] tensor ever exists."""

    def part(s_h: torch.Tensor, t_h: torch.Tensor, part_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s_logits = head(s_h)
        with torch.no_grad():
            t_logits = head(t_h)
            logp = token_logprobs(s_logits.detach(), part_ids)
        return token_divergence(s_logits, t_logits, alpha=alpha, top_k=top_k), logp

    return _chunked(part, s_hidden, t_hidden.detach(), ids, chunk=chunk)


def chunked_logprobs(hidden: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor, *,
                     chunk: int = CHUNK) -> torch.Tensor:
    """log p(ids) [N] (with gradient) from hidden states [N, H], `chunk` positions of the head at a time."""

    def part(h: torch.Tensor, part_ids: torch.Tensor) -> tuple[torch.Tensor]:
        return (token_logprobs(head(h), part_ids),)

    return _chunked(part, hidden, ids, chunk=chunk)[0]


def _chunked(fn: Callable[..., tuple[torch.Tensor, ...]], first: torch.Tensor, *rest: torch.Tensor, chunk: int
             ) -> tuple[torch.Tensor, ...]:
    from torch.utils.checkpoint import checkpoint

    outs = []
    for start in range(0, max(1, first.shape[0]), chunk):
        args = [t[start:start + chunk] for t in (first, *rest)]
        if first.requires_grad and torch.is_grad_enabled():
            outs.append(checkpoint(fn, *args, use_reentrant=False))
        else:
            outs.append(fn(*args))
    return tuple(torch.cat(parts) for parts in zip(*outs, strict=True))
