"""Padding waste of the trainer's length-bucketed schedule against random batches, on a records JSONL file.

Waste = the share of token slots in the teacher rows (the longer ones) of each micro-batch that are padding.

    python bench/padding.py RECORDS.jsonl MODEL_DIR      # e.g. what bench/gpu_e2e.py wrote
"""

from __future__ import annotations

import argparse
import json
import random

from redline.records import Feedback, Generation
from redline.trainer.batching import micro_batches, padding_waste, planned_steps, schedule
from redline.trainer.config import TrainConfig
from redline.trainer.contexts import Rendering, build_pair


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records")
    ap.add_argument("model")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
    cfg = TrainConfig()
    pairs = []
    with open(args.records, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            d = json.loads(line)
            pair = build_pair(tok, i, Generation.from_dict(d["generation"]),
                              [Feedback.from_dict(f) for f in d["feedback"]], Rendering.of(cfg))
            if pair is not None:
                pairs.append(pair)
    steps = planned_steps(len(pairs), batch_size=cfg.batch_size, epochs=None, max_steps=None)
    plan = schedule(pairs, batch_size=cfg.batch_size, seed=0, steps=steps)
    rng = random.Random(0)
    rnd = [rng.sample(range(len(pairs)), min(cfg.batch_size, len(pairs))) for _ in range(steps)]
    lengths = sorted(len(p.teacher_ids) + len(p.completion_ids) for p in pairs)
    print(f"{len(pairs)} pairs, teacher rows {lengths[0]}–{lengths[-1]} tokens, {steps} steps of {cfg.batch_size}")
    for micro in (cfg.batch_size, cfg.batch_size // 2, 1):
        bucketed = padding_waste([m for b in plan for m in micro_batches(b, pairs, micro)], pairs)
        random_ = padding_waste([m for b in rnd for m in micro_batches(b, pairs, micro)], pairs)
        print(f"micro-batch {micro}: bucketed {bucketed:.1%} padding, random batches {random_:.1%}")


if __name__ == "__main__":
    main()
