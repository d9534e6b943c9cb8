"""The training run as a library call (issue #10): a typed report, the training status written, and SIGTERM
releasing the claim the way Ctrl-C does."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import failing, raw_generation

from redline.config import load_config
from redline.queue.store import SQLiteStore
from redline.status import read_status
from redline.trainer.run import RunReport, run_training, train_config_for


@pytest.fixture
def repo(tmp_path: Path, tiny_model: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "redline.toml").write_text(
        f'model = "{tiny_model}"\nscrub_secrets = false\n[train]\nbatch_size = 4\nmax_steps = 3\ntop_k = 0\n')
    store = SQLiteStore(load_config(root).db_path)
    gens = [raw_generation(i, split="train") for i in range(6)] + [raw_generation(100 + i, split="heldout")
                                                                  for i in range(3)]
    store.add(gens, [f for g in gens for f in failing(g)])
    store.close()
    return root


@pytest.mark.slow
def test_run_returns_a_typed_report_and_writes_the_status(repo: Path, tiny_model: Path) -> None:
    config = load_config(repo)
    store = SQLiteStore(config.db_path)
    report = run_training(config, store, model=str(tiny_model), train_config=train_config_for(config),
                          progress=False)
    assert isinstance(report, RunReport) and report.version == "v0001" and report.gate is not None
    assert (report.records, report.trained, report.pairs, report.heldout) == (9, 6, 12, 3)  # 6 attempts + 6 rewrites
    assert set(report.timings) == {"train", "gate", "total"} and report.timings["total"] > 0
    assert report.promoted == report.gate.passed and (report.reason is None) == report.promoted
    status = read_status(store)
    assert status.last.version == "v0001" and status.last.result == ("promoted" if report.promoted else "refused")
    assert status.adapter.version == ("v0001" if report.promoted else None)
    again = run_training(config, store, model=str(tiny_model), train_config=train_config_for(config),
                         progress=False)
    assert again.version is None and "nothing new" in again.reason
    store.close()


@pytest.mark.slow
def test_sigterm_releases_the_claim_like_ctrl_c(repo: Path, tiny_model: Path) -> None:
    """Issue #10: SIGTERM used to kill the run with its records left claimed for an hour."""
    config = load_config(repo)
    store = SQLiteStore(config.db_path)
    before = store.backlog()[0]

    def terminate(step: int, stats: dict[str, float]) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt):
        run_training(config, store, model=str(tiny_model), train_config=train_config_for(config), progress=False,
                     on_step=terminate)
    assert store.backlog()[0] == before  # released: all of it can be trained on again
    assert read_status(store).last.result == "failed" and read_status(store).last.reason == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    store.close()
