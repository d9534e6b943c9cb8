"""How exactly does llama.cpp reproduce the adapter that `redline adapters export --to llamacpp` writes?

A tiny random Llama (GQA: 4 heads, 2 KV heads) and a LoRA on every projection with random A and B are written as a
GGUF base (tests/export/llama_gguf.py) and a GGUF LoRA (Redline's exporter); llama.cpp's logits (llama-cpp-python,
float32 KV cache) are compared with transformers + PEFT on the same token ids, and the same with the q/k rotary
permutation left out (the mistake the export must not make). Needs `pip install 'llama-cpp-python'` and `gguf`.

    python bench/export_fidelity.py
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redline.export import gguf_lora  # noqa: E402
from tests.export.helpers import build_adapter, build_base  # noqa: E402
from tests.export.llama_gguf import write_llama_gguf  # noqa: E402
from tests.export.test_llamacpp_runtime import cpp_logits, hf_logits  # noqa: E402


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="redline-export-fidelity-"))
    base = build_base(work / "base")
    adapter = build_adapter(base, work / "adapter")
    base_gguf = write_llama_gguf(base, work / "base.gguf")
    shape = gguf_lora.base_shape_from_gguf(base_gguf)
    gguf_lora.write_gguf_lora(adapter, work / "lora.gguf", shape, name="bench")
    gguf_lora.write_gguf_lora(adapter, work / "unpermuted.gguf", dataclasses.replace(shape, permute_qk=False),
                              name="bench")
    hf_base, hf_lora = hf_logits(base, None), hf_logits(base, adapter)
    with_lora = cpp_logits(base_gguf, work / "lora.gguf")
    unpermuted = cpp_logits(base_gguf, work / "unpermuted.gguf")
    rows = [
        ("adapter effect: max abs(HF+PEFT - HF base)", np.abs(hf_lora - hf_base).max()),
        ("base: max abs(llama.cpp - HF)", np.abs(cpp_logits(base_gguf, None) - hf_base).max()),
        ("LoRA: max abs(llama.cpp + GGUF LoRA - HF+PEFT)", np.abs(with_lora - hf_lora).max()),
        ("LoRA without the q/k permutation: max abs(diff)", np.abs(unpermuted - hf_lora).max()),
    ]
    print("| logits, 10 tokens x 128 vocab | value |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value:.3g} |")


if __name__ == "__main__":
    main()
