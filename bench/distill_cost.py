"""Cost of one self-distillation step vs one plain SFT step on the same batch and model.

Build a random Llama (≥10M parameters) with LoRA and one batch. Time: one subprocess runs the three kinds of
step (forward, backward, AdamW) interleaved for `--repeats` rounds, so load from other processes hits each alike;
the median wall and CPU time per kind are reported. Memory: each kind runs alone in a fresh subprocess.
Self-distillation adds the teacher's forward pass (adapter disabled, no graph) over a longer prompt (the
feedback): in every step when the teacher runs live (`distill-full`, `distill-topk`: the bench's EMA teacher
and on-policy samples, `bench/methods.py`), or once per sequence before training when the trainer caches the
base teacher's states (its default: `distill-cached` is the step, `teacher-pass` that one pass over the same
batch, paid once per run, not per epoch). Memory is peak RSS on CPU (ru_maxrss; "step" subtracts the RSS
before the first step) and max_memory_allocated on CUDA.

    python bench/distill_cost.py                       # CPU, float32, ~19M params
    python bench/distill_cost.py --device cuda --hidden 1024 --layers 8   # see bench/gpu_check.sh
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("sft", "distill-full", "distill-topk", "distill-cached")


def build(args: argparse.Namespace):
    """Model with LoRA, one batch and a step function per variant (same model, same batch)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from redline.trainer.config import TrainConfig
    from redline.trainer.contexts import Pair
    from redline.trainer.methods import distill_loss, sft_batch_loss
    from redline.trainer.model import attach_lora
    from redline.trainer.teacher import cache_teacher_hidden

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=int(args.hidden * 8 / 3),
                      num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 64),
                      num_key_value_heads=max(1, args.hidden // 128), max_position_embeddings=4096,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).to(device=device, dtype=dtype)
    n_params = sum(p.numel() for p in model.parameters())
    model.requires_grad_(False)
    model = attach_lora(model, TrainConfig(lora_r=16))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    g = torch.Generator().manual_seed(1)
    rand = lambda n: torch.randint(10, args.vocab, (n,), generator=g).tolist()  # noqa: E731
    pairs = [Pair(i, rand(args.prompt), rand(args.prompt + args.feedback), rand(args.completion))
             for i in range(args.batch)]
    configs = {"distill-full": TrainConfig(top_k=0), "distill-topk": TrainConfig(top_k=args.top_k),
               "distill-cached": TrainConfig(top_k=args.top_k)}
    cached = [dataclasses.replace(p) for p in pairs]

    def teacher_pass() -> None:
        with model.disable_adapter():
            cache_teacher_hidden(model, cached, 0, batch_size=args.batch)
        if device.type == "cuda":
            torch.cuda.synchronize()

    teacher_pass()

    def step(variant: str) -> None:
        if variant == "teacher-pass":
            teacher_pass()
            return
        if variant == "sft":
            loss = sft_batch_loss(model, pairs, 0)[0]
        else:  # the default alpha
            loss = distill_loss(model, cached if variant == "distill-cached" else pairs, configs[variant], 0, None)[0]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step, n_params, device


def child_memory(args: argparse.Namespace) -> dict[str, float]:
    """Peak memory of one variant, alone in this process."""
    import psutil
    import torch

    step, n_params, device = build(args)
    rss_before = psutil.Process().memory_info().rss
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_alloc = torch.cuda.memory_allocated()
    for _ in range(2):  # the first step also creates the optimizer state
        step(args.variant)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
        return {"params": n_params, "peak_bytes": peak, "step_bytes": peak - base_alloc}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"params": n_params, "peak_bytes": peak, "step_bytes": peak - rss_before}


def child_time(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Step times of all variants, interleaved round by round so that load from other processes hits each alike."""
    step, _, _ = build(args)
    timed = (*VARIANTS, "teacher-pass")
    for v in timed:
        step(v)  # warm-up
    wall: dict[str, list[float]] = {v: [] for v in timed}
    cpu: dict[str, list[float]] = {v: [] for v in timed}
    for _ in range(args.repeats):
        for v in timed:
            t0, c0 = time.perf_counter(), time.process_time()
            step(v)
            wall[v].append(time.perf_counter() - t0)
            cpu[v].append(time.process_time() - c0)
    return {v: {"seconds": statistics.median(wall[v]), "cpu_seconds": statistics.median(cpu[v])} for v in timed}


def run_child(passthrough: list[str], variant: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, *passthrough, "--variant", variant], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=192)
    ap.add_argument("--feedback", type=int, default=64, help="extra teacher-prompt tokens (the hindsight)")
    ap.add_argument("--completion", type=int, default=64)
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="1 is least disturbed by other load")
    ap.add_argument("--variant", choices=[*VARIANTS, "time"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant == "time":
        print(json.dumps(child_time(args)))
        return
    if args.variant:
        print(json.dumps(child_memory(args)))
        return
    passthrough = sys.argv[1:]
    times = run_child(passthrough, "time")
    results = {v: {**run_child(passthrough, v), **times[v]} for v in VARIANTS}
    sft = results["sft"]
    print(f"model: {sft['params'] / 1e6:.1f}M params, device {args.device} {args.dtype}, batch {args.batch} × "
          f"(prompt {args.prompt} + completion {args.completion}), teacher prompt +{args.feedback} tokens, "
          f"LoRA r=16, top-K {args.top_k}, default alpha, median of {args.repeats} interleaved steps")
    print(f"{'variant':<14}{'wall s':>8}{'wall ×':>8}{'cpu s':>8}{'cpu ×':>7}{'peak MiB':>10}{'peak ×':>8}"
          f"{'step MiB':>10}{'step ×':>8}")
    for name, r in results.items():
        print(f"{name:<14}{r['seconds']:>8.3f}{r['seconds'] / sft['seconds']:>8.2f}"
              f"{r['cpu_seconds']:>8.3f}{r['cpu_seconds'] / sft['cpu_seconds']:>7.2f}"
              f"{r['peak_bytes'] / 2**20:>10.0f}{r['peak_bytes'] / sft['peak_bytes']:>8.2f}"
              f"{r['step_bytes'] / 2**20:>10.0f}{r['step_bytes'] / max(1, sft['step_bytes']):>8.2f}")
    once = times["teacher-pass"]
    print(f"{'teacher-pass':<14}{once['seconds']:>8.3f}{once['seconds'] / sft['seconds']:>8.2f}"
          f"{once['cpu_seconds']:>8.3f}{once['cpu_seconds'] / sft['cpu_seconds']:>7.2f}   (once per sequence and run)")
    for name in ("distill-topk", "distill-cached"):
        r = results[name]
        ok_t = r["seconds"] / sft["seconds"] <= 1.5
        ok_m = r["peak_bytes"] / sft["peak_bytes"] <= 1.15
        print(f"goal, {name}: time ≤ 1.5× ({'met' if ok_t else 'NOT met'}), peak memory ≤ 1.15× "
              f"({'met' if ok_m else 'NOT met'})")
    cached = results["distill-cached"]
    print(f"distill-cached with its teacher pass spread over a run of 3 passes over the data (the trainer's "
          f"fewest): {(cached['seconds'] + once['seconds'] / 3) / sft['seconds']:.2f}× an SFT step's time")
    print("peak = whole-process peak (model included), step = peak minus the memory held before the first step")


if __name__ == "__main__":
    main()
