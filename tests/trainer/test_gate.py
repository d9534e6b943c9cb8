"""The gate judges behaviour: the held-out prompts answered again, each answer rechecked by what drew its red line.

Real learning needs a model that uses feedback in context: the committed world model (bench/world) and its
checker's records, whose findings carry the world's checker as a command to rerun. The random tiny model is the
"random weights" case."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
from conftest import failing, raw_generation

from redline.records import Feedback
from redline.trainer.api import TrainConfig, TrainingExample, train
from redline.trainer.gate import (
    FIXED,
    KEPT,
    GateReport,
    GateThresholds,
    _paired_row,
    bootstrap_interval,
    evaluate_gate,
    gate_records,
)

pytest.importorskip("bench.world")
TF_RETENTION = "log-prob of accepted answers (info)"


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


@pytest.fixture(scope="module")
def learnt(world, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    model, train_set, _ = world
    out = tmp_path_factory.mktemp("gate") / "good"
    train(model, train_set, out, TrainConfig(), progress=False)  # the defaults, nothing set
    return out


def _row(report: GateReport, metric: str) -> dict:
    row = report.row(metric)
    assert row is not None, report.table()
    return row


@pytest.mark.slow
def test_gate_promotes_an_adapter_whose_answers_no_longer_draw_the_red_lines(world, learnt: Path) -> None:
    model, _, heldout = world
    report = evaluate_gate(model, learnt, heldout, human_texts=[])
    assert report.passed and report.verdict == "promoted", report.table()
    fixed = _row(report, FIXED)
    assert fixed["ok"] and fixed["ci_low"] > 0 and fixed["after_count"] > fixed["before_count"]
    assert fixed["n"] >= 12 and any("world checker rerun" in how for how in report.judged_by)
    assert report.by_rule and sum(r["n"] for r in report.by_rule) == fixed["n"]
    assert any("perplexity guard skipped" in n for n in report.notes)  # said, not silently skipped
    line = report.summary("v0001")
    assert line.startswith(f"v0001 fixes {fixed['after_count']} of {fixed['n']} held-out red lines")
    assert line.endswith(": promoted")


@pytest.mark.slow
def test_a_tiny_learning_rate_changes_no_answer_and_is_not_promoted(world, tmp_path: Path) -> None:
    from redline.errors import ConfigError

    with pytest.raises(ConfigError, match="`lr` = 0"):
        TrainConfig(lr=0)
    model, train_set, heldout = world
    out = tmp_path / "tiny-lr"
    train(model, train_set, out, TrainConfig(lr=1e-9, max_steps=2), progress=False)
    report = evaluate_gate(model, out, heldout, human_texts=[])
    fixed = _row(report, FIXED)
    assert not report.passed and fixed["after_count"] == fixed["before_count"]
    assert any(r.startswith(f"{FIXED} did not rise beyond noise") for r in report.reasons), report.reasons


@pytest.mark.slow
def test_random_weights_are_refused_with_the_reason(tiny_model: Path, tmp_path: Path) -> None:
    msg = "test failed: add(1, 2) returned 4, expected 3; use a + b"
    gens = [raw_generation(i) for i in range(8)]
    out = tmp_path / "random"
    train(tiny_model, [TrainingExample(g, failing(g, msg)) for g in gens], out,
          TrainConfig(max_steps=3, lr=1e-2, batch_size=4), progress=False)
    held = [raw_generation(100 + i, split="heldout") for i in range(6)]
    report = evaluate_gate(tiny_model, out, [TrainingExample(g, failing(g, msg)) for g in held], human_texts=[])
    assert not report.passed and report.verdict == "refused"
    assert any("no better than chance" in r and "random" in r for r in report.reasons), report.reasons


@pytest.mark.slow
def test_an_adapter_that_breaks_accepted_answers_is_refused_without_human_code(world, tmp_path: Path) -> None:
    """Trained on purpose to forget: human "edits" that replace every attempt with junk. The repository has no
    human code, so only the accepted answers held out can catch it."""
    model, train_set, heldout = world
    junk = "pass  # " + "x" * 40 + "\n"
    forget = [TrainingExample(ex.generation, [Feedback(kind="edit", source="review", correction=junk,
                                                      generation_id=ex.generation.id)]) for ex in train_set]
    out = tmp_path / "forget"
    from bench.methods import method_for

    train(model, forget, out, TrainConfig(max_steps=40, lr=1e-2, probe_records=0), method=method_for("sft-edit"),
          progress=False)
    report = evaluate_gate(model, out, heldout, repo_root=tmp_path)  # no git repo here: no human code
    kept = _row(report, KEPT)
    assert not report.passed and not kept["ok"] and kept["after_count"] < kept["before_count"], report.table()
    assert any(r.startswith(KEPT) and "breaks what the base did right" in r for r in report.reasons)


@pytest.mark.slow
def test_sharper_confidence_with_the_same_answers_is_neither_promoted_nor_refused_for_it(world, tmp_path: Path
                                                                                         ) -> None:
    """An adapter that only scales the logits (every greedy answer the same, every probability sharper) moves the
    teacher-forced figures beyond noise; the gate reports them and decides on the answers alone."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model, _, heldout = world
    base = AutoModelForCausalLM.from_pretrained(str(model))
    hidden = base.config.hidden_size
    lora = LoraConfig(r=hidden, lora_alpha=hidden, target_modules=["lm_head"], init_lora_weights=False)
    peft = get_peft_model(base, lora)
    layer = peft.base_model.model.lm_head
    with torch.no_grad():
        layer.lora_A["default"].weight.copy_(torch.eye(hidden))
        layer.lora_B["default"].weight.copy_(0.5 * layer.base_layer.weight)  # logits × 1.5
    out = tmp_path / "sharper"
    peft.save_pretrained(str(out))
    report = evaluate_gate(model, out, heldout, human_texts=[])
    fixed, kept = _row(report, FIXED), _row(report, KEPT)
    assert fixed["after_count"] == fixed["before_count"] and kept["after_count"] == kept["before_count"]
    retention = _row(report, TF_RETENTION)
    assert retention["ci_low"] > 0 or retention["ci_high"] < 0, report.table()  # a proxy would have decided
    assert not report.passed
    assert report.reasons == [r for r in report.reasons if r.startswith(f"{FIXED} did not rise")], report.reasons


