"""The learning benchmark, small: self-distilling 16 feedback records must make the tiny model solve new tasks of the
same repository that it could not solve before (`bench/learning.py`, one cell, fixed seeds)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

pytest.importorskip("torch")

from bench.learning import Cell, broken_unchanged, paired, run_cell, split_by_shown
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


def test_paired_table_tells_a_real_gap_from_the_spread_between_runs() -> None:
    """A method ahead in every run gets an interval above 0; one that trades wins and losses run by run gets an
    interval across 0, though the two means differ; unchanged APIs are read against each repository's base."""
    baseline = {"r0": {"unchanged": 0.9}, "r1": {"unchanged": 0.8}}
    cells = []
    for i, (repo, seed) in enumerate((r, s) for r in baseline for s in range(3)):
        cells += [Cell(repo, seed, 16, "a", 0.60 + 0.01 * i, baseline[repo]["unchanged"] - 0.05),
                  Cell(repo, seed, 16, "b", 0.50 + 0.01 * i, baseline[repo]["unchanged"]),
                  Cell(repo, seed, 16, "c", 0.60 + (0.3 if i % 2 else -0.28), 0.0)]
    row = paired(baseline, cells, [16], ["a", "b", "c"])[-1].split(" | ")
    ahead, mixed, a_unchanged, b_unchanged = row[1], row[2], row[3], row[4]
    assert ahead == "+10.0 pts [+10.0, +10.0]"
    assert mixed.startswith("+1.5 pts [-") and ", +" in mixed  # a mean gap inside the spread
    assert a_unchanged == "-5.0 pts [-5.0, -5.0]" and b_unchanged == "+0.0 pts [+0.0, +0.0]"


def test_new_tasks_are_split_by_whether_the_records_touched_their_changed_apis() -> None:
    from types import SimpleNamespace

    repo = make_repos(1, 0)[0]
    one = sorted(repo.changed)[0]
    record = (SimpleNamespace(meta={"structure": [one, "return"]}), [])
    ok = [i % 3 == 0 for i in range(len(repo.heldout_tasks))]
    split = split_by_shown(repo, [record], ok)
    shown = [i for i, t in enumerate(repo.heldout_tasks) if repo.changed & set(t.apis) <= {one}]
    assert shown and len(shown) < len(ok)  # the world has tasks of both kinds
    assert split["heldout_shown"] == [sum(ok[i] for i in shown), len(shown)]
    assert split["heldout_unshown"] == [sum(ok) - sum(ok[i] for i in shown), len(ok) - len(shown)]


def test_broken_unchanged_lists_what_the_adapter_broke_as_the_lines_that_differ(monkeypatch: pytest.MonkeyPatch,
                                                                              tmp_path: Path) -> None:
    import bench.world.evaluate as evaluate

    repo = make_repos(1, 0)[0]
    repo.unchanged_tasks = repo.unchanged_tasks[:3]
    right = [repo.solution(t) for t in repo.unchanged_tasks]
    wrong = right[1].replace("a = ", "a = not_an_api(", 1).replace("\n", ")\n", 1)
    answers = {None: right, tmp_path: [right[0], wrong, "syntax error ("]}
    monkeypatch.setattr(evaluate, "attempts", lambda model, adapter, repo, tasks: [(c, []) for c in answers[adapter]])
    broken = broken_unchanged(tmp_path / "model", tmp_path, repo)
    assert [comment for comment, _ in broken] == [repo.unchanged_tasks[i].prompt.splitlines()[0] for i in (1, 2)]
    first_line = right[1].splitlines()[0]
    assert broken[0][1] == [f"- {first_line}", f"+ {wrong.splitlines()[0]}"]
