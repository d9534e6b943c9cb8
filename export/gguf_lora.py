"""A PEFT LoRA adapter as a GGUF LoRA file that llama.cpp loads with `--lora` (and Ollama with `ADAPTER`).

Follows llama.cpp's `convert_lora_to_gguf.py`: `general.type = "adapter"`, `adapter.type = "lora"`,
`adapter.lora.alpha`, `general.architecture` of the base; one `<base tensor>.lora_a` (rank × in) and
`<base tensor>.lora_b` (out × rank) per adapted weight, named through gguf's own tensor-name map
(`model.layers.3.self_attn.q_proj` → `blk.3.attn_q`). Like that converter's Llama class, q/k rows are permuted
into llama.cpp's rotary layout; for LoRA that touches only `lora_b`. llama.cpp scales by alpha / rank, as PEFT
does; for rsLoRA (alpha / sqrt(rank)) alpha is written as alpha·sqrt(rank) so the product is the same.
Written in float32, the converter's default, so the values are the PEFT weights exactly (bf16 → f32 is exact).

Only the architectures listed in ARCHS are converted here; for others use llama.cpp's converter
(`python convert_lora_to_gguf.py ADAPTER_DIR --base BASE_HF_DIR --outfile OUT.gguf`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redline.errors import ConfigError, NotFound

# HF architecture → (llama.cpp arch name, q/k rows permuted by the converter)
ARCHS: dict[str, tuple[str, bool]] = {
    "LlamaForCausalLM": ("llama", True),
    "MistralForCausalLM": ("llama", True),
    "Qwen2ForCausalLM": ("qwen2", False),
    "Qwen3ForCausalLM": ("qwen3", False),
}


@dataclass(frozen=True)
class BaseShape:
    """What the conversion needs to know about the base model."""

    arch: str  # llama.cpp's name, e.g. "llama"
    permute_qk: bool
    n_head: int
    n_head_kv: int
    n_layers: int


def base_shape_from_hf(config: dict[str, Any], where: str) -> BaseShape:
    """From a base model's config.json."""
    hf_arch = (config.get("architectures") or ["?"])[0]
    if hf_arch not in ARCHS:
        raise ConfigError(f"no GGUF LoRA conversion for {hf_arch} here (supported: {', '.join(ARCHS)})",
                          fix="use llama.cpp's convert_lora_to_gguf.py on the `--to dir` export", path=where)
    arch, permute = ARCHS[hf_arch]
    n_head = int(config["num_attention_heads"])
    return BaseShape(arch, permute, n_head, int(config.get("num_key_value_heads") or n_head),
                     int(config["num_hidden_layers"]))


def base_shape_from_gguf(path: Path) -> BaseShape:
    """From a base model that is already a GGUF file (its metadata says arch, heads and layers)."""
    fields = gguf_fields(path)
    arch = str(fields.get("general.architecture", "?"))
    permute = {a: p for a, p in ARCHS.values()}.get(arch)
    if permute is None:
        raise ConfigError(f"no GGUF LoRA conversion for architecture {arch!r} here", path=path,
                          fix="use llama.cpp's convert_lora_to_gguf.py on the `--to dir` export")
    n_head = int(fields[f"{arch}.attention.head_count"])
    return BaseShape(arch, permute, n_head, int(fields.get(f"{arch}.attention.head_count_kv", n_head)),
                     int(fields[f"{arch}.block_count"]))


def gguf_fields(path: Path) -> dict[str, Any]:
    """A GGUF file's scalar and string metadata as plain Python values."""
    import gguf

    reader = gguf.GGUFReader(path)
    out: dict[str, Any] = {}
    for name, field in reader.fields.items():
        if len(field.types) == 1 and field.types[0] != gguf.GGUFValueType.ARRAY:
            out[name] = field.contents()
    return out


