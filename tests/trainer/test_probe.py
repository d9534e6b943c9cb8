"""The hindsight probe: the world's code model fixes its mistakes when shown its checker's feedback (in the way it
ships for reading hindsight); a random model fixes none, so `redline train` says so in one line, trains nothing
and leaves the records queued; `redline doctor` shows the same line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import raw_generation

from redline.cli import cli
from redline.config import load_config
from redline.evidence import Judge
from redline.queue.store import SQLiteStore
from redline.records import Feedback
from redline.trainer.config import TrainConfig
from redline.trainer.contexts import Rendering
from redline.trainer.data import TrainingExample

ROOT = Path(__file__).resolve().parents[2]
BANNED = "`fetch` is banned in this repository: use `http_get`"


@pytest.mark.slow
def test_the_world_model_fixes_its_mistakes_in_context_and_the_teacher_uses_that_rendering() -> None:
    from bench.world import make_records, make_repos
    from redline.trainer.model import load_base
    from redline.trainer.probe import probe

    model_dir = ROOT / "bench" / "world" / "model"
    repo = make_repos(1)[0]
    records = [TrainingExample(g, f) for g, f in make_records(model_dir, repo, 48)]
    model, tok = load_base(model_dir)
    report = probe(model, tok, records, Rendering.of(TrainConfig()), Judge(None), limit=12)
    rows = {r.strategy: r for r in report.rows}
    assert set(rows) == {"none", "template"}  # raw prompts, no chat template: the model's own template
    assert rows["none"].judged == rows["template"].judged == 12  # the world's checker reran on every answer
    assert rows["none"].fixed == 0  # greedy again without the feedback: the same mistakes
    assert rows["template"].fixed >= 4 and report.chosen == "template"
    assert "the teacher uses `template`" in report.line()


@pytest.fixture
def unlearnable(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A queue of 10 failed records whose feedback names its own criterion, for a random model."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "redline.toml").write_text(f'model = "{tiny_model}"\nscrub_secrets = false\n[train]\nbatch_size = 4\n')
    monkeypatch.chdir(root)
    store = SQLiteStore(load_config().db_path)
    gens = [raw_generation(i, split="train") for i in range(10)]
    for g in gens:
        g.completion = f"    return fetch(a + b + {g.prompt.text.count('f')})\n"
    store.add(gens, [Feedback(kind="diagnostic", source="ruff", message=BANNED, rule="TID251", generation_id=g.id)
                     for g in gens])
    store.close()
    return root


@pytest.mark.slow
def test_a_model_that_cannot_use_the_feedback_trains_nothing_and_says_what_would_work(unlearnable: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "--max-steps", "2"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    lines = [ln for ln in result.output.splitlines() if ln.startswith("hindsight probe (")]
    assert len(lines) == 1, result.output
    # one line, each strategy; 8 of the 10 (the newest 2 were held out for the gate, which had none)
    assert "none 0/8, chat-turn 0/8, template 0/8" in lines[0]
    assert "cannot teach it" in lines[0] and "serve_hints" in lines[0]
    assert not (load_config().adapters_dir / "versions").exists()  # no night spent training
    store = SQLiteStore(load_config().db_path)
    try:
        assert store.counts()["states"] == {"new": 10}  # the records stay queued
    finally:
        store.close()
    status = CliRunner().invoke(cli, ["status"])
    assert "hindsight probe" in status.output and "cannot teach it" in status.output
    doctor = CliRunner().invoke(cli, ["doctor"])
    assert "hindsight probe" in doctor.output and "0/8" in doctor.output


def test_a_queue_that_already_shows_corrections_is_not_told_to_add_them() -> None:
    from redline.trainer.probe import ADVICE, ADVICE_CORRECTED, ProbeReport, ProbeRow

    rows = [ProbeRow("none", 0, 16), ProbeRow("template", 0, 16)]
    bare = ProbeReport(rows, None, 16, "fixes nothing", corrected=2)
    shown = ProbeReport(rows, None, 16, "fixes nothing", corrected=16)
    assert bare.advice == ADVICE and bare.line().endswith(ADVICE)
    assert shown.advice == ADVICE_CORRECTED and "corrections in the queue" not in shown.line()
