"""A small realistic Python repository with rules of its own, for SmolLM2-135M-Instruct (issue #26).

`app/` holds a helpers module (`read_json`, `write_json`, `log`, `join_path`, `now_utc`, `setting`, `ensure_dir`,
`read_text`, `write_text`) and modules of small functions; a linter enforces the repository's rules (RL101-RL108,
printed in ruff's JSON format) and unit tests really run each attempt in a child process. Tasks are functions to
write, prompted as an editor plugin would prompt a model without FIM tokens: the file's prefix down to the `def`
line and its docstring. Same API as `bench.world`; see README.md.

Torch is imported only by the functions that need a model (`build_or_load_model`, `pass_rate`, `make_records`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.realrepo.checker import CheckResult, Finding, check
from bench.realrepo.repos import Repo, make_repos
from bench.realrepo.rules import RULES, Names, Rule
from bench.realrepo.tasks import Task

if TYPE_CHECKING:
    from redline.records import Feedback, Generation


def render_feedback(findings: tuple[Finding, ...] | list[Finding]) -> str:
    """The findings as the trainer's teacher reads them (`redline.trainer.feedback_text.aggregate`)."""
    from bench.realrepo.records import finding_feedback
    from redline.trainer.feedback_text import aggregate

    return aggregate([finding_feedback(f) for f in findings])


def build_or_load_model(cache_dir: str | Path | None = None) -> Path:
    """The cached SmolLM2-135M-Instruct build (`python -m bench.smollm2 --build` makes it)."""
    from bench.smollm2 import build_or_load

    return build_or_load(cache_dir)


def pass_rate(model_path: str | Path, adapter_dir: str | Path | None, repo: Repo, tasks: list[Task],
              hindsight: bool = False) -> float:
    """Greedy pass rate (lint and tests) on `tasks`; `hindsight=True` gives the teacher ceiling."""
    from bench.realrepo.evaluate import pass_rate as rate

    return rate(model_path, adapter_dir, repo, tasks, hindsight=hindsight)


def make_records(model_path: str | Path, repo: Repo, n: int, seed: int = 0, *, temperature: float = 0.0,
                 adapter_dir: str | Path | None = None, kept: int = 0, corrections: bool = False,
                 prompt_format: str = "raw") -> list[tuple[Generation, list[Feedback]]]:
    """SmolLM2's attempts at `n` train tasks of `repo` with the checker's feedback (and, with `corrections`, the
    human's correction of each failing one; `kept` more of code kept as written), as Redline records."""
    from bench.realrepo.records import make_records as make

    return make(model_path, repo, n, seed, temperature=temperature, adapter_dir=adapter_dir, kept=kept,
                corrections=corrections, prompt_format=prompt_format)


__all__ = ["RULES", "CheckResult", "Finding", "Names", "Repo", "Rule", "Task", "build_or_load_model", "check",
           "make_records", "make_repos", "pass_rate", "render_feedback"]
