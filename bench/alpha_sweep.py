"""Pick the default α (divergence mix) by measurement, on a world small enough for a CPU in a few minutes.

World: functions named `add_k`, `sub_k`, `mul_k` must return `a + b`, `a - b`, `a * b`. A tiny Llama is first
pretrained (full weights) on text where, without a feedback comment, the operator is random — the name tells it
nothing — and with a comment `# feedback: - test failed: use *` the operator follows the comment. So the model
"learns from context" but not from the name. Attempts are sampled from it; wrong ones get that feedback. Then
self-distillation with each α trains a LoRA on 60 names per operator and we measure, on 40 held-out names per
operator: greedy pass rate, and forward KL to the hindsight teacher. Same seed, steps and learning rate for all α.

    python bench/alpha_sweep.py --steps 12 --cache /tmp/alpha-world   # ~3-5 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "trainer")]

from conftest import build_tiny_model  # noqa: E402

from redline.records import Feedback, Generation, ModelRef, Prompt  # noqa: E402
from redline.trainer.api import TrainConfig, TrainingExample, generate, load_for_inference  # noqa: E402
from redline.trainer.api import train as train_loop  # noqa: E402
from redline.trainer.feedback_text import aggregate  # noqa: E402

OPS = {"add": "+", "sub": "-", "mul": "*"}
TEMPLATE = "# feedback: {feedback}\n{prompt}"


def prompt(name: str, k: int) -> str:
    return f"def {name}_{k}(a, b):\n    return a"


def feedback_text(op: str) -> str:
    return aggregate([Feedback(kind="test_failure", source="pytest", message=f"use {op}")])


def pretrain(path: Path, steps: int, seed: int) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        texts = []
        for _ in range(32):
            name, k = rng.choice(list(OPS)), rng.randrange(1000)
            if rng.random() < 0.5:
                texts.append(f"{prompt(name, k)} {rng.choice(list(OPS.values()))} b\n")
            else:
                texts.append(TEMPLATE.format(feedback=feedback_text(OPS[name]), prompt=prompt(name, k))
                             + f" {OPS[name]} b\n")
        batch = tok([t + tok.eos_token for t in texts], return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(str(path))


def records(model, tok, ks: range, seed: int) -> list[TrainingExample]:
    torch.manual_seed(seed)
    out = []
    for name, op in OPS.items():
        for k in ks:
            g = Generation(prompt_format="raw", prompt=Prompt(text=prompt(name, k)), completion="",
                           model=ModelRef("tiny"))
            g.completion = generate(model, tok, g, max_new_tokens=4, greedy=False)[0]
            wrong = g.completion.strip()[:1] != op
            fb = [Feedback(kind="test_failure", source="pytest", message=f"use {op}", generation_id=g.id)]
            out.append(TrainingExample(g, fb if wrong else []))
    return out


def pass_rate(model, tok, ks: range) -> float:
    ok = 0
    for name, op in OPS.items():
        for k in ks:
            ok += generate(model, tok, prompt(name, k), max_new_tokens=3)[0].strip()[:1] == op
    return ok / (len(OPS) * len(ks))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12, help="LoRA steps per alpha (small, to see learning speed)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--alphas", default="0,0.25,0.5,0.75,1", help="comma-separated values to try")
    ap.add_argument("--cache", type=Path, help="keep the pretrained world model here and reuse it")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp())
    path = (args.cache or work) / "base"
    if not (path / "config.json").exists():
        build_tiny_model(path, init_range=0.02, hidden=64, layers=2)
        pretrain(path, steps=300, seed=0)
    model, tok = load_for_inference(path)
    train = records(model, tok, range(0, 60), seed=1)
    heldout = records(model, tok, range(60, 100), seed=2)
    before = pass_rate(model, tok, range(60, 100))
    print(f"pretrained in {time.perf_counter() - t0:.0f}s; held-out pass rate before: {before:.2f}; "
          f"train records with feedback: {sum(bool(e.feedback) for e in train)}/{len(train)}")
    from redline.trainer.gate import evaluate_gate

    rows = []
    for alpha in [float(a) for a in args.alphas.split(",")]:
        cfg = TrainConfig(alpha=alpha, hindsight="template", template=TEMPLATE, max_steps=args.steps, lr=args.lr,
                          batch_size=8, top_k=20, seed=0)
        out = work / f"alpha-{alpha}"
        result = train_loop(path, [e for e in train if e.feedback], out, cfg, progress=False)
        m, t = load_for_inference(path, out)
        report = evaluate_gate(path, out, [e for e in heldout if e.feedback], human_texts=[])
        kl = next(r for r in report.rows if r["metric"].startswith("KL"))
        rows.append({"alpha": alpha, "pass_rate": pass_rate(m, t, range(60, 100)), "kl_before": kl["before"],
                     "kl_after": kl["after"], "train_s": result.seconds})
        print(json.dumps(rows[-1]))
    best = max(rows, key=lambda r: (round(r["pass_rate"], 2), -r["kl_after"]))
    print(f"best alpha: {best['alpha']} (pass rate {before:.2f} → {best['pass_rate']:.2f}); "
          f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
