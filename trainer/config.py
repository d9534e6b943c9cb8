"""`TrainConfig`: every trainer setting in one frozen dataclass, validated once, saved beside each adapter.

Defaults are chosen for a small local model on a laptop: rank-16 LoRA on attention + MLP, a small learning rate
(self-distillation collapses when pushed hard), top-100 distillation with a tail bucket. `alpha` = 0 (forward
KL) was picked by measurement on the learning benchmark (`bench/learning.py`); see docs/trainer.md.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redline.errors import ConfigError

METHODS = ("self-distill", "sft-revision", "sft-edit", "scalar")
HINDSIGHT = ("auto", "chat", "fim", "template")


@dataclass(frozen=True)
class TrainConfig:
    #: self-distill (the method) or a baseline: sft-revision, sft-edit, scalar
    method: str = "self-distill"
    #: how the teacher sees the feedback: auto (chat for chat prompts, fim for fim, template for raw)
    hindsight: str = "auto"
    #: format string with {prompt}, {feedback} and optionally {completion}, for hindsight="template"
    template: str | None = None
    #: divergence mix: 0 = forward KL(T‖S), 1 = reverse KL(S‖T), between = generalised JSD
    alpha: float = 0.0
    #: distil over the student's top-K tokens plus one tail bucket; 0 = full vocabulary
    top_k: int = 100
    #: None = by the model's width: 1e-4 at hidden size 4096 (the usual LoRA rate for 7-8B models), scaled by
    #: 4096 / hidden_size as Adam rates scale with width (muP), within [1e-5, 5e-3]
    lr: float | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    #: optimizer steps; None = `epochs` passes over the data
    max_steps: int | None = None
    epochs: int = 1
    batch_size: int = 4
    grad_accum: int = 1
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    #: module names to adapt; None = auto-detect every attention and MLP projection
    lora_targets: tuple[str, ...] | None = None
    seed: int = 0
    #: tokens per sequence (prompt + completion); feedback, then the oldest prompt text, are cut to fit
    max_length: int = 1024
    max_feedback_chars: int = 2000
    #: records whose feedback only says "passed" are kept as anchors (teacher = student context)
    use_passed_anchors: bool = True
    #: the teacher: "base" (the base weights, adapter disabled) or "ema" (base + an EMA copy of the student's LoRA)
    teacher: str = "base"
    ema_rate: float = 0.05
    #: on-policy mode: this fraction of each batch gets a fresh attempt sampled from the current student, scored
    #: by the same hindsight teacher (the feedback stays the one given on the recorded attempt)
    on_policy_ratio: float = 0.0
    #: importance weight exp(logp - logp_old) is clipped at this value for off-policy records
    is_clip: float = 2.0
    #: write a resumable checkpoint every N optimizer steps; 0 = never
    checkpoint_every: int = 0
    gradient_checkpointing: bool = False
    #: append the tokenizer's eos to completions we tokenize ourselves (teaches the model where to stop)
    append_eos: bool = True
    #: sft-revision: tokens the teacher may write; scalar: samples per prompt and their temperature
    revision_max_new_tokens: int = 256
    scalar_k: int = 4
    scalar_temperature: float = 1.0
    #: the gate refuses an adapter that raises perplexity on human-written code by more than this fraction
    gate_max_ppl_increase: float = 0.02
    #: git pathspecs of the human-written code the gate samples (the code that shows the team's own style)
    gate_human_code: tuple[str, ...] = ("*.py",)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            _bad("method", self.method, f"one of {list(METHODS)}")
        if self.hindsight not in HINDSIGHT:
            _bad("hindsight", self.hindsight, f"one of {list(HINDSIGHT)}")
        if self.hindsight == "template" and not self.template:
            _bad("template", self.template, "a format string when hindsight='template'")
        if self.template is not None:
            check_template(self.template)
        if not 0.0 <= self.alpha <= 1.0:
            _bad("alpha", self.alpha, "a number in [0, 1]")
        for name in ("top_k", "epochs", "batch_size", "grad_accum", "lora_r", "lora_alpha", "seed",
                     "max_length", "max_feedback_chars", "checkpoint_every", "revision_max_new_tokens", "scalar_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                _bad(name, value, "an integer")
            floor = 0 if name in ("top_k", "checkpoint_every", "seed") else 1
            if value < floor:
                _bad(name, value, f"an integer ≥ {floor}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            _bad("max_steps", self.max_steps, "a positive integer or None")
        if self.lr is not None and (isinstance(self.lr, bool) or not isinstance(self.lr, (int, float))
                                    or not self.lr > 0):
            _bad("lr", self.lr, "a positive number (or unset: chosen by the model's width)")
        if not 0.0 <= self.warmup_ratio < 1.0:
            _bad("warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
        if self.teacher not in ("base", "ema"):
            _bad("teacher", self.teacher, "'base' or 'ema'")
        if not 0.0 < self.ema_rate <= 1.0:
            _bad("ema_rate", self.ema_rate, "a number in (0, 1]")
        if not 0.0 <= self.on_policy_ratio <= 1.0:
            _bad("on_policy_ratio", self.on_policy_ratio, "a fraction in [0, 1]")
        if self.on_policy_ratio and self.method != "self-distill":
            _bad("on_policy_ratio", self.on_policy_ratio, "0 unless method='self-distill'")
        if not 0.0 <= self.lora_dropout < 1.0:
            _bad("lora_dropout", self.lora_dropout, "a number in [0, 1)")
        if self.weight_decay < 0 or self.max_grad_norm <= 0 or self.is_clip < 1:
            _bad("weight_decay/max_grad_norm/is_clip", (self.weight_decay, self.max_grad_norm, self.is_clip),
                 "weight_decay ≥ 0, max_grad_norm > 0, is_clip ≥ 1")
        if self.scalar_temperature <= 0:
            _bad("scalar_temperature", self.scalar_temperature, "a positive number")
        if self.gate_max_ppl_increase < 0:
            _bad("gate_max_ppl_increase", self.gate_max_ppl_increase, "a fraction ≥ 0")
        if self.max_length < 16:
            _bad("max_length", self.max_length, "at least 16 tokens")
        if self.lora_targets is not None:
            if isinstance(self.lora_targets, str) or not all(isinstance(t, str) for t in self.lora_targets):
                _bad("lora_targets", self.lora_targets, "a list of module names")
            object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        if isinstance(self.gate_human_code, str) or not all(isinstance(t, str) for t in self.gate_human_code):
            _bad("gate_human_code", self.gate_human_code, "a list of git pathspecs, e.g. [\"src/**/*.py\"]")
        object.__setattr__(self, "gate_human_code", tuple(self.gate_human_code))

    # -- (de)serialisation -------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["lora_targets"] is not None:
            data["lora_targets"] = list(data["lora_targets"])
        data["gate_human_code"] = list(data["gate_human_code"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> TrainConfig:
        """Build from a `[tool.redline.train]` table or a saved `train_config.json`; unknown keys are errors."""
        names = {f.name for f in dataclasses.fields(cls)}
        merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        unknown = sorted(set(merged) - names)
        if unknown:
            raise ConfigError(f"unknown trainer setting(s) {unknown}", fix="see docs/trainer.md")
        if merged.get("lora_targets") is not None:
            merged["lora_targets"] = tuple(merged["lora_targets"])
        return cls(**merged)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def check_template(template: str) -> None:
    """A hindsight template must contain {prompt} and {feedback}, and no other fields."""
    import string

    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        _bad("template", template, f"a valid format string ({exc})")
    extra = fields - {"prompt", "feedback", "completion"}
    if extra or not {"prompt", "feedback"} <= fields:
        _bad("template", template, "a format string using {prompt} and {feedback} (and optionally {completion})")


def _bad(name: str, value: Any, expected: str) -> None:
    raise ConfigError(f"trainer setting `{name}` = {value!r} is invalid: expected {expected}",
                      fix="see docs/trainer.md")
