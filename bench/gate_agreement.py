"""Does the gate's verdict agree with what the adapter does? And what does the gate cost against training?

For each repository of the synthetic world (bench/world), adapters of deliberately different quality are trained
from the same N records: the trainer's defaults, a learning rate too small to change an answer, too few steps,
and one trained to forget (SFT on junk "corrections"). Each is judged twice, independently:

- **the gate** (`trainer/gate.py`, as `redline train` runs it) on held-out *records*: the base model's attempts at
  held-out tasks with the checker's feedback (recheck recipes attached), plus accepted attempts at unchanged-API
  tasks;
- **the benchmark** on other held-out *tasks*, by generation: the adapter should be promoted when its pass rate on
  new tasks of the changed APIs rises beyond noise (an exact sign test on the paired tasks, p < 0.05) and it keeps
  at least 98 % of the base's pass rate on unchanged-API tasks.

Agreement is the share of adapters where "promoted" matches "should be promoted" ("not judged" keeps the current
adapter, so it counts as not promoted). The gate's cost is its seconds against the training run's.

    python bench/gate_agreement.py                    # 2 repositories x 4 adapters, N = 64
    python bench/gate_agreement.py --repos 3 --n 64 --out /tmp/agree
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUT = ROOT / "bench" / "out" / "gate_agreement"
#: name -> (trainer settings over the defaults, "forget": trained on junk corrections instead of the records)
VARIANTS: dict[str, tuple[dict[str, Any], bool]] = {
    "defaults": ({}, False),
    "lr 1e-7": ({"lr": 1e-7}, False),
    "4 steps": ({"max_steps": 4}, False),
    "forgets": ({"max_steps": 40, "lr": 1e-2, "probe_records": 0}, True),
}
JUNK = "pass  # " + "x" * 40 + "\n"


def sign_test_p(gains: int, losses: int) -> float:
    """One-sided exact binomial p of at least `gains` successes in `gains + losses` fair trials."""
    n = gains + losses
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(gains, n + 1)) / 2**n


def should_promote(base_ok: list[bool], after_ok: list[bool], base_unchanged: float, after_unchanged: float
                   ) -> bool:
    gains = sum(a and not b for b, a in zip(base_ok, after_ok, strict=True))
    losses = sum(b and not a for b, a in zip(base_ok, after_ok, strict=True))
    return sign_test_p(gains, losses) < 0.05 and after_unchanged >= 0.98 * base_unchanged


def gate_records(model: Path, repo: Any, n_failed: int, n_passed: int) -> list[Any]:
    """Held-out records as the queue holds them: attempts at the first half of the held-out tasks, and at
    unchanged-API tasks (mostly accepted)."""
    from bench.world import make_records
    from redline.trainer.api import TrainingExample

    half = len(repo.heldout_tasks) // 2
    view = copy.copy(repo)
    view.train_tasks = repo.heldout_tasks[:half]
    failed = make_records(model, view, min(n_failed, half), seed=0)
    view.train_tasks = repo.unchanged_tasks
    passed = [r for r in make_records(model, view, n_passed, seed=0)]
    return [TrainingExample(dataclasses.replace(g, split="heldout"), fbs) for g, fbs in failed + passed]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from bench.methods import method_for
    from bench.world import build_or_load_model, make_records, make_repos
    from bench.world.evaluate import passes
    from redline.records import Feedback
    from redline.trainer.api import TrainConfig, TrainingExample, train
    from redline.trainer.gate import evaluate_gate

    torch.set_num_threads(2)
    model = build_or_load_model()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="redline-agree-") as tmp:
        for repo in make_repos(args.repos, seed=0):
            records = [TrainingExample(g, fbs) for g, fbs in make_records(model, repo, args.n, seed=0)]
            heldout = gate_records(model, repo, args.gate_failed, args.gate_passed)
            tasks = repo.heldout_tasks[len(repo.heldout_tasks) // 2:]
            base_ok = passes(model, None, repo, tasks)
            base_unchanged = sum(passes(model, None, repo, repo.unchanged_tasks)) / len(repo.unchanged_tasks)
            for name, (settings, forget) in VARIANTS.items():
                if args.variants and name not in args.variants:
                    continue
                out = Path(tmp) / f"{repo.id}-{name.replace(' ', '_')}"
                data = records if not forget else [
                    TrainingExample(ex.generation, [Feedback(kind="edit", source="review", correction=JUNK,
                                                             generation_id=ex.generation.id)]) for ex in records]
                started = time.perf_counter()
                train(model, data, out, TrainConfig(**settings, seed=0), progress=False,
                      method=method_for("sft-edit") if forget else None)
                trained = time.perf_counter()
                gate = evaluate_gate(model, out, heldout, repo_root=Path(tmp))
                gated = time.perf_counter()
                after_ok = passes(model, out, repo, tasks)
                after_unchanged = sum(passes(model, out, repo, repo.unchanged_tasks)) / len(repo.unchanged_tasks)
                truth = should_promote(base_ok, after_ok, base_unchanged, after_unchanged)
                row = {"repo": repo.id, "adapter": name, "gate": gate.verdict, "summary": gate.summary(name),
                       "should_promote": truth, "agrees": (gate.verdict == "promoted") == truth,
                       "heldout_tasks": [sum(base_ok), sum(after_ok), len(tasks)],
                       "unchanged": [round(base_unchanged, 3), round(after_unchanged, 3)],
                       "gate_records": len(heldout), "train_s": round(trained - started, 1),
                       "gate_s": round(gated - trained, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    agree = sum(r["agrees"] for r in rows)
    train_s, gate_s = sum(r["train_s"] for r in rows), sum(r["gate_s"] for r in rows)
    n_default = [r for r in rows if r["adapter"] == "defaults"]
    return {
        "rows": rows,
        "agreement": [agree, len(rows)],
        "gate_share_of_training": gate_s / train_s if train_s else None,
        "gate_share_of_a_default_run": (sum(r["gate_s"] for r in n_default) / sum(r["train_s"] for r in n_default)
                                        if n_default else None),
        "gate_s_per_record": gate_s / sum(r["gate_records"] for r in rows) if rows else None,
        "n": args.n, "repos": args.repos,
    }


def table(result: dict[str, Any]) -> str:
    lines = ["| repo | adapter | gate | should promote | agrees | held-out tasks base → adapter | unchanged | "
             "train s | gate s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        b, a, n = r["heldout_tasks"]
        lines.append(f"| {r['repo']} | {r['adapter']} | {r['gate']} | {'yes' if r['should_promote'] else 'no'} | "
                     f"{'yes' if r['agrees'] else '**no**'} | {b}/{n} → {a}/{n} | "
                     f"{r['unchanged'][0]:.0%} → {r['unchanged'][1]:.0%} | {r['train_s']} | {r['gate_s']} |")
    agree, total = result["agreement"]
    share = result["gate_share_of_a_default_run"]
    lines.append("")
    lines.append(f"agreement {agree}/{total}; gate time {share:.0%} of a default training run"
                 if share is not None else f"agreement {agree}/{total}")
    lines.append(f"gate: {result['gate_s_per_record']:.2f} s per held-out record; N = {result['n']} records "
                 f"per adapter, {result['repos']} repositories")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=2)
    parser.add_argument("--n", type=int, default=64, help="training records per adapter")
    parser.add_argument("--gate-failed", type=int, default=32, help="held-out attempts at changed-API tasks")
    parser.add_argument("--gate-passed", type=int, default=16, help="held-out attempts at unchanged-API tasks")
    parser.add_argument("--variants", type=lambda s: s.split(","), default=None,
                        help=f"comma-separated subset of {list(VARIANTS)}")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants or ()) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown --variants {unknown}: use some of {list(VARIANTS)}")
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    text = table(result)
    (args.out / "table.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
