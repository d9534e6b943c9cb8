#!/usr/bin/env bash
# Prepared check for a lent GPU (none was lent while this was written; run it when one is).
# 1) the trainer's CPU tests on the GPU box (CUDA + bf16 paths are picked automatically),
# 2) the distillation-cost comparison (SFT vs self-distillation at full vocabulary and top-K) in bf16 on a
#    larger random Llama (~1.1B params, a Llama-3-sized vocabulary), peak memory from max_memory_allocated.
# Usage: bash bench/gpu_check.sh [python]   — finishes in a few minutes on one H100/H200.
set -euo pipefail
PY="${1:-python}"
cd "$(dirname "$0")/.."
"$PY" - <<'PYEOF'
import torch
assert torch.cuda.is_available(), "no CUDA device"
print(torch.cuda.get_device_name(0), "bf16:", torch.cuda.is_bf16_supported())
PYEOF
timeout 300 "$PY" -m pytest tests/trainer -q -x -p no:warnings -k "not sigkill" || echo "tests failed (see above)"
# ~1.1B parameters: hidden 2048, 16 layers, vocab 128k (Llama-3 sized vocabulary), 8 × (1024 + 256) tokens
timeout 240 "$PY" bench/distill_cost.py --device cuda --dtype bf16 --hidden 2048 --layers 16 --vocab 128256 \
    --batch 8 --prompt 1024 --feedback 256 --completion 256 --top-k 100 --repeats 5
