"""A synthetic coding world for measuring whether feedback becomes a better model.

Many repositories share one small API; each changes a few of its conventions (renames, banned names, argument
order, required keyword arguments and wrappers, style rules, constants). A checker answers attempts in the voices
of real tools; a tiny Llama-style model, pretrained here on CPU, writes default-convention code and can use
feedback given in context. See README.md.

Torch is imported only by the functions that need a model (`build_or_load_model`, `pass_rate`, `make_records`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.world.api import APIS, Change
from bench.world.checker import CheckResult, Finding
from bench.world.hindsight import HINDSIGHT_TEMPLATE, render_feedback
from bench.world.repos import Repo, check, make_repos
from bench.world.tasks import Task

if TYPE_CHECKING:
    from redline.records import Feedback, Generation


def build_or_load_model(cache_dir: str | Path | None = None, **overrides: Any) -> Path:
    """Path of the tiny base model (HF format): the committed one, or pretrained into `cache_dir` if missing."""
    from bench.world.pretrain import build_or_load_model as build

    return build(cache_dir, **overrides)


def pass_rate(model_path: str | Path, adapter_dir: str | Path | None, repo: Repo, tasks: list[Task],
              hindsight: bool = False) -> float:
    """Greedy pass rate on `tasks`; `hindsight=True` gives the teacher ceiling (one retry with feedback)."""
    from bench.world.evaluate import pass_rate as rate

    return rate(model_path, adapter_dir, repo, tasks, hindsight=hindsight)


def make_records(model_path: str | Path, repo: Repo, n: int, seed: int = 0, *, temperature: float = 0.0,
                 adapter_dir: str | Path | None = None, kept: int = 0) -> list[tuple[Generation, list[Feedback]]]:
    """The model's attempts on `n` train tasks of `repo`, with the checker's feedback, as Redline records (and
    `kept` more of code kept as written: see `bench.world.records.make_records`)."""
    from bench.world.records import make_records as make

    return make(model_path, repo, n, seed, temperature=temperature, adapter_dir=adapter_dir, kept=kept)


__all__ = ["APIS", "HINDSIGHT_TEMPLATE", "Change", "CheckResult", "Finding", "Repo", "Task", "build_or_load_model",
           "check", "make_records", "make_repos", "pass_rate", "render_feedback"]
