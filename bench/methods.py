"""Training variants kept for experiments, outside the product: each is a `redline.trainer.methods.Method`, passed to
`train(..., method=...)` by the learning benchmark (`bench/learning.py --methods scalar`, `--train teacher=ema`).

- `scalar`: best-of-k rejection sampling — `scalar_k` samples per prompt from the student, SFT on those a checker
  passes (needs the checker: a Python function, so never offered by the CLI);
- `sft-edit`: SFT on the human's correction, where a record has one;
- self-distillation with the EMA teacher (SDPO's default: a second LoRA adapter on the same base weights, kept at
  an exponential moving average of the student's, `teacher = "ema"`, `ema_rate`) and/or on-policy resampling
  (`on_policy_ratio` of each batch's attempts re-sampled from the current student and scored by the same
  hindsight teacher).

Each was measured on the learning benchmark and not adopted (README; docs/trainer.md).

    from bench.methods import method_for
    train(model, examples, out, TrainConfig(...), method=method_for("self-distill", {"teacher": "ema"}))
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import torch

from redline.errors import ConfigError
from redline.prompts import encode, student_prompt_ids
from redline.trainer.contexts import Pair, Rendering
from redline.trainer.data import TrainingExample
from redline.trainer.errors import TrainError
from redline.trainer.feedback_text import correction_of
from redline.trainer.generation import decode, sample_ids
from redline.trainer.methods import (
    METHODS,
    Method,
    Run,
    Scored,
    SelfDistill,
    Sft,
    distill_loss,
    sft_pair,
    teacher_tokens,
)
from redline.trainer.revisions import rewrite_budget

log = logging.getLogger("redline.bench")

Checker = Callable[[TrainingExample, str], bool]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


#: the variants' settings: name → (default, check, what an error says is expected)
SETTINGS: dict[str, tuple[Any, Callable[[Any], bool], str]] = {
    "teacher": ("base", lambda v: v in ("base", "ema"), "'base' or 'ema'"),
    "ema_rate": (0.05, lambda v: _number(v) and 0.0 < v <= 1.0, "a number in (0, 1]"),
    "on_policy_ratio": (0.0, lambda v: _number(v) and 0.0 <= v <= 1.0, "a fraction in [0, 1]"),
    "scalar_k": (4, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer ≥ 1"),
    "scalar_temperature": (1.0, lambda v: _number(v) and v > 0, "a positive number"),
}
#: every method the bench can run: the product's and its own
NAMES = (*METHODS, "sft-edit", "scalar")


def method_for(name: str, settings: dict[str, Any] | None = None, *, checker: Checker | None = None) -> Method:
    """The method called `name`, with the variant settings that apply to it (each checked; the others are
    ignored, as every setting is given to every method of a benchmark run)."""
    values = {key: default for key, (default, _, _) in SETTINGS.items()}
    for key, value in (settings or {}).items():
        if key not in SETTINGS:
            raise ConfigError(f"unknown bench setting `{key}`", fix=f"use one of {sorted(SETTINGS)}")
        if not SETTINGS[key][1](value):
            raise ConfigError(f"bench setting `{key}` = {value!r} is invalid: expected {SETTINGS[key][2]}",
                              fix="see bench/methods.py")
        values[key] = value
    if name not in NAMES:
        raise ConfigError(f"unknown method {name!r}", fix=f"use one of {list(NAMES)}")
    if values["on_policy_ratio"] and name != "self-distill":
        raise ConfigError(f"bench setting `on_policy_ratio` = {values['on_policy_ratio']!r} is invalid: expected 0 "
                          "unless the method is self-distill", fix="see bench/methods.py")
    if name == "scalar":
        return Scalar(checker, k=values["scalar_k"], temperature=values["scalar_temperature"])
    if name == "sft-edit":
        return SftEdit()
    if name == "self-distill" and (values["teacher"] != "base" or values["on_policy_ratio"]):
        return SelfDistillVariant(teacher=values["teacher"], ema_rate=values["ema_rate"],
                                  on_policy_ratio=values["on_policy_ratio"])
    return METHODS[name]()


# -- SFT baselines -----------------------------------------------------------------------------------------------


class SftEdit(Sft):
    """SFT on the most recent human correction of each record that has one."""

    name = "sft-edit"
    fix_when_empty = "records need human edits (`edit` feedback with the corrected text)"

    def sequences(self, model: Any, examples: Sequence[TrainingExample], run: Run
                  ) -> tuple[list[Pair], dict[str, Any]]:
        tok, rendering, eos = run.tokenizer, Rendering.of(run.config), run.tokenizer.eos_token_id
        pairs = []
        for i, ex in enumerate(examples):
            text = correction_of(ex.feedback)
            if text is None:
                continue
            ids = encode(tok, text, False)
            if run.config.append_eos and eos is not None and (not ids or ids[-1] != eos):
                ids = [*ids, eos]
            if (pair := sft_pair(tok, i, ex, ids, rendering)) is not None:
                pairs.append(pair)
        return pairs, {}


class Scalar(Sft):
    """Best-of-k: `k` samples per prompt from the student, SFT on those `checker(example, text)` passes."""

    name = "scalar"

    def __init__(self, checker: Checker | None, *, k: int = 4, temperature: float = 1.0) -> None:
        if checker is None:
            raise TrainError("method `scalar` needs a checker to tell passing samples from failing ones",
                             fix="pass checker=(example, text) -> bool, or use another method")
        self.checker, self.k, self.temperature = checker, k, temperature
        self.fix_when_empty = f"no sample passed the checker: raise scalar_k (now {k}) or collect more records"

    def sequences(self, model: Any, examples: Sequence[TrainingExample], run: Run
                  ) -> tuple[list[Pair], dict[str, Any]]:
        tok, rendering = run.tokenizer, Rendering.of(run.config)
        pairs, tried = [], 0
        for i, ex in enumerate(examples):
            prompt = student_prompt_ids(tok, ex.generation)
            budget = rewrite_budget(ex, run.config, len(prompt))
            for ids in sample_ids(model, tok, prompt, max_new_tokens=budget, greedy=False, n=self.k,
                                  temperature=self.temperature):
                tried += 1
                if self.checker(ex, decode(tok, ids)) and (pair := sft_pair(tok, i, ex, ids, rendering)) is not None:
                    pairs.append(pair)
        log.info("scalar: %d of %d samples passed the checker", len(pairs), tried)
        return pairs, {}


# -- self-distillation with a teacher or data that change during training ----------------------------------------


class SelfDistillVariant(SelfDistill):
    """Self-distillation with the EMA teacher (`teacher = "ema"`) and/or on-policy resampling."""

    def __init__(self, *, teacher: str = "base", ema_rate: float = 0.05, on_policy_ratio: float = 0.0) -> None:
        self.teacher, self.ema_rate, self.on_policy_ratio = teacher, ema_rate, on_policy_ratio
        self.name = "self-distill" + (f", EMA teacher {ema_rate}" if teacher == "ema" else "") + (
            f", on-policy {on_policy_ratio}" if on_policy_ratio else "")
        self.caches_teacher = teacher == "base"  # the EMA teacher changes every step: it runs live
        self.ema: EmaTeacher | None = None

    def start(self, model: Any, run: Run) -> None:
        if self.teacher == "ema":
            self.ema = EmaTeacher(model, self.ema_rate)

    def batches(self, model: Any, batches: list[list[Pair]], step: int, run: Run) -> list[list[Pair]]:
        if not self.on_policy_ratio:
            return batches
        return [on_policy(model, run.tokenizer, b, run.config.seed, run.config.max_length, step,
                          self.on_policy_ratio) for b in batches]

    def loss(self, model: Any, pairs: Sequence[Pair], run: Run) -> Scored:
        loss, kl, n = distill_loss(model, pairs, run.config, run.tokenizer.pad_token_id, run.parent_version,
                                   teacher=self.ema.active if self.ema is not None else None)
        live = self.ema is not None or any(p.teacher_hidden is None for p in pairs)
        return Scored(loss, kl, n, teacher_tokens(pairs) if live else 0)

    def end_step(self) -> None:
        if self.ema is not None:
            self.ema.update()

    def state(self) -> Any:
        return {"ema": self.ema.state_dict()} if self.ema is not None else None

    def restore(self, state: Any) -> None:
        if self.ema is not None and state is not None:
            self.ema.load_state_dict(state["ema"])


def on_policy(model: Any, tokenizer: Any, pairs: Sequence[Pair], seed: int, max_length: int, step: int,
              ratio: float) -> list[Pair]:
    """Replace a `ratio` share of the attempts with fresh samples from the current student.

    Which pairs are resampled depends only on (seed, step), and sampling uses the checkpointed torch RNG, so a
    resumed run resamples exactly what an uninterrupted one would."""
    rng = random.Random(seed * 7919 + step)
    out = []
    for p in pairs:
        if p.anchor or p.rewrite or rng.random() >= ratio:  # only attempts are re-sampled
            out.append(p)
            continue
        budget = max(1, min(max_length - max(len(p.student_ids), len(p.teacher_ids)), 2 * len(p.completion_ids) + 8))
        fresh = sample_ids(model, tokenizer, p.student_ids, max_new_tokens=budget, greedy=False)[0]
        out.append(replace(p, completion_ids=fresh, old_logprobs=None, teacher_hidden=None) if fresh else p)
    return out


#: the student's LoRA adapter and the EMA copy beside it, on the same base weights
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
