"""Processed tokens/s and an MFU estimate for the progress bar and the run report.

Model FLOPs per step = 6·N per trained (student) token + 2·N per teacher token (a forward pass without a graph),
N = the base model's parameters; MFU = those FLOPs / wall time / the device's peak dense bf16 FLOP/s from the
table below (vendor datasheets, dense, no sparsity). Unknown devices and CPUs get no MFU rather than a guess.
"""

from __future__ import annotations

from typing import Any

import torch

#: dense bf16 tensor-core peak, FLOP/s, by a substring of the CUDA device name (first match wins)
PEAK_BF16: list[tuple[str, float]] = [
    ("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("H800", 989e12), ("GH200", 989e12),
    ("B200", 2250e12), ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12),
    ("A10G", 125e12), ("A10", 125e12), ("RTX 4090", 165e12), ("RTX 3090", 71e12), ("RTX A6000", 155e12),
    ("RTX 6000 Ada", 364e12),
]


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16 if key in name), None)


class Throughput:
    """Per-step and whole-run tokens/s and MFU."""

    def __init__(self, params: int, device: torch.device) -> None:
        self.params, self.peak = params, peak_flops(device)
        self.tokens = self.flops = self.seconds = 0.0
        self.device = device

    def step(self, trained_tokens: int, teacher_tokens: int, seconds: float) -> dict[str, Any]:
        flops = self.params * (6 * trained_tokens + 2 * teacher_tokens)
        self.tokens += trained_tokens + teacher_tokens
        self.flops += flops
        self.seconds += seconds
        rate = {"tok_s": (trained_tokens + teacher_tokens) / max(seconds, 1e-9)}
        if self.peak:
            rate["mfu"] = flops / max(seconds, 1e-9) / self.peak
        return rate

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tokens_processed": int(self.tokens),
                               "tokens_per_s": self.tokens / self.seconds if self.seconds else 0.0}
        if self.peak and self.seconds:
            out["mfu"] = self.flops / self.seconds / self.peak
        if self.device.type == "cuda":
            out["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(self.device))
        return out
