#!/usr/bin/env bash
# The trainer at real size on one H100/H200, in about 9 minutes (issue #17; the tests get what time is left).
# Written on a CPU only (bench/gpu_e2e.py was run there at a tiny shape): no GPU was lent to the task that wrote it.
#
# What it runs, each step with its own time limit, results as they come (also in $OUT/gpu_check.log):
#   1-3. redline import + redline train on random-weight Llamas built on the device, 32k BPE vocabulary, realistic
#      code records (bench/gpu_e2e.py): 7B shape with max_memory = "22GiB" (goal: peak < 22 GB), 7B shape with
#      quantize = "4bit" (goal: < 12 GB), 1.5B shape at the defaults; each prints a RESULT line with peak memory,
#      processed tokens/s and MFU (goal at 7B: ≥ 40 %). Random weights learn nothing: the gate must refuse.
#      Before training, the teacher writes a rewrite of each failed record (up to 256 tokens: random weights never
#      stop early), 8 at a time, and each step then scores the rewrites beside the attempts (up to 2x the
#      sequences of a step without them), so these steps take longer than before the rewrites: limits raised.
#   4. bench/distill_cost.py at ~1.1B parameters in bf16: self-distill step vs SFT step (goal: ≤ 1.4× time), with
#      the teacher live and cached (the trainer's default), and the cache's one teacher pass
#   5. the trainer's tests on CUDA (tests/trainer, not the slow ones), with what time is left
#
# The GPU image has torch, transformers, peft, safetensors, tokenizers, click, rich, psutil; it lacks Redline's
# other dependencies and bitsandbytes, and has no network. Carry them as wheels. Once, in the repo root, on a
# machine with pip and network:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl \
#     platformdirs detect-secrets defusedxml watchdog pygls lsprotocol cattrs bitsandbytes
# (bitsandbytes is the big one; without it the 4-bit step prints "skipped" and the rest runs.)
# Then, with the device tool:  run(command="bash bench/gpu_check.sh", carry=[".whl"], timeout_s=600)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu-check}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
PY="${PY:-python3}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
START=$(date +%s)
say() { echo "== $* ($(( $(date +%s) - START ))s)" | tee -a "$LOG"; }
step() { local limit=$1; shift; timeout "$limit" "$@" 2>&1 | tee -a "$LOG"; local rc=${PIPESTATUS[0]}
         [ "$rc" = 0 ] || say "exit $rc: $*"; }

say "setup"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
"$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . 2>&1 | tail -2 | tee -a "$LOG"
"$PY" - <<'PYEOF' 2>&1 | tee -a "$LOG"
import importlib.util, torch
assert torch.cuda.is_available(), "no CUDA device"
print(torch.cuda.get_device_name(0), "torch", torch.__version__, "bf16:", torch.cuda.is_bf16_supported())
print("bitsandbytes:", "yes" if importlib.util.find_spec("bitsandbytes") else "no (the 4-bit step is skipped)")
import redline.trainer.loop  # the project imports
PYEOF
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee -a "$LOG"

say "1. 1.5B shape, defaults (also the smoke test of the whole path on CUDA)"
step 110 "$PY" bench/gpu_e2e.py --shape 1.5b --records 64 --source-chars 15000000

say "2. 7B shape, max_memory = \"22GiB\" (goal: peak < 22 GB)"
step 240 "$PY" bench/gpu_e2e.py --shape 7b --records 48 --source-chars 15000000 --setting 'max_memory = "22GiB"'
if "$PY" -c "import bitsandbytes" 2>/dev/null; then
  say "3. 7B shape, quantize = \"4bit\" (goal: peak < 12 GB)"
  step 200 "$PY" bench/gpu_e2e.py --shape 7b --records 48 --source-chars 15000000 --setting 'quantize = "4bit"'
else
  say "3. skipped: bitsandbytes is not installed (carry its wheel, see the top of this script)"
fi

say "4. distill_cost at ~1.1B bf16 (goal: a self-distill step ≤ 1.4× an SFT step; distill-cached is the default)"
step 90 "$PY" bench/distill_cost.py --device cuda --dtype bf16 --hidden 2048 --layers 16 --vocab 128256 \
  --batch 8 --prompt 1024 --feedback 256 --completion 256 --top-k 100 --repeats 3

LEFT=$(( 570 - ($(date +%s) - START) ))
if [ "$LEFT" -gt 30 ]; then
  say "5. trainer tests on CUDA (${LEFT}s left)"
  step "$LEFT" "$PY" -m pytest tests/trainer -q -x -p no:cacheprovider -m "not slow" -k "not sigkill"
else
  say "5. skipped: no time left for the trainer tests"
fi
say "done"
grep '^RESULT' "$LOG" || true
