from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from redline.trainer.losses import (
    divergence,
    importance_weights,
    token_divergence,
    topk_with_tail,
)

torch.set_num_threads(1)


def logits(seed: int, n: int = 6, v: int = 50, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, v, generator=g) * scale


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("top_k", [0, 10])
def test_zero_when_teacher_equals_student(alpha: float, top_k: int) -> None:
    s = logits(0)
    assert token_divergence(s, s.clone(), alpha=alpha, top_k=top_k).abs().max() < 1e-5


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_topk_with_k_equal_vocab_matches_full(alpha: float) -> None:
    s, t = logits(1), logits(2)
    full = token_divergence(s, t, alpha=alpha, top_k=0)
    s_top, t_top = topk_with_tail(s, t, k=s.shape[-1])
    assert torch.allclose(divergence(s_top, t_top, alpha=alpha), full, atol=1e-5)


def test_endpoints_are_the_two_kls() -> None:
    s, t = logits(3), logits(4)
    ls, lt = F.log_softmax(s, -1), F.log_softmax(t, -1)
    forward = F.kl_div(ls, lt, log_target=True, reduction="none").sum(-1)  # KL(T‖S)
    reverse = F.kl_div(lt, ls, log_target=True, reduction="none").sum(-1)  # KL(S‖T)
    assert torch.allclose(token_divergence(s, t, alpha=0.0), forward, atol=1e-5)
    assert torch.allclose(token_divergence(s, t, alpha=1.0), reverse, atol=1e-5)
    mid = token_divergence(s, t, alpha=0.5)
    assert (mid >= -1e-6).all() and (mid <= math.log(2) + 1e-5).all()  # JSD is bounded by log 2


def test_tail_is_stable_when_topk_holds_all_mass() -> None:
    s = torch.full((2, 20), -1e4)
    s[:, 0] = 50.0
    s_top, t_top = topk_with_tail(s, s.clone(), k=3)
    assert torch.isfinite(s_top).all() and torch.isfinite(t_top).all()
    assert torch.allclose(s_top.exp().sum(-1), torch.ones(2), atol=1e-4)


def test_topk_gradient_flows_and_teacher_gets_none() -> None:
    s = logits(5).requires_grad_()
    t = logits(6).requires_grad_()
    token_divergence(s, t, alpha=0.5, top_k=5).sum().backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_importance_weights_clip_at_two() -> None:
    w = importance_weights(torch.tensor([0.0, -1.0, -5.0]), torch.tensor([-5.0, -1.0, 0.0]), clip=2.0)
    assert torch.allclose(w, torch.tensor([2.0, 1.0, math.exp(-5.0)]))
