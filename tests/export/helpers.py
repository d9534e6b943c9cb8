"""Builders shared by the export tests: a tiny Llama base, a PEFT LoRA on it, registration as a version."""

from __future__ import annotations

from pathlib import Path

from redline.adapters import AdapterRegistry
from redline.config import Config


def build_base(path: Path, *, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=128, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=256,
                      tie_word_embeddings=False)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def build_adapter(base: Path, out: Path, *, r: int = 4, alpha: int = 8, **lora_kw: object) -> Path:
    """Every linear projection adapted; B is random too (PEFT starts it at zero), so every value is checked."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base))
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, **lora_kw))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p))
    peft_model.save_pretrained(str(out))
    return out


def register(config: Config, adapter: Path, base_id: str, *, promote: bool = True) -> str:
    registry = AdapterRegistry(config.adapters_dir)
    version = registry.add(adapter, {"base_model": {"id": base_id, "architecture": "LlamaForCausalLM"}})
    if promote:
        registry.promote(version)
    return version
