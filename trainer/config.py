"""`TrainConfig`: every trainer setting in one frozen dataclass, validated once, saved beside each adapter.

Defaults are chosen for a small local model on a laptop: rank-16 LoRA on attention + MLP, a small learning rate
(self-distillation collapses when pushed hard), top-100 distillation with a tail bucket. `alpha` = 0 (forward
KL) was picked by measurement on the learning benchmark (`bench/learning.py`); see docs/trainer.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redline.errors import ConfigError

METHODS = ("self-distill", "sft-revision", "sft-edit", "scalar")
HINDSIGHT = ("auto", "chat", "fim", "template")
QUANTIZE = ("4bit", "8bit")
#: settings that existed once, with what replaced them (a stale redline.toml gets the fix, not "unknown")
REMOVED = {"grad_accum": "`batch_size` is now the records per optimizer step; the trainer plans micro-batches "
                         "and accumulation from free memory (set `micro_batch` to force one)"}


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
    #: 4096 / hidden_size as Adam rates scale with width (muP), within [1e-5, 2e-3]
    lr: float | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    #: optimizer steps; None = follow the data (see `epochs`)
    max_steps: int | None = None
    #: passes over the data; None = at least 3 passes and 40 steps, at most 300 steps (`batching.planned_steps`)
    epochs: int | None = None
    #: records per optimizer step (the effective batch, whatever the micro-batches are)
    batch_size: int = 8
    #: records per forward pass; None = planned from the model's shape, the data and free memory (`plan.py`)
    micro_batch: int | None = None
    #: memory the run may use, e.g. "22GiB"; None = 90 % of what is free on the device (CPU: of available RAM)
    max_memory: str | None = None
    #: "4bit" or "8bit": QLoRA, the frozen base quantized with bitsandbytes (CUDA only)
    quantize: str | None = None
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
    #: self-distill also scores the hindsight teacher's own greedy rewrite of each failed attempt, in the same step
    #: as the attempt (one batched generation per failed record before training; `revisions.py`)
    use_revisions: bool = True
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
    #: None = planned (on only when the smallest micro-batch would not fit otherwise)
    gradient_checkpointing: bool | None = None
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
        for name, ok, expected in _RULES:
            value = getattr(self, name)
            if not ok(value):
                _bad(name, value, expected)
        # the rules that involve two settings; each still names the one to change
        if self.hindsight == "template" and not self.template:
            _bad("template", self.template, "a format string when hindsight='template'")
        if self.template is not None:
            check_template(self.template)
        if self.on_policy_ratio and self.method != "self-distill":
            _bad("on_policy_ratio", self.on_policy_ratio, "0 unless method='self-distill'")
        if self.lora_targets is not None:
            object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
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
        for key in sorted(set(merged) & set(REMOVED)):
            raise ConfigError(f"trainer setting `{key}` was removed: {REMOVED[key]}", fix="see docs/trainer.md")
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


def validate_train_settings(mapping: dict[str, Any]) -> list[str]:
    """Every problem in a `[tool.redline.train]` table, one line each (empty when it is fine): what
    `redline doctor` reports, so a typo is found before the night's `redline train`."""
    problems: list[str] = []
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in sorted(mapping):
        if key in REMOVED:
            problems.append(f"trainer setting `{key}` was removed: {REMOVED[key]}")
        elif key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            problems.append(f"unknown trainer setting `{key}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
    known = {k: v for k, v in mapping.items() if k in names}
    for key, value in known.items():  # each setting alone against the defaults, so every bad one is named
        try:
            TrainConfig.from_dict({key: value, **({"template": known.get("template") or "{feedback}{prompt}"}
                                                  if key == "hindsight" else {})})
        except (ConfigError, TypeError) as exc:
            problems.append(str(exc.one_line() if isinstance(exc, ConfigError) else exc))
    if not problems:
        try:
            TrainConfig.from_dict(known)
        except ConfigError as exc:
            problems.append(exc.one_line())
    return problems


def parse_bytes(text: str) -> int:
    """"22GiB", "500MiB", "16GB", "1e9" → bytes."""
    match = _SIZE.fullmatch(str(text).strip())
    if not match:
        raise ValueError(text)
    unit = (match.group(2) or "").lower()
    return int(float(match.group(1)) * _UNITS[unit])


_SIZE = re.compile(r"([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([KMGT]i?B|B)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}


def _is_int(value: Any, floor: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= floor


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_size(value: Any) -> bool:
    try:
        return value is None or (isinstance(value, str) and parse_bytes(value) > 0)
    except ValueError:
        return False


def _is_names(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(t, str) and t for t in value)


def _int_rule(name: str, floor: int) -> tuple[str, Callable[[Any], bool], str]:
    return name, lambda v: _is_int(v, floor), f"an integer ≥ {floor}"


#: one row per setting: (name, check, what is expected) — the error names the setting and the expectation
_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("method", lambda v: v in METHODS, f"one of {list(METHODS)}"),
    ("hindsight", lambda v: v in HINDSIGHT, f"one of {list(HINDSIGHT)}"),
    ("template", lambda v: v is None or isinstance(v, str), "a format string"),
    ("alpha", lambda v: _is_num(v) and 0.0 <= v <= 1.0, "a number in [0, 1]"),
    _int_rule("top_k", 0),
    ("lr", lambda v: v is None or (_is_num(v) and v > 0),
     "a positive number (or unset: chosen by the model's width)"),
    ("weight_decay", lambda v: _is_num(v) and v >= 0, "a number ≥ 0"),
    ("warmup_ratio", lambda v: _is_num(v) and 0.0 <= v < 1.0, "a number in [0, 1)"),
    ("max_grad_norm", lambda v: _is_num(v) and v > 0, "a positive number"),
    ("max_steps", lambda v: v is None or _is_int(v, 1), "a positive integer (or unset: follow the data)"),
    ("epochs", lambda v: v is None or _is_int(v, 1), "a positive integer (or unset: follow the data)"),
    _int_rule("batch_size", 1),
    ("micro_batch", lambda v: v is None or _is_int(v, 1), "a positive integer (or unset: planned)"),
    ("max_memory", _is_size, "a size such as \"22GiB\" (or unset: 90 % of free memory)"),
    ("quantize", lambda v: v is None or v in QUANTIZE, f"one of {list(QUANTIZE)} (or unset)"),
    _int_rule("lora_r", 1),
    _int_rule("lora_alpha", 1),
    ("lora_dropout", lambda v: _is_num(v) and 0.0 <= v < 1.0, "a number in [0, 1)"),
    ("lora_targets", lambda v: v is None or (not isinstance(v, str) and _is_names(v)), "a list of module names"),
    _int_rule("seed", 0),
    ("max_length", lambda v: _is_int(v, 16), "an integer ≥ 16 (tokens)"),
    _int_rule("max_feedback_chars", 1),
    ("use_passed_anchors", lambda v: isinstance(v, bool), "true or false"),
    ("use_revisions", lambda v: isinstance(v, bool), "true or false"),
    ("teacher", lambda v: v in ("base", "ema"), "'base' or 'ema'"),
    ("ema_rate", lambda v: _is_num(v) and 0.0 < v <= 1.0, "a number in (0, 1]"),
    ("on_policy_ratio", lambda v: _is_num(v) and 0.0 <= v <= 1.0, "a fraction in [0, 1]"),
    ("is_clip", lambda v: _is_num(v) and v >= 1, "a number ≥ 1"),
    _int_rule("checkpoint_every", 0),
    ("gradient_checkpointing", lambda v: v is None or isinstance(v, bool), "true, false (or unset: planned)"),
    ("append_eos", lambda v: isinstance(v, bool), "true or false"),
    _int_rule("revision_max_new_tokens", 1),
    _int_rule("scalar_k", 1),
    ("scalar_temperature", lambda v: _is_num(v) and v > 0, "a positive number"),
    ("gate_max_ppl_increase", lambda v: _is_num(v) and v >= 0, "a fraction ≥ 0"),
    ("gate_human_code", lambda v: not isinstance(v, str) and _is_names(v),
     "a list of git pathspecs, e.g. [\"src/**/*.py\"]"),
]


def _bad(name: str, value: Any, expected: str) -> None:
    raise ConfigError(f"trainer setting `{name}` = {value!r} is invalid: expected {expected}",
                      fix="see docs/trainer.md")
