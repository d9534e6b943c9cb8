"""`TrainConfig`: every trainer setting in one frozen dataclass, validated once, saved beside each adapter.

Each setting is declared once: its default, its check, what the error says is expected, and its help, side by
side (`setting`). Defaults are chosen for a small local model on a laptop: rank-16 LoRA on attention + MLP, a
small learning rate (self-distillation collapses when pushed hard), top-100 distillation with a tail bucket.
`alpha` = 0 (forward KL) was picked by measurement on the learning benchmark (`bench/learning.py`); see
docs/trainer.md. The variants kept only for experiments (best-of-k, SFT on human edits, the EMA teacher,
on-policy resampling) take their settings in `bench/methods.py`, not here.
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

#: the product's methods (`methods.METHODS` implements each); the bench adds its own (`bench/methods.py`)
METHODS = ("self-distill", "sft-revision")
HINDSIGHT = ("auto", "chat", "chat-turn", "fim", "template")
QUANTIZE = ("4bit", "8bit")

_BENCH = "moved to the learning bench (`bench/methods.py`) with the other experiments"
#: settings that existed once, with what replaced them (a stale redline.toml gets the fix, not "unknown")
REMOVED = {
    "grad_accum": "`batch_size` is now the records per optimizer step; the trainer plans micro-batches and "
                  "accumulation from free memory (set `micro_batch` to force one)",
    "teacher": f"the EMA teacher {_BENCH}; the trainer's teacher is the base model",
    "ema_rate": f"the EMA teacher {_BENCH}",
    "on_policy_ratio": f"on-policy resampling {_BENCH}",
    "scalar_k": f"the `scalar` baseline {_BENCH}",
    "scalar_temperature": f"the `scalar` baseline {_BENCH}",
}
#: the removed settings' old defaults: a `train_config.json` names every setting, so one saved before they
#: moved still loads where it asked for what the trainer does anyway
INERT = {"teacher": "base", "ema_rate": 0.05, "on_policy_ratio": 0.0, "scalar_k": 4, "scalar_temperature": 1.0}
#: methods that left the product, with where they went
REMOVED_METHODS = {"sft-edit": f"`sft-edit` {_BENCH}", "scalar": f"`scalar` {_BENCH}"}


def setting(default: Any, ok: Callable[[Any], bool], expected: str, help: str) -> Any:
    """A field with its check (`ok(value)`), what an error says is expected, and its one-line help."""
    return dataclasses.field(default=default, metadata={"ok": ok, "expected": expected, "help": help})


def _is_int(value: Any, floor: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= floor


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_names(value: Any) -> bool:
    return not isinstance(value, str) and isinstance(value, (list, tuple)) and all(isinstance(t, str) and t
                                                                                 for t in value)


def _is_size(value: Any) -> bool:
    try:
        return value is None or (isinstance(value, str) and parse_bytes(value) > 0)
    except ValueError:
        return False


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


_BOOL = "true or false"


@dataclass(frozen=True)
class TrainConfig:
    method: str = setting("self-distill", lambda v: v in METHODS, f"one of {list(METHODS)}",
                          "self-distill, or the baseline sft-revision (SFT on the teacher's rewrites)")
    hindsight: str = setting("auto", lambda v: v in HINDSIGHT, f"one of {list(HINDSIGHT)}",
                             "how the teacher sees the feedback: auto (the strategy the hindsight probe measures "
                             "best before training), chat, chat-turn, fim or template (docs/trainer.md)")
    template: str | None = setting(None, lambda v: v is None or isinstance(v, str), "a format string",
                                   "format string with {prompt}, {feedback} and optionally {completion}, for "
                                   "hindsight='template'")
    alpha: float = setting(0.0, lambda v: _is_num(v) and 0.0 <= v <= 1.0, "a number in [0, 1]",
                           "divergence mix: 0 = forward KL(T‖S), 1 = reverse KL(S‖T), between = generalised JSD")
    top_k: int = setting(100, lambda v: _is_int(v, 0), "an integer ≥ 0",
                         "distil over the student's top-K tokens plus one tail bucket; 0 = full vocabulary")
    lr: float | None = setting(None, lambda v: v is None or (_is_num(v) and v > 0),
                               "a positive number (or unset: chosen by the model's width)",
                               "None = by the model's width: 1e-4 at hidden size 4096, scaled by 4096 / width "
                               "(muP), within [1e-5, 2e-3]")
    weight_decay: float = setting(0.0, lambda v: _is_num(v) and v >= 0, "a number ≥ 0", "AdamW weight decay")
    warmup_ratio: float = setting(0.05, lambda v: _is_num(v) and 0.0 <= v < 1.0, "a number in [0, 1)",
                                  "share of the steps spent warming the learning rate up (then cosine to 10 %)")
    max_grad_norm: float = setting(1.0, lambda v: _is_num(v) and v > 0, "a positive number", "gradient clipping")
    max_steps: int | None = setting(None, lambda v: v is None or _is_int(v, 1),
                                    "a positive integer (or unset: follow the data)",
                                    "optimizer steps; None = follow the data (see `epochs`)")
    epochs: int | None = setting(None, lambda v: v is None or _is_int(v, 1),
                                 "a positive integer (or unset: follow the data)",
                                 "passes over the data; None = at least 3 passes and 40 steps, at most 300 steps")
    batch_size: int = setting(8, lambda v: _is_int(v, 1), "an integer ≥ 1",
                              "records per optimizer step (the effective batch, whatever the micro-batches are)")
    micro_batch: int | None = setting(None, lambda v: v is None or _is_int(v, 1),
                                      "a positive integer (or unset: planned)",
                                      "records per forward pass; None = planned from the model, the data and "
                                      "free memory (`plan.py`)")
    max_memory: str | None = setting(None, _is_size, "a size such as \"22GiB\" (or unset: 90 % of free memory)",
                                     "memory the run may use, e.g. \"22GiB\"; None = 90 % of what is free")
    quantize: str | None = setting(None, lambda v: v is None or v in QUANTIZE,
                                   f"one of {list(QUANTIZE)} (or unset)",
                                   "\"4bit\" or \"8bit\": QLoRA, the frozen base quantized by bitsandbytes (CUDA)")
    lora_r: int = setting(16, lambda v: _is_int(v, 1), "an integer ≥ 1", "LoRA rank")
    lora_alpha: int = setting(32, lambda v: _is_int(v, 1), "an integer ≥ 1", "LoRA scale numerator")
    lora_dropout: float = setting(0.0, lambda v: _is_num(v) and 0.0 <= v < 1.0, "a number in [0, 1)",
                                  "dropout on the LoRA input")
    lora_targets: tuple[str, ...] | None = setting(None, lambda v: v is None or _is_names(v),
                                                   "a list of module names",
                                                   "module names to adapt; None = every attention and MLP "
                                                   "projection")
    seed: int = setting(0, lambda v: _is_int(v, 0), "an integer ≥ 0", "seeds the schedule, LoRA init and samples")
    max_length: int = setting(1024, lambda v: _is_int(v, 16), "an integer ≥ 16 (tokens)",
                              "tokens per sequence (prompt + completion); feedback, then the oldest prompt text, "
                              "are cut to fit")
    max_feedback_chars: int = setting(2000, lambda v: _is_int(v, 1), "an integer ≥ 1",
                                      "the hindsight text is cut to this many characters, by whole items")
    use_passed_anchors: bool = setting(True, _is_bool, _BOOL,
                                       "records whose feedback only says \"passed\" are kept as anchors "
                                       "(teacher = student context)")
    probe_records: int = setting(16, lambda v: _is_int(v, 0), "an integer ≥ 0",
                                 "failed records the hindsight probe answers again before training, with the "
                                 "feedback shown each way the record allows (`probe.py`); 0 = no probe")
    use_revisions: bool = setting(True, _is_bool, _BOOL,
                                  "self-distill also scores the hindsight teacher's own greedy rewrite of each "
                                  "failed attempt, in the same step as the attempt (`revisions.py`)")
    is_clip: float = setting(2.0, lambda v: _is_num(v) and v >= 1, "a number ≥ 1",
                             "clip of the importance weight exp(logp - logp_old) of records another adapter "
                             "sampled")
    checkpoint_every: int = setting(0, lambda v: _is_int(v, 0), "an integer ≥ 0",
                                    "write a resumable checkpoint every N optimizer steps; 0 = never")
    gradient_checkpointing: bool | None = setting(None, lambda v: v is None or isinstance(v, bool),
                                                  "true, false (or unset: planned)",
                                                  "None = planned (on only when the smallest micro-batch would "
                                                  "not fit otherwise)")
    append_eos: bool = setting(True, _is_bool, _BOOL,
                               "append the tokenizer's eos to completions we tokenize ourselves (where to stop)")
    revision_max_new_tokens: int = setting(256, lambda v: _is_int(v, 1), "an integer ≥ 1",
                                           "tokens a teacher's rewrite may take (never more than the attempt "
                                           "was allowed)")
    gate_max_ppl_increase: float = setting(0.02, lambda v: _is_num(v) and v >= 0, "a fraction ≥ 0",
                                           "the gate refuses an adapter that raises perplexity on human-written "
                                           "code by more than this fraction")
    gate_human_code: tuple[str, ...] = setting(("*.py",), _is_names,
                                               "a list of git pathspecs, e.g. [\"src/**/*.py\"]",
                                               "git pathspecs of the human-written code the gate samples")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not f.metadata["ok"](value):
                _bad(f.name, value, f.metadata["expected"])
        if self.template is not None:
            check_template(self.template)
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
        """Build from a `[tool.redline.train]` table or a saved `train_config.json`; unknown keys are errors, and so
        is a removed setting, unless it is at its old default (see `INERT`)."""
        merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        for problem in _removed(merged):
            raise ConfigError(problem, fix="see docs/trainer.md")
        merged = {k: v for k, v in merged.items() if k not in INERT}
        unknown = sorted(set(merged) - set(setting_names()))
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


def setting_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def setting_help() -> dict[str, str]:
    """Each setting's one-line help, in declaration order (docs/trainer.md's table holds the same names)."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}


