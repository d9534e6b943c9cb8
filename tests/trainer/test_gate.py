from __future__ import annotations

from pathlib import Path

from conftest import CORPUS, failing, raw_generation

from trainer.api import TrainConfig, TrainingExample, train_adapter
from trainer.gate import GateThresholds, evaluate_gate

TRUE = "test failed: add(1, 2) returned 4, expected 3; use a + b"
WRONG = "import sys class Foo pass for i in range print warning hint info"
HUMAN = CORPUS[:7]


def records(n: int, message: str, *, split: str, offset: int = 0) -> list[TrainingExample]:
    gens = [raw_generation(offset + i, split=split) for i in range(n)]
    return [TrainingExample(g, failing(g, message)) for g in gens]


def test_gate_refuses_an_adapter_trained_on_wrong_feedback(tiny_model: Path, tmp_path: Path) -> None:
    heldout = records(6, TRUE, split="heldout", offset=100)
    out = tmp_path / "wrong"
    cfg = TrainConfig(max_steps=30, lr=3e-2, batch_size=4, top_k=0)
    train_adapter(tiny_model, records(12, WRONG, split="train"), out, cfg, progress=False)
    report = evaluate_gate(tiny_model, out, heldout, human_texts=HUMAN)
    assert not report.passed
    assert report.reasons and any("KL" in r or "perplexity" in r for r in report.reasons)
    assert "refused" in report.table()
    assert {r["metric"] for r in report.rows} >= {"KL(teacher‖student) held-out", "perplexity on human code"}


def test_gate_sees_the_kl_drop_of_an_adapter_trained_on_the_right_feedback(tiny_model: Path, tmp_path: Path
                                                                          ) -> None:
    heldout = records(6, TRUE, split="heldout", offset=100)
    out = tmp_path / "right"
    cfg = TrainConfig(max_steps=30, lr=1e-2, batch_size=4, top_k=0)
    train_adapter(tiny_model, records(12, TRUE, split="train"), out, cfg, progress=False)
    report = evaluate_gate(tiny_model, out, heldout, human_texts=HUMAN,
                           thresholds=GateThresholds(max_ppl_increase=10.0))
    kl = next(r for r in report.rows if r["metric"].startswith("KL"))
    assert kl["ok"] and kl["after"] < kl["before"] * 0.7
    # against the adapter being served now (here: itself), "before" is that adapter: no gain, so refused
    same = evaluate_gate(tiny_model, out, heldout, human_texts=HUMAN, baseline_adapter=out)
    kl_same = next(r for r in same.rows if r["metric"].startswith("KL"))
    assert abs(kl_same["before"] - kl["after"]) < 1e-5 and not same.passed


def test_human_code_sample_follows_the_pathspecs(tmp_path: Path) -> None:
    import subprocess

    from trainer.gate import default_human_texts

    for rel, text in {"src/a b.py": "def team(): pass\n", "tests/test_x.py": "def test(): pass\n",
                      "web/app.ts": "export const x = 1;\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    assert default_human_texts(tmp_path, 16, ["src/"]) == ["def team(): pass\n"]  # a name with a space, too
    assert sorted(default_human_texts(tmp_path, 16)) == ["def team(): pass\n", "def test(): pass\n"]
    assert default_human_texts(tmp_path, 16, ["*.ts"]) == ["export const x = 1;\n"]
