"""The tiny HF Llama as a GGUF *base* model for llama.cpp, written with the gguf package (test-only).

Laid out as llama.cpp's convert_hf_to_gguf.py lays out a Llama (q/k rows permuted for its rotary layout). A
byte-level BPE `tokenizer.json` beside the weights becomes a `gpt2` vocabulary (tokens, types, merges, BOS/EOS);
without one the model has no vocabulary (`tokenizer.ggml.model = "none"`) and is fed token ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_llama_gguf(hf_dir: Path, out: Path) -> Path:
    import gguf
    from safetensors.numpy import load_file

    from redline.export.gguf_lora import permute_rows

    cfg = json.loads((hf_dir / "config.json").read_text())
    hidden, heads, layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    w = gguf.GGUFWriter(out, "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(hidden // heads)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    _add_vocab(w, hf_dir)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, layers)
    weights = {}
    for file in sorted(hf_dir.glob("*.safetensors")):
        weights.update(load_file(str(file)))
    for hf_name, array in sorted(weights.items()):
        name = names.get_name(hf_name, try_suffixes=(".weight",))
        if name is None:
            raise ValueError(f"no GGUF name for {hf_name}")
        array = array.astype(np.float32)
        if name.endswith("attn_q.weight"):
            array = permute_rows(array, heads)
        elif name.endswith("attn_k.weight"):
            array = permute_rows(array, kv_heads)
        w.add_tensor(name, np.ascontiguousarray(array))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def _add_vocab(w, hf_dir: Path) -> None:
    import gguf

    tok_file = hf_dir / "tokenizer.json"
    if not tok_file.is_file():
        w.add_tokenizer_model("none")
        return
    tok = json.loads(tok_file.read_text())
    vocab: dict[str, int] = dict(tok["model"]["vocab"])
    special = {t["content"] for t in tok.get("added_tokens", []) if t.get("special")}
    vocab.update({t["content"]: t["id"] for t in tok.get("added_tokens", [])})
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    cfg = json.loads((hf_dir / "tokenizer_config.json").read_text())
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab[cfg["bos_token"]])
    w.add_eos_token_id(vocab[cfg["eos_token"]])
    w.add_pad_token_id(vocab[cfg["pad_token"]])
    w.add_add_bos_token(True)
