"""Base-model identity: an adapter is continued, gated, promoted and served only on the base it was trained on.

An identity is {id, revision, config_hash, tokenizer_fingerprint, weights}: `id` is what the user named (a path
or a hub id, informational), `revision` the hub commit when known, `config_hash` the architecture's settings,
`weights` a hash of the first rows of the input embeddings in bf16 (two random-weight models of one shape differ
here, and a float32 load and a bf16 load of one checkpoint agree). Fields missing on either side are not
compared, so adapters written before a field existed still load.

    from redline.trainer.identity import check_base
    check_base(json.loads((adapter_dir / "redline.json").read_text()), model_dir_or_identity)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from redline.errors import RedlineError

#: config keys that say how a model was loaded or saved, not what it is
_VOLATILE = {"transformers_version", "_name_or_path", "dtype", "torch_dtype", "use_cache", "quantization_config",
             "_commit_hash", "_attn_implementation", "attn_implementation", "_attn_implementation_autoset",
             "architectures", "output_attentions", "output_hidden_states", "return_dict"}
#: embedding rows hashed for the weights fingerprint
_ROWS = 64
_EMBED_KEYS = ("embed_tokens.weight", "wte.weight", "embed_in.weight", "word_embeddings.weight")


class BaseModelMismatch(RedlineError):
    """An adapter meets a base model other than the one it was trained on."""


def base_identity(model: Any, tokenizer: Any, model_path: str | Path) -> dict[str, Any]:
    """The identity of a loaded base model (call before LoRA is attached, or on `get_base_model()`)."""
    from redline.trainer.model import tokenizer_fingerprint

    cfg = getattr(model, "config", None)
    emb = model.get_input_embeddings().weight if hasattr(model, "get_input_embeddings") else None
    return {
        "id": str(model_path),
        "revision": getattr(cfg, "_commit_hash", None),
        "architecture": (getattr(cfg, "architectures", None) or [type(model).__name__])[0],
        "config_hash": config_hash(cfg.to_dict()) if cfg is not None else None,
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
        "weights": None if emb is None else _tensor_hash(emb[:_ROWS]),
    }


def identity_of(model_dir_or_id: str | Path) -> dict[str, Any]:
    """The identity of a base model on disk, without loading its weights (config, tokenizer, a slice of the
    embeddings read through safetensors' memory map)."""
    from transformers import AutoConfig, AutoTokenizer

    from redline.trainer.errors import ModelNotAvailable
    from redline.trainer.model import tokenizer_fingerprint

    ref = str(model_dir_or_id)
    folder = _local_dir(ref)
    try:
        cfg = AutoConfig.from_pretrained(ref, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(ref, local_files_only=True)
    except (OSError, ValueError):
        raise ModelNotAvailable(f"cannot read base model {ref!r} to check the adapter was trained on it",
                                fix="point `model` at the base model's directory (or its hub id in the cache)"
                                ) from None
    return {
        "id": ref,
        "revision": getattr(cfg, "_commit_hash", None),
        "architecture": (getattr(cfg, "architectures", None) or ["?"])[0],
        "config_hash": config_hash(cfg.to_dict()),
        "tokenizer_fingerprint": tokenizer_fingerprint(tok),
        "weights": _weights_from_files(folder) if folder is not None else None,
    }


def read_adapter_meta(adapter_dir: str | Path) -> dict[str, Any]:
    """An adapter directory's redline.json ({} when it has none: a plain PEFT adapter from elsewhere)."""
    path = Path(adapter_dir) / "redline.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def check_base(adapter_meta: dict[str, Any], model_dir_or_identity: str | Path | dict[str, Any]) -> None:
    """Raise `BaseModelMismatch` (one line naming both) unless the adapter (its redline.json as a dict) was
    trained on this base model (a directory, a hub id in the local cache, or an identity dict)."""
    trained = dict(adapter_meta.get("base_model") or {})
    trained.setdefault("tokenizer_fingerprint", adapter_meta.get("tokenizer_fingerprint"))
    if not any(trained.get(k) for k in ("config_hash", "tokenizer_fingerprint", "weights", "revision")):
        return  # nothing recorded to compare (an adapter from elsewhere)
    here = (model_dir_or_identity if isinstance(model_dir_or_identity, dict)
            else identity_of(model_dir_or_identity))
    for key, what in (("revision", "revision"), ("config_hash", "architecture settings"),
                      ("tokenizer_fingerprint", "tokenizer"), ("weights", "weights")):
        a, b = trained.get(key), here.get(key)
        if a and b and a != b:
            version = adapter_meta.get("version") or "this adapter"
            raise BaseModelMismatch(
                f"{version} was trained on base model {_describe(trained)} but the base model here is "
                f"{_describe(here)} ({what} differ)",
                fix="use the base model the adapter was trained on, or train a new adapter on this one")


def config_hash(cfg: dict[str, Any]) -> str:
    stable = {k: v for k, v in cfg.items() if k not in _VOLATILE}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _describe(identity: dict[str, Any]) -> str:
    rev = identity.get("revision")
    weights = identity.get("weights")
    return (f"{identity.get('id')!s}" + (f"@{str(rev)[:12]}" if rev else "")
            + (f" [weights {weights[:8]}]" if weights else ""))


def _tensor_hash(t: Any) -> str:
    import torch

    data = t.detach().to("cpu", torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def _local_dir(ref: str) -> Path | None:
    if Path(ref).is_dir():
        return Path(ref)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(ref, local_files_only=True))
    except Exception:
        return None


def _weights_from_files(folder: Path) -> str | None:
    from safetensors import safe_open

    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as fh:
            for key in fh.keys():
                if key.endswith(_EMBED_KEYS):
                    return _tensor_hash(fh.get_slice(key)[:_ROWS])
    return None
