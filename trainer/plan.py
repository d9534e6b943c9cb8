"""Fit by default: choose the micro-batch and gradient checkpointing from the model's shape, the data's lengths
and the memory the run may use, so that a run fits instead of crashing.

The estimate is deliberately simple (bytes per token per layer of what autograd keeps for a Llama-style block
with SDPA attention, after Korthikanti et al. 2022, "Reducing Activation Recomputation"), with a safety margin;
an out-of-memory step still halves the micro-batch in the loop (`loop.py`), so the planner only has to be right
about the order of magnitude. The effective batch (`batch_size` records per optimizer step) never changes: a
smaller micro-batch means more accumulation.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch

from redline.trainer.config import TrainConfig, parse_bytes

log = logging.getLogger("redline.trainer")

#: share of free memory a run takes when `max_memory` is unset (the rest is the allocator's and the desktop's)
FREE_SHARE = 0.9
#: the estimate is multiplied by this before comparing with the budget (allocator fragmentation, temporaries)
MARGIN = 1.25


@dataclass(frozen=True)
class ModelShape:
    params: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    weight_bytes: int  # what the frozen base occupies now (quantized or not)
    act_bytes: int = 2  # bytes per activation element (bf16 on CUDA, 4 for float32 on CPU)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class MemoryPlan:
    micro_batch: int
    gradient_checkpointing: bool
    budget_bytes: int | None
    estimate_bytes: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_shape(model: Any) -> ModelShape:
    """The numbers the estimate needs, read from a loaded (possibly quantized) model and its config."""
    cfg = getattr(model, "config", None)
    get = lambda *names: next((int(v) for n in names if isinstance(v := getattr(cfg, n, None), int)), 0)  # noqa: E731
    hidden = get("hidden_size", "n_embd", "d_model")
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    weight_bytes += sum(b.numel() * b.element_size() for b in model.buffers())
    # activations are bf16 on CUDA (quantized bases too: bf16 compute), float32 on CPU
    act = 2 if next(model.parameters()).device.type == "cuda" else 4
    return ModelShape(params=sum(_numel(p) for p in model.parameters()), layers=get("num_hidden_layers", "n_layer"),
                      hidden=hidden, intermediate=get("intermediate_size", "n_inner") or 4 * hidden,
                      vocab=get("vocab_size"), weight_bytes=weight_bytes, act_bytes=act)


def _numel(p: torch.Tensor) -> int:
    """Parameter count; bitsandbytes 4-bit weights pack two values per byte."""
    shape = getattr(p, "quant_state", None)
    return int(shape.shape.numel()) if shape is not None and hasattr(shape, "shape") else p.numel()


def lora_params(shape: ModelShape, r: int) -> int:
    """LoRA on every projection of every block: about r·(in + out) per matrix, 7 matrices per Llama block."""
    per_layer = r * (4 * 2 * shape.hidden + 3 * (shape.hidden + shape.intermediate))
    return per_layer * max(1, shape.layers)


def estimate_bytes(shape: ModelShape, *, micro_batch: int, seq_len: int, completion_len: int, top_k: int,
                   checkpointing: bool, lora_r: int, include_weights: bool = True) -> int:
    """Peak bytes of one self-distillation step (student forward + backward, teacher forward without a graph)."""
    h, inter, layers, a = shape.hidden, shape.intermediate, max(1, shape.layers), shape.act_bytes
    tokens = micro_batch * seq_len
    # what a block keeps for backward, per token: norms' fp32 copies, q/k/v/o inputs and outputs, the SwiGLU
    # gate/up/act/product, residuals; with SDPA the L×L scores are not stored
    block = a * (8 * h + 4 * inter) + 4 * 2 * h
    activations = tokens * (layers * 2 * h * a + block) if checkpointing else tokens * layers * block
    teacher = tokens * block  # one block's transient activations at a time, no graph
    # completion-only logits in chunks (loss.CHUNK positions): student + teacher logits, softmax, gradient
    chunk = min(micro_batch * completion_len, 1024)
    logits = chunk * shape.vocab * 4 * 6 + micro_batch * completion_len * (h * a * 4 + (top_k + 1) * 4 * 6)
    lora = lora_params(shape, lora_r) * 4 * 4  # fp32 weights, gradients, two Adam moments
    weights = shape.weight_bytes if include_weights else 0
    return int(weights + lora + activations + teacher + logits)


def memory_budget(config: TrainConfig, device: torch.device, *, weights_loaded: int = 0) -> int | None:
    """Bytes the whole run may use: `max_memory`, else 90 % of what is free now plus what the loaded weights
    already hold (so the budget is a total, like `max_memory`). None when it cannot be told."""
    if config.max_memory:
        return parse_bytes(config.max_memory)
    free = free_memory(device)
    return None if free is None else int(free * FREE_SHARE) + weights_loaded


def free_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        return _available_ram()
    return None


def _available_ram() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def plan_memory(shape: ModelShape, config: TrainConfig, *, seq_len: int, completion_len: int,
                budget: int | None) -> MemoryPlan:
    """The largest micro-batch (halving from `batch_size`) whose estimate fits `budget`, without gradient
    checkpointing if any micro-batch fits so, else with it (it costs a third more compute). Settings the user
    fixed (`micro_batch`, `gradient_checkpointing`) are kept as they are."""
    fixed_ckpt = config.gradient_checkpointing
    sizes = [config.micro_batch] if config.micro_batch else _halvings(config.batch_size)
    modes = [fixed_ckpt] if fixed_ckpt is not None else [False, True]

    def est(m: int, ckpt: bool) -> int:
        return estimate_bytes(shape, micro_batch=m, seq_len=seq_len, completion_len=completion_len,
                              top_k=config.top_k, checkpointing=ckpt, lora_r=config.lora_r)

    if budget is None:
        m, ckpt = sizes[0], bool(fixed_ckpt)
        return MemoryPlan(m, ckpt, None, est(m, ckpt), "free memory unknown: micro-batch = batch_size")
    for ckpt in modes:
        for m in sizes:
            need = est(m, ckpt)
            if need * MARGIN <= budget:
                why = "fits" if m == sizes[0] and ckpt == modes[0] else "smaller to fit"
                return MemoryPlan(m, ckpt, budget, need, why)
    m, ckpt = sizes[-1], modes[-1]
    need = est(m, ckpt)
    log.warning("the estimate (%.1f GiB) exceeds the memory budget (%.1f GiB) even with micro-batch %d%s: "
                "trying anyway; set quantize = \"4bit\" or a lower max_length if it runs out",
                need / 2**30, budget / 2**30, m, " and gradient checkpointing" if ckpt else "")
    return MemoryPlan(m, ckpt, budget, need, "over budget: smallest setting")


def _halvings(n: int) -> list[int]:
    out = [n]
    while out[-1] > 1:
        out.append(max(1, out[-1] // 2))
    return out