def _removed(mapping: dict[str, Any]) -> list[str]:
    """One line per removed setting (not at its old default) or removed method in `mapping`."""
    problems = [f"trainer setting `{key}` was removed: {REMOVED[key]}" for key in sorted(mapping)
                if key in REMOVED and not (key in INERT and _same(mapping[key], INERT[key]))]
    method = mapping.get("method")
    if isinstance(method, str) and method in REMOVED_METHODS:
        problems.append(f"trainer method `{method}` was removed: {REMOVED_METHODS[method]}")
    return problems


def _same(value: Any, default: Any) -> bool:
    return value == default and isinstance(value, bool) == isinstance(default, bool)


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
    names = setting_names()
    problems = _removed(mapping)
    for key in sorted(set(mapping) - set(names) - set(REMOVED)):
        close = difflib.get_close_matches(key, names, n=1)
        problems.append(f"unknown trainer setting `{key}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
    known = {k: v for k, v in mapping.items() if k in names and not (k == "method" and v in REMOVED_METHODS)}
    for key, value in known.items():  # each setting alone against the defaults, so every bad one is named
        try:
            TrainConfig.from_dict({key: value})
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


def _bad(name: str, value: Any, expected: str) -> None:
    raise ConfigError(f"trainer setting `{name}` = {value!r} is invalid: expected {expected}",
                      fix="see docs/trainer.md")
