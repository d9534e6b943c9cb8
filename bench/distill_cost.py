"""Cost of one self-distillation step vs one plain SFT step on the same batch and model.

Each variant runs in a fresh subprocess (so peak memory is its own): build a random Llama (≥10M parameters),
attach LoRA, run one warm-up step, then time `--repeats` steps (forward, backward, AdamW). Self-distillation adds
the teacher's forward pass (adapter disabled, no graph) over a longer prompt (the feedback). Memory is peak RSS
on CPU (ru_maxrss, minus the RSS before the first step) and max_memory_allocated on CUDA.

    python bench/distill_cost.py                       # CPU, float32, ~19M params
    python bench/distill_cost.py --device cuda --hidden 1024 --layers 8   # see bench/gpu_check.sh
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("sft", "distill-full", "distill-topk")


def child(args: argparse.Namespace) -> dict[str, float]:
    import psutil
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from trainer.config import TrainConfig
    from trainer.contexts import Pair
    from trainer.loop import distill_loss, sft_batch_loss
    from trainer.model import attach_lora

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
    top_k = 0 if args.variant == "distill-full" else args.top_k
    tcfg = TrainConfig(top_k=top_k, lora_r=16)  # the default alpha
    model = attach_lora(model, tcfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    g = torch.Generator().manual_seed(1)
    rand = lambda n: torch.randint(10, args.vocab, (n,), generator=g).tolist()  # noqa: E731
    pairs = [Pair(i, rand(args.prompt), rand(args.prompt + args.feedback), rand(args.completion))
             for i in range(args.batch)]

    def step() -> None:
        if args.variant == "sft":
            loss = sft_batch_loss(model, pairs, 0)[0]
        else:
            loss = distill_loss(model, pairs, tcfg, 0, None)[0]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    rss_before = psutil.Process().memory_info().rss
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_alloc = torch.cuda.memory_allocated()
    step()  # warm-up; also creates the optimizer state
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    out = {"variant": args.variant, "params": n_params, "seconds": statistics.median(times),
           "tokens": args.batch * (args.prompt + args.completion)}
    if device.type == "cuda":
        out["peak_bytes"] = torch.cuda.max_memory_allocated()
        out["step_bytes"] = torch.cuda.max_memory_allocated() - base_alloc
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        out["peak_bytes"] = peak
        out["step_bytes"] = peak - rss_before
    return out


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
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(child(args)))
        return
    passthrough = [a for a in sys.argv[1:]]
    results = {}
    for variant in VARIANTS:
        proc = subprocess.run([sys.executable, __file__, *passthrough, "--variant", variant], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"{variant} failed:\n{proc.stderr[-3000:]}")
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
    sft = results["sft"]
    print(f"model: {sft['params'] / 1e6:.1f}M params, device {args.device} {args.dtype}, batch {args.batch} × "
          f"(prompt {args.prompt} + completion {args.completion}), teacher prompt +{args.feedback} tokens, "
          f"LoRA r=16, top-K {args.top_k}, median of {args.repeats}")
    print(f"{'variant':<14}{'step s':>9}{'time ×':>8}{'peak MiB':>10}{'peak ×':>8}{'step MiB':>10}{'step ×':>8}")
    for name, r in results.items():
        print(f"{name:<14}{r['seconds']:>9.3f}{r['seconds'] / sft['seconds']:>8.2f}"
              f"{r['peak_bytes'] / 2**20:>10.0f}{r['peak_bytes'] / sft['peak_bytes']:>8.2f}"
              f"{r['step_bytes'] / 2**20:>10.0f}{r['step_bytes'] / max(1, sft['step_bytes']):>8.2f}")
    topk = results["distill-topk"]
    ok_t = topk["seconds"] / sft["seconds"] <= 1.5
    ok_m = topk["peak_bytes"] / sft["peak_bytes"] <= 1.15
    print(f"goal with top-K: time ≤ 1.5× ({'met' if ok_t else 'NOT met'}), peak memory ≤ 1.15× "
          f"({'met' if ok_m else 'NOT met'})")


if __name__ == "__main__":
    main()