def lora_pairs(adapter_dir: Path) -> dict[str, tuple[Any, Any]]:
    """`model.layers.0.self_attn.q_proj` → (A [rank, in], B [out, rank]) as float32 numpy arrays."""
    import torch
    from safetensors.torch import load_file

    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise NotFound("no adapter_model.safetensors in the adapter", path=adapter_dir,
                       fix="re-save the adapter with safetensors (PEFT's default)")
    pairs: dict[str, list[Any]] = {}
    for key, tensor in load_file(str(weights), device="cpu").items():
        for tag, slot in ((".lora_A.weight", 0), (".lora_B.weight", 1)):
            if key.endswith(tag):
                module = key.removeprefix("base_model.model.").removesuffix(tag)
                pairs.setdefault(module, [None, None])[slot] = tensor.to(torch.float32).numpy()
                break
        else:
            raise ConfigError(f"adapter tensor {key!r} is not a LoRA A/B matrix (embeddings, biases and DoRA "
                              "magnitudes have no GGUF LoRA form)", path=weights, fix="export `--to dir`")
    missing = [m for m, (a, b) in pairs.items() if a is None or b is None]
    if missing:
        raise ConfigError(f"adapter has half a LoRA pair for {missing[0]}", path=weights, fix="retrain it")
    return {m: (a, b) for m, (a, b) in pairs.items()}


def gguf_alpha(lora_config: dict[str, Any]) -> float:
    """The alpha that gives llama.cpp's alpha / rank the scale PEFT used."""
    if lora_config.get("alpha_pattern"):
        raise ConfigError("per-module lora alpha (alpha_pattern) has no GGUF LoRA form", fix="export `--to dir`")
    if lora_config.get("use_dora"):
        raise ConfigError("DoRA adapters have no GGUF LoRA form", fix="export `--to dir`")
    alpha = float(lora_config["lora_alpha"])
    if lora_config.get("use_rslora"):
        alpha *= math.sqrt(float(lora_config["r"]))
    return alpha


def permute_rows(b: Any, n_head: int) -> Any:
    """llama.cpp's q/k row order (convert_hf_to_gguf.py `LlamaModel.permute`), applied to lora_b's rows."""
    rows = b.shape[0]
    return b.reshape(n_head, 2, rows // n_head // 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


def gguf_tensors(adapter_dir: Path, base: BaseShape) -> dict[str, Any]:
    """The GGUF tensor name → numpy array map for this adapter, in llama.cpp's layout."""
    import gguf

    arch = next(a for a in gguf.MODEL_ARCH if gguf.MODEL_ARCH_NAMES[a] == base.arch)
    names = gguf.get_tensor_name_map(arch, base.n_layers)
    out: dict[str, Any] = {}
    for module, (a, b) in sorted(lora_pairs(adapter_dir).items()):
        target = names.get_name(module)
        if target is None:
            raise ConfigError(f"llama.cpp has no tensor for adapted module {module!r}", path=adapter_dir,
                              fix="train without it (`lora_targets`) or export `--to dir`")
        if base.permute_qk and target.endswith(".attn_q"):
            b = permute_rows(b, base.n_head)
        elif base.permute_qk and target.endswith(".attn_k"):
            b = permute_rows(b, base.n_head_kv)
        out[f"{target}.weight.lora_a"] = a
        out[f"{target}.weight.lora_b"] = b
    return out


def write_gguf_lora(adapter_dir: Path, out_file: Path, base: BaseShape, *, name: str) -> list[str]:
    """Write the GGUF LoRA atomically (temp file, then rename); returns the tensor names written."""
    import gguf
    import numpy as np

    lora_config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    tensors = gguf_tensors(adapter_dir, base)
    tmp = out_file.with_name(f".{out_file.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(tmp, base.arch)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, gguf_alpha(lora_config))
        writer.add_name(name)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        for tensor_name, array in tensors.items():
            writer.add_tensor(tensor_name, np.ascontiguousarray(array, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out_file)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return list(tensors)
