"""Loading a base model and tokenizer (local path or local HF cache, never a download) and attaching LoRA.

One copy of the base weights: the teacher is the same model with the adapter disabled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from redline.trainer.config import TrainConfig
from redline.trainer.errors import ModelNotAvailable

log = logging.getLogger("redline.trainer")

# peft reads transformers' deprecated `is_gradient_checkpointing` on every PeftModel: noise, not our call
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

#: module-name leaves that are never adapted (output heads, embeddings, norms)
_NEVER = ("lm_head", "embed_tokens", "wte", "wpe", "embed_out", "score", "classifier", "shared")


def device_and_dtype(device: str | torch.device | None = None) -> tuple[torch.device, torch.dtype]:
    """CUDA + bf16 when available, else CPU + float32 (bf16 matmuls on CPU are slow and imprecise)."""
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if dev.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return dev, dtype


def load_base(model_path: str | Path, *, device: str | torch.device | None = None, quantize: str | None = None
              ) -> tuple[Any, Any]:
    """Base model (eval mode, frozen) and tokenizer from a directory or a hub id already in the local cache.

    SDPA attention (no L×L score matrix kept for backward); `quantize` = "4bit"/"8bit" loads the frozen base
    through bitsandbytes (QLoRA: NF4 with bf16 compute), which needs CUDA."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = str(model_path)
    dev, dtype = device_and_dtype(device)
    extra: dict[str, Any] = {"attn_implementation": "sdpa"}
    if quantize:
        extra.update(quantization_config=quantization_config(quantize, dev, dtype), device_map={"": dev.index or 0})
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref, local_files_only=True)
        try:
            model = AutoModelForCausalLM.from_pretrained(ref, local_files_only=True, dtype=dtype, **extra)
        except ValueError as exc:  # an architecture without SDPA support: its default attention
            if "sdpa" not in str(exc).lower() and "scaled_dot_product" not in str(exc).lower():
                raise
            extra.pop("attn_implementation")
            model = AutoModelForCausalLM.from_pretrained(ref, local_files_only=True, dtype=dtype, **extra)
    except (OSError, ValueError) as exc:
        if Path(ref).exists():
            raise ModelNotAvailable(f"cannot load the model at {ref} ({_first_line(exc)})",
                                    fix="point `model` at a directory written by save_pretrained") from None
        raise ModelNotAvailable(
            f"model {ref!r} is not a local directory and not in the local Hugging Face cache",
            fix=f"fetch it once with `hf download {ref}` (Redline never downloads on its own)",
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    if quantize:
        from peft import prepare_model_for_kbit_training

        # casts norms to fp32 and readies input grads; gradient checkpointing is the planner's call (attach_lora)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model.to(dev)
    model.eval()
    model.requires_grad_(False)
    return model, tokenizer


def quantization_config(quantize: str, device: torch.device, dtype: torch.dtype) -> Any:
    """bitsandbytes settings for QLoRA; a one-line error naming what to install when it cannot work here."""
    if device.type != "cuda":
        raise ModelNotAvailable(f"quantize = {quantize!r} needs a CUDA GPU (bitsandbytes), and this run is on "
                                f"{device.type}", fix="unset `quantize` in [tool.redline.train] on this machine")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelNotAvailable(f"quantize = {quantize!r} needs the bitsandbytes package (and a CUDA GPU)",
                                fix="pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    if quantize == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def fit_to_model(config: TrainConfig, model: Any) -> TrainConfig:
    """`config` completed for this model: `max_length` no longer than its context window (positions past it were
    never trained, and rotary embeddings extrapolate badly), and an unset `lr` chosen by its width."""
    mcfg = getattr(model, "config", None)
    changes: dict[str, Any] = {}
    window = getattr(mcfg, "max_position_embeddings", None)
    if isinstance(window, int) and 16 <= window < config.max_length:
        log.info("max_length %d capped to the model's context window %d", config.max_length, window)
        changes["max_length"] = window
    if config.lr is None:
        width = _hidden_size(mcfg)
        changes["lr"] = lr_for_width(width)
        log.info("learning rate %.2g for hidden size %s", changes["lr"], width)
    return dataclasses.replace(config, **changes) if changes else config


def lr_for_width(hidden_size: int | None) -> float:
    """1e-4 at width 4096, scaled by 4096 / width (Adam learning rates scale inversely with width, as in muP),
    within [1e-5, 2e-3]; 1e-4 when the width is unknown. The ceiling is the highest rate the learning benchmark
    measured on its 128-wide model (2e-3 learnt; 1e-3 learnt less; README)."""
    if not hidden_size:
        return 1e-4
    return float(min(2e-3, max(1e-5, 1e-4 * 4096 / hidden_size)))


def _hidden_size(mcfg: Any) -> int | None:
    for name in ("hidden_size", "n_embd", "d_model"):
        value = getattr(mcfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def lora_targets(model: nn.Module) -> list[str]:
    """Leaf names of every linear projection inside the transformer blocks (attention and MLP), per architecture.

    Llama/Qwen/Mistral give q,k,v,o,gate,up,down_proj; GPT-2 gives c_attn, c_proj, c_fc (Conv1D); GPT-NeoX gives
    query_key_value, dense, dense_h_to_4h, dense_4h_to_h.
    """
    leaves: set[str] = set()
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in _NEVER or not name:
            continue
        if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":
            leaves.add(leaf)
    if not leaves:
        raise ModelNotAvailable(f"no linear projections found in {type(model).__name__}",
                                fix="set `lora_targets` in [tool.redline.train]")
    return sorted(leaves)


def attach_lora(model: nn.Module, config: TrainConfig, *, adapter_dir: Path | None = None) -> Any:
    """Wrap `model` in a trainable PEFT LoRA (fresh, or continued from `adapter_dir`). Only LoRA weights train."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter_dir is not None:
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    else:
        targets = list(config.lora_targets) if config.lora_targets else lora_targets(model)
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=targets, bias="none", task_type="CAUSAL_LM")
        peft_model = get_peft_model(model, lora)
    if config.gradient_checkpointing:
        peft_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        peft_model.enable_input_require_grads()
    for name, param in peft_model.named_parameters():
        param.requires_grad_("lora_" in name)
    return peft_model


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short stable hash of the vocabulary and special tokens: records tokenized elsewhere are reused only
    when this matches."""
    vocab = sorted(tokenizer.get_vocab().items())
    special = sorted(str(t) for t in tokenizer.all_special_tokens)
    blob = repr((vocab, special)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(blob).hexdigest()[:16]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
