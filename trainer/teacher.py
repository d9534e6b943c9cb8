"""The optional EMA teacher (SDPO's default teacher): a second LoRA adapter on the same base weights, kept at an
exponential moving average of the student's LoRA weights. The default teacher is the base (adapter disabled)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

STUDENT, EMA = "default", "ema"


class EmaTeacher:
    def __init__(self, model: Any, rate: float) -> None:
        self.model = model
        self.rate = rate
        model.add_adapter(EMA, model.peft_config[STUDENT])
        model.set_adapter(STUDENT)  # the student trains; the EMA copy is frozen
        params = dict(model.named_parameters())
        self.pairs = [(params[name.replace(f".{STUDENT}.", f".{EMA}.")], p) for name, p in params.items()
                      if "lora_" in name and f".{STUDENT}." in name]
        with torch.no_grad():
            for ema, student in self.pairs:
                ema.copy_(student)
                ema.requires_grad_(False)

    @torch.no_grad()
    def update(self) -> None:
        """ema ← (1 − rate)·ema + rate·student, after each optimizer step."""
        for ema, student in self.pairs:
            ema.lerp_(student, self.rate)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Run the model as the teacher (base + EMA adapter), then give the student back its adapter."""
        self.model.set_adapter(EMA)
        try:
            yield
        finally:
            self.model.set_adapter(STUDENT)

    def state_dict(self) -> list[torch.Tensor]:
        return [ema.detach().cpu().clone() for ema, _ in self.pairs]

    def load_state_dict(self, state: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for (ema, _), saved in zip(self.pairs, state, strict=True):
                ema.copy_(saved.to(ema.device))
