"""llama.cpp: the GGUF LoRA reads back with gguf.GGUFReader holding exactly the PEFT weights, in llama.cpp's layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from redline.errors import ConfigError, NotFound
from redline.export.runtimes import export_adapter

gguf = pytest.importorskip("gguf", reason="the `gguf` package (redline[export]) is not installed")

HEADS, KV_HEADS, LAYERS = 4, 2, 2  # the tiny base in conftest.py
NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
         "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def peft_weights(adapter: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


def rotary_rows(b: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp pairs rotary dims as (2i, 2i+1) within a head, HF as (i, i + head_dim/2): row
    h*hd + 2i + j of the GGUF tensor is row h*hd + j*hd/2 + i of the HF one."""
    hd = b.shape[0] // n_head
    out = np.empty_like(b)
    for h in range(n_head):
        for i in range(hd // 2):
            for j in range(2):
                out[h * hd + 2 * i + j] = b[h * hd + j * (hd // 2) + i]
    return out


def fields(reader) -> dict:
    return {k: f.contents() for k, f in reader.fields.items() if f.types and f.types[0] != gguf.GGUFValueType.ARRAY}


def test_the_gguf_lora_holds_the_peft_weights_in_llamacpp_layout(repo, tiny_base: Path, tiny_adapter: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "lora.gguf"
    exp = export_adapter(repo, "v0001", "llamacpp", out)
    assert exp.path == out and exp.commands == [f"python convert_hf_to_gguf.py {tiny_base} --outfile BASE.gguf",
                                                f"llama-server -m BASE.gguf --lora {out}"]
    reader = gguf.GGUFReader(out)
    meta = fields(reader)
    assert meta["general.type"] == "adapter" and meta["adapter.type"] == "lora"
    assert meta["general.architecture"] == "llama" and meta["adapter.lora.alpha"] == pytest.approx(8.0)
    assert meta["general.name"] == "app@v0001"
    tensors = {t.name: t for t in reader.tensors}
    peft = peft_weights(tiny_adapter)
    expected = {f"blk.{n}.{g}.weight.lora_{ab}" for n in range(LAYERS) for g in NAMES.values() for ab in "ab"}
    assert set(tensors) == expected
    for n in range(LAYERS):
        for hf, g in NAMES.items():
            mod = "self_attn" if hf in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            key = f"base_model.model.model.layers.{n}.{mod}.{hf}"
            a, b = peft[f"{key}.lora_A.weight"], peft[f"{key}.lora_B.weight"]
            ta, tb = tensors[f"blk.{n}.{g}.weight.lora_a"], tensors[f"blk.{n}.{g}.weight.lora_b"]
            assert ta.tensor_type == gguf.GGMLQuantizationType.F32
            # ggml lists dimensions innermost first: lora_a is (in, rank), lora_b is (rank, out)
            assert list(ta.shape) == [a.shape[1], a.shape[0]] and list(tb.shape) == [b.shape[1], b.shape[0]]
            np.testing.assert_array_equal(ta.data, a)
            heads = {"q_proj": HEADS, "k_proj": KV_HEADS}.get(hf)
            np.testing.assert_array_equal(tb.data, b if heads is None else rotary_rows(b, heads))


def test_rslora_alpha_keeps_the_scale(repo, tiny_base: Path, tmp_path: Path) -> None:
    from tests.export.helpers import build_adapter, register

    adapter = build_adapter(tiny_base, tmp_path / "rs", r=4, alpha=8, use_rslora=True)
    version = register(repo, adapter, str(tiny_base))
    out = export_adapter(repo, version, "llamacpp", tmp_path / "rs.gguf").path
    alpha = fields(gguf.GGUFReader(out))["adapter.lora.alpha"]
    assert alpha / 4 == pytest.approx(8 / 4**0.5)  # llama.cpp's alpha/r equals PEFT's rsLoRA alpha/sqrt(r)


def write_base_gguf(path: Path, *, hidden: int, layers: int = LAYERS) -> Path:
    """A GGUF base with just the metadata and the adapted weights' shapes (what the check reads)."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(layers)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    kv = hidden // HEADS * KV_HEADS
    shapes = {"attn_q": (hidden, hidden), "attn_k": (kv, hidden), "attn_v": (kv, hidden),
              "attn_output": (hidden, hidden), "ffn_gate": (2 * hidden, hidden), "ffn_up": (2 * hidden, hidden),
              "ffn_down": (hidden, 2 * hidden)}
    for n in range(layers):
        for g, shape in shapes.items():
            w.add_tensor(f"blk.{n}.{g}.weight", np.zeros(shape, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_base_gguf_is_checked_and_named_in_the_command(repo, tmp_path: Path) -> None:
    base = write_base_gguf(tmp_path / "base.gguf", hidden=64)
    exp = export_adapter(repo, "current", "llamacpp", tmp_path, base=str(base))
    assert exp.path == tmp_path / "app-v0001.gguf" and exp.path.is_file()
    assert exp.commands == [f"llama-server -m {base} --lora {exp.path}"]


def test_a_base_gguf_of_another_model_is_refused_naming_both(repo, tiny_base: Path, tmp_path: Path) -> None:
    base = write_base_gguf(tmp_path / "wide.gguf", hidden=128)
    with pytest.raises(ConfigError) as err:
        export_adapter(repo, "current", "llamacpp", tmp_path / "x.gguf", base=str(base))
    line = str(err.value)
    assert str(tiny_base) in line and str(base) in line and "blk.0" in line and "\n" not in line
    assert not list(tmp_path.glob("*x.gguf*"))  # nothing written, not even a temp file


def test_an_hf_base_folder_is_checked_and_used_for_the_layout(repo, tiny_base: Path, tmp_path: Path) -> None:
    from tests.export.helpers import build_base

    exp = export_adapter(repo, "current", "llamacpp", tmp_path / "a.gguf", base=str(tiny_base))
    assert exp.commands[0] == f"python convert_hf_to_gguf.py {tiny_base} --outfile BASE.gguf"
    wide = build_base(tmp_path / "w", hidden=128)
    with pytest.raises(ConfigError, match="does not fit"):
        export_adapter(repo, "current", "llamacpp", tmp_path / "b.gguf", base=str(wide))


def test_without_the_base_config_the_fix_is_named(repo, tiny_base: Path, tiny_adapter: Path, tmp_path: Path) -> None:
    from redline.config import load_config
    from tests.export.helpers import register

    (repo.repo_root / "redline.toml").write_text('repo_id = "github.com/acme/app"\n')
    config = load_config(repo.repo_root)
    version = register(config, tiny_adapter, "/gone/model")
    with pytest.raises(NotFound, match=r"--base BASE\.gguf"):
        export_adapter(config, version, "llamacpp", tmp_path / "y.gguf")


def test_an_architecture_without_a_mapping_points_at_llamacpps_converter(tmp_path: Path) -> None:
    from redline.export.gguf_lora import base_shape_from_hf

    with pytest.raises(ConfigError, match=r"convert_lora_to_gguf\.py"):
        base_shape_from_hf(json.loads('{"architectures": ["GPT2LMHeadModel"]}'), "x")
