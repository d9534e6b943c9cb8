from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import failing, raw_generation

from redline.cli import cli
from redline.config import load_config
from redline.queue.store import SQLiteStore
from redline.records import Feedback


@pytest.fixture
def repo(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "redline.toml").write_text(
        f'model = "{tiny_model}"\nscrub_secrets = false\n'
        "[train]\nbatch_size = 4\nlr = 0.01\ntop_k = 0\ngate_max_ppl_increase = 10.0\n"
    )
    monkeypatch.chdir(root)
    store = SQLiteStore(load_config().db_path)
    gens = [raw_generation(i, split="train") for i in range(8)] + [raw_generation(100 + i, split="heldout")
                                                                  for i in range(3)]
    store.add(gens, [f for g in gens for f in failing(g)])
    store.close()
    return root


def test_dry_run_prints_counts_and_both_contexts(repo: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "--dry-run"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "trainable: 8" in result.output and "teacher context" in result.output
    assert "teacher_rewrites: 8" in result.output  # all 8 failed: one rewrite each, written when training starts
    assert "unsuccessful earlier attempt" in result.output
    assert not (load_config().adapters_dir / "versions").exists()


@pytest.mark.slow
def test_train_registers_gates_and_adapters_commands(repo: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--max-steps", "3"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert re.search(r": (refused|not judged|promoted)( \(|$)", result.output, re.M), result.output  # the summary
    rows = json.loads(runner.invoke(cli, ["adapters", "list", "--json"]).stdout)
    assert [r["version"] for r in rows] == ["v0001"] and rows[0]["records"] == 8
    assert rows[0]["gate_passed"] in (True, False) and rows[0]["current"] == rows[0]["gate_passed"]
    assert runner.invoke(cli, ["adapters", "promote", "v0001"]).exit_code == 0
    assert json.loads(runner.invoke(cli, ["adapters", "list", "--json"]).stdout)[0]["current"]
    assert "base model" in runner.invoke(cli, ["adapters", "rollback"]).output
    report = runner.invoke(cli, ["eval", "v0001", "--json"])
    assert json.loads(report.stdout)["version"] == "v0001"
    again = runner.invoke(cli, ["train", "--max-steps", "3"])
    assert "nothing new to train on" in again.output  # the records were acknowledged


def test_accepted_records_alone_start_nothing_then_anchor_a_balanced_run(tmp_path: Path, tiny_model: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "kept"
    root.mkdir()
    (root / "redline.toml").write_text(f'model = "{tiny_model}"\nscrub_secrets = false\n[train]\nbatch_size = 4\n')
    monkeypatch.chdir(root)
    store = SQLiteStore(load_config().db_path)
    kept = [raw_generation(i) for i in range(6)]
    store.add(kept, [Feedback(kind="accept", source="lsp.kept", message="kept as written", generation_id=g.id)
                     for g in kept])
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--max-steps", "1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "all 6 new records were accepted as written" in result.output
    assert store.counts()["states"] == {"new": 6}  # released, not consumed

    wrong = [raw_generation(50 + i) for i in range(2)]
    store.add(wrong, [f for g in wrong for f in failing(g)])
    store.close()
    plan = runner.invoke(cli, ["train", "--dry-run"]).output
    assert "anchors: 2" in plan and "accepted_left_out: 4" in plan  # one anchor per record with a mistake
