"""World 2: a second synthetic coding world, built independently of `bench.world`, with the same Python API.

Repositories of a tiny web/data framework each change a few conventions of a *different kind* from world 0's:
a required decorator or first statement, raise-vs-return-None, a parameter's name, milliseconds vs seconds, an
import path, a helper instead of an inline idiom, a required context manager, a banned `print`, the return shape.
A checker answers attempts as pytest, ruff, mypy and a reviewer would; the tiny model is a Llama over SmolLM2's
real BPE tokenizer, and the world's prompts are chat messages (so the trainer's `chat` hindsight path is used).
See README.md.

Torch is imported only by the functions that need a model (`build_or_load_model`, `pass_rate`, `make_records`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.world2.api import CHANGE_KINDS, STEPS, Change
from bench.world2.checker import CheckResult, Finding
from bench.world2.hindsight import FEEDBACK_TURNS, HINDSIGHT, render_feedback, teacher_messages
from bench.world2.repos import Repo, check, make_repos
from bench.world2.tasks import Task

if TYPE_CHECKING:
    from redline.records import Feedback, Generation


def model_missing() -> str | None:
    """Why the committed model is not here (None when it is): `bench/learning.py --worlds` skips the world then
    instead of pretraining it (about 40 minutes on two dedicated cores) at run time."""
    from bench.world2.pretrain import MODEL_DIR, verify

    if verify(MODEL_DIR):
        return None
    return (f"no model at {MODEL_DIR} (build it once: `python -m bench.world2.pretrain --stages --out {MODEL_DIR}`, "
            "about 40 minutes of two dedicated cores)")


def build_or_load_model(cache_dir: str | Path | None = None) -> Path:
    """Path of the tiny base model (HF format): the committed one, or pretrained into `cache_dir` if missing."""
    from bench.world2.pretrain import build_or_load_model as build

    return build(cache_dir)


def pass_rate(model_path: str | Path, adapter_dir: str | Path | None, repo: Repo, tasks: list[Task],
              hindsight: bool = False) -> float:
    """Greedy pass rate on `tasks`; `hindsight=True` gives the teacher ceiling (one retry in the context Redline's
    chat teacher sees)."""
    from bench.world2.evaluate import pass_rate as rate

    return rate(model_path, adapter_dir, repo, tasks, hindsight=hindsight)


def make_records(model_path: str | Path, repo: Repo, n: int, seed: int = 0, *, temperature: float = 0.0,
                 adapter_dir: str | Path | None = None, kept: int = 0) -> list[tuple[Generation, list[Feedback]]]:
    """The model's attempts on `n` train tasks of `repo`, with the checker's feedback, as Redline records with chat
    prompts (and `kept` more of code kept as written: see `bench.world2.records.make_records`)."""
    from bench.world2.records import make_records as make

    return make(model_path, repo, n, seed, temperature=temperature, adapter_dir=adapter_dir, kept=kept)


__all__ = ["CHANGE_KINDS", "FEEDBACK_TURNS", "HINDSIGHT", "STEPS", "Change", "CheckResult", "Finding", "Repo", "Task",
           "build_or_load_model", "check", "make_records", "make_repos", "model_missing", "pass_rate",
           "render_feedback", "teacher_messages"]