@pytest.mark.slow
def test_records_with_nothing_to_rerun_fall_back_and_say_so(world, learnt: Path) -> None:
    model, _, heldout = world
    bare = [TrainingExample(ex.generation, [dataclasses.replace(f, meta={}) for f in ex.feedback])
            for ex in heldout]
    report = evaluate_gate(model, learnt, bare, human_texts=[])
    assert not any("rerun" in how for how in report.judged_by), report.judged_by
    assert any("teacher's correction" in how or "criterion" in how for how in report.judged_by), report.judged_by


@pytest.mark.slow
def test_too_few_judged_records_is_not_judged_and_keeps_the_current_adapter(world, tmp_path: Path) -> None:
    model, train_set, heldout = world
    out = tmp_path / "few"
    train(model, train_set[:8], out, TrainConfig(max_steps=1, probe_records=0), progress=False)
    failed = [ex for ex in heldout if not ex.feedback[0].kind == "accept"][:3]
    report = evaluate_gate(model, out, failed, human_texts=[])
    assert report.verdict == "not judged" and not report.passed
    assert any(r.startswith("not judged: 3 held-out record(s)") and "need 8" in r for r in report.reasons)


def test_paired_interval_calls_a_change_within_noise_no_change() -> None:
    assert bootstrap_interval([0.0] * 10, tail=0.05) == (0.0, 0.0)
    low, high = bootstrap_interval([0.3, -0.3, 0.25, -0.2, 0.1, -0.15, 0.05, -0.05], tail=0.05)  # mean ≈ 0
    assert low < 0 < high
    low, _ = bootstrap_interval([0.2, 0.3, 0.25, 0.4, 0.1, 0.35, 0.3, 0.2], tail=0.05)  # every record improved
    assert low > 0.15


def test_human_code_sample_follows_the_pathspecs(tmp_path: Path) -> None:
    import subprocess

    from redline.trainer.human_code import default_human_texts

    for rel, text in {"src/a b.py": "def team(): pass\n", "tests/test_x.py": "def test(): pass\n",
                      "web/app.ts": "export const x = 1;\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    assert default_human_texts(tmp_path, 16, ["src/"]) == ["def team(): pass\n"]  # a name with a space, too
    assert sorted(default_human_texts(tmp_path, 16)) == ["def team(): pass\n", "def test(): pass\n"]
    assert default_human_texts(tmp_path, 16, ["*.ts"]) == ["export const x = 1;\n"]


def test_one_or_two_accepted_records_are_not_a_verdict_on_forgetting() -> None:
    """Defect seen in bench/import_path.py: one held-out passed record whose log-prob fell a little was reported
    as "fell beyond noise" (an interval over one record is a point)."""
    report = GateReport()
    _paired_row(report, KEPT, [1.0], [0.0], "must not fall beyond noise", GateThresholds(), rise=False)
    assert report.rows[0]["ok"] and "too few" in report.notes[0]
    report = GateReport()
    _paired_row(report, KEPT, [1.0] * 10, [0.0] * 10, "must not fall beyond noise", GateThresholds(), rise=False)
    assert not report.rows[0]["ok"]


def test_many_accepted_records_do_not_crowd_the_mistakes_out_of_the_gate() -> None:
    kept = [TrainingExample(g, [Feedback(kind="accept", source="lsp.kept", message="kept", generation_id=g.id)])
            for g in (raw_generation(i, split="heldout") for i in range(100))]
    wrong = [TrainingExample(g, failing(g)) for g in (raw_generation(200 + i, split="heldout") for i in range(5))]
    chosen = gate_records(kept + wrong, 64)
    assert chosen[:5] == wrong and chosen[5:] == kept[:64]
