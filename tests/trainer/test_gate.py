"""The gate promotes only a change in behaviour beyond noise, and refuses what cannot be judged or forgets.

Real learning needs a model that uses feedback in context: the committed world model (bench/world) and its
checker's records. The random tiny model is the "random weights" case."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
from conftest import failing, raw_generation

from redline.records import Feedback
from redline.trainer.api import TrainConfig, TrainingExample, train
from redline.trainer.gate import (
    FIXES,
    RETENTION,
    GateReport,
    GateThresholds,
    _Stats,
    evaluate_gate,
    gate_records,
)

pytest.importorskip("bench.world")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """(model, train examples, held-out examples): 24 failed/passed attempts to train on; held out: 16 other
    attempts on changed APIs (mostly failed) and 8 on unchanged APIs (mostly accepted)."""
    import torch

    from bench.world import make_records, make_repos
    from bench.world.pretrain import MODEL_DIR, verify

    if not verify(MODEL_DIR):
        pytest.skip("the committed tiny model (bench/world/model) is missing")
    torch.set_num_threads(1)
    repo = make_repos(1, 0)[0]
    recs = make_records(MODEL_DIR, repo, 40, seed=0)
    unchanged = copy.copy(repo)
    unchanged.train_tasks = repo.unchanged_tasks
    passed = make_records(MODEL_DIR, unchanged, 8, seed=0)

    def held(rs):  # type: ignore[no-untyped-def]
        return [TrainingExample(dataclasses.replace(g, split="heldout"), fbs) for g, fbs in rs]

    return MODEL_DIR, [TrainingExample(g, fbs) for g, fbs in recs[:24]], held(recs[24:]) + held(passed)


def _template() -> dict[str, str]:
    from bench.world import HINDSIGHT_TEMPLATE

    return {"hindsight": "template", "template": HINDSIGHT_TEMPLATE}


def _row(report: GateReport, metric: str) -> dict:
    return next(r for r in report.rows if r["metric"] == metric)


@pytest.mark.slow
def test_gate_promotes_an_adapter_that_learnt_from_feedback(world, tmp_path: Path) -> None:
    model, train_set, heldout = world
    out = tmp_path / "good"
    train(model, train_set, out, TrainConfig(**_template()), progress=False)  # defaults: 40 steps
    report = evaluate_gate(model, out, heldout, human_texts=[])
    assert report.passed, report.table()
    fixes = _row(report, FIXES)
    assert fixes["ok"] and fixes["ci_low"] > 0 and fixes["after"] > fixes["before"]
    assert any("perplexity guard skipped" in n for n in report.notes)  # said, not silently skipped


@pytest.mark.slow
def test_lr_zero_is_refused_and_a_tiny_lr_changes_nothing_beyond_noise(world, tmp_path: Path) -> None:
    from redline.errors import ConfigError

    with pytest.raises(ConfigError, match="`lr` = 0"):
        TrainConfig(lr=0)
    model, train_set, heldout = world
    out = tmp_path / "tiny-lr"
    train(model, train_set, out, TrainConfig(**_template(), lr=1e-9, max_steps=2), progress=False)
    report = evaluate_gate(model, out, heldout, human_texts=[])
    assert not report.passed
    assert any(r.startswith(f"{FIXES} did not rise beyond noise") for r in report.reasons), report.reasons


@pytest.mark.slow
def test_random_weights_are_refused_with_the_reason(tiny_model: Path, tmp_path: Path) -> None:
    msg = "test failed: add(1, 2) returned 4, expected 3; use a + b"
    gens = [raw_generation(i) for i in range(8)]
    out = tmp_path / "random"
    train(tiny_model, [TrainingExample(g, failing(g, msg)) for g in gens], out,
          TrainConfig(max_steps=3, lr=1e-2, batch_size=4), progress=False)
    held = [raw_generation(100 + i, split="heldout") for i in range(6)]
    report = evaluate_gate(tiny_model, out, [TrainingExample(g, failing(g, msg)) for g in held], human_texts=[])
    assert not report.passed
    assert any("no better than chance" in r and "random" in r for r in report.reasons), report.reasons


@pytest.mark.slow
def test_an_adapter_that_forgets_passed_records_is_refused_without_human_code(world, tmp_path: Path) -> None:
    """Trained on purpose to forget: human "edits" that replace every attempt with junk. The repository has no
    human code, so only the retention check on held-out passed records can catch it."""
    model, train_set, heldout = world
    junk = "pass  # " + "x" * 40 + "\n"
    forget = [TrainingExample(ex.generation, [Feedback(kind="edit", source="review", correction=junk,
                                                      generation_id=ex.generation.id)]) for ex in train_set]
    out = tmp_path / "forget"
    train(model, forget, out, TrainConfig(**_template(), method="sft-edit", max_steps=20), progress=False)
    report = evaluate_gate(model, out, heldout, repo_root=tmp_path)  # no git repo here: no human code
    assert not report.passed
    assert not _row(report, RETENTION)["ok"], report.table()
    assert any(r.startswith(RETENTION) and "forgets" in r for r in report.reasons), report.reasons
    assert any("perplexity guard skipped" in n for n in report.notes), report.notes


def test_paired_interval_calls_a_change_within_noise_no_change() -> None:
    stats = _Stats(GateThresholds())
    assert stats.interval([0.0] * 10) == (0.0, 0.0)
    low, high = stats.interval([0.3, -0.3, 0.25, -0.2, 0.1, -0.15, 0.05, -0.05])  # mean ≈ 0, noisy
    assert low < 0 < high
    low, _ = stats.interval([0.2, 0.3, 0.25, 0.4, 0.1, 0.35, 0.3, 0.2])  # every record improved
    assert low > 0.15


def test_human_code_sample_follows_the_pathspecs(tmp_path: Path) -> None:
    import subprocess

    from redline.trainer.gate import default_human_texts

    for rel, text in {"src/a b.py": "def team(): pass\n", "tests/test_x.py": "def test(): pass\n",
                      "web/app.ts": "export const x = 1;\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    assert default_human_texts(tmp_path, 16, ["src/"]) == ["def team(): pass\n"]  # a name with a space, too
    assert sorted(default_human_texts(tmp_path, 16)) == ["def team(): pass\n", "def test(): pass\n"]
    assert default_human_texts(tmp_path, 16, ["*.ts"]) == ["export const x = 1;\n"]


def test_one_or_two_passed_records_are_not_a_verdict_on_forgetting() -> None:
    """Defect seen in bench/import_path.py: one held-out passed record whose log-prob fell a little was reported
    as "fell beyond noise" (an interval over one record is a point)."""
    report = GateReport()
    _Stats(GateThresholds()).row(report, RETENTION, [-0.0013], [-0.0051], "must not fall beyond noise", rise=False)
    assert report.rows[0]["ok"] and "too few" in report.notes[0]
    report = GateReport()
    before = [-0.1, -0.2, -0.15, -0.1, -0.12]
    _Stats(GateThresholds()).row(report, RETENTION, before, [b - 0.5 for b in before], "must not fall", rise=False)
    assert not report.rows[0]["ok"]


def test_many_accepted_records_do_not_crowd_the_mistakes_out_of_the_gate() -> None:
    kept = [TrainingExample(g, [Feedback(kind="accept", source="lsp.kept", message="kept", generation_id=g.id)])
            for g in (raw_generation(i, split="heldout") for i in range(100))]
    wrong = [TrainingExample(g, failing(g)) for g in (raw_generation(200 + i, split="heldout") for i in range(5))]
    chosen = gate_records(kept + wrong, 64)
    assert chosen[:5] == wrong and chosen[5:] == kept[:64]
