"""The learning benchmark, small: self-distilling 16 feedback records must make the tiny model solve new tasks of the
same repository that it could not solve before (`bench/learning.py`, one cell, fixed seeds)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

pytest.importorskip("torch")

from bench.learning import run_cell
from bench.world import make_records, make_repos, pass_rate


@pytest.mark.slow
def test_self_distillation_learns_new_tasks_without_forgetting(tmp_path: Path, world_model: Path) -> None:
    import torch

    torch.set_num_threads(2)
    model = world_model
    repo = make_repos(1, 0)[0]
    repo.heldout_tasks = repo.heldout_tasks[:48]
    repo.unchanged_tasks = repo.unchanged_tasks[:48]
    base_heldout = pass_rate(model, None, repo, repo.heldout_tasks)
    base_unchanged = pass_rate(model, None, repo, repo.unchanged_tasks)
    records = make_records(model, repo, 16, seed=0)
    assert any(f.kind != "accept" for _, fbs in records for f in fbs)  # there is feedback to learn from
    args = argparse.Namespace(train=None)  # the trainer's defaults
    cell = run_cell(model, repo, 0, 16, "self-distill", records, tmp_path, args)
    # measured: base 0 % → 70-80 % on new tasks; a trainer whose teacher ignored the feedback (or whose loss did
    # not reach the adapter) stays at the base model's rate
    assert cell.heldout >= base_heldout + 0.30, (base_heldout, cell)
    assert cell.unchanged >= base_unchanged - 0.20, (base_unchanged, cell)
