from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from redline.adapters import AdapterDamaged, AdapterRegistry
from redline.errors import NotFound

#: the smallest complete safetensors file: an 8-byte header length and an empty JSON header
EMPTY_SAFETENSORS = struct.pack("<Q", 2) + b"{}"


def fake_adapter(path: Path, records: int = 2) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text("{}")
    (path / "adapter_model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    (path / "redline.json").write_text(json.dumps({"method": "self-distill", "records": ["a"] * records}))
    (path / "checkpoints").mkdir()
    return path


def test_add_promote_rollback(tmp_path: Path) -> None:
    reg = AdapterRegistry(tmp_path / "adapters")
    assert reg.versions() == [] and reg.current() is None
    v1 = reg.add(fake_adapter(tmp_path / "t1"), {"gate": {"passed": True}})
    v2 = reg.add(fake_adapter(tmp_path / "t2", 5), {"parent_version": v1})
    assert (v1, v2) == ("v0001", "v0002") and reg.versions() == [v1, v2]
    assert not (reg.path(v1) / "checkpoints").exists()
    assert reg.meta(v1)["gate"]["passed"] and reg.meta(v1)["version"] == v1 and reg.meta(v1)["records"]
    reg.promote(v1)
    reg.promote(v2)
    assert reg.current() == v2 and reg.current_path() == reg.versions_dir / v2
    rows = reg.table()
    assert [r["current"] for r in rows] == [False, True] and rows[1]["records"] == 5
    assert reg.rollback() == v1 and reg.current() == v1
    assert reg.rollback() is None and reg.current() is None
    with pytest.raises(NotFound):
        reg.rollback()
    with pytest.raises(NotFound):
        reg.promote("v0099")


def test_half_written_versions_are_never_listed_or_served(tmp_path: Path) -> None:
    reg = AdapterRegistry(tmp_path / "adapters")
    v1 = reg.add(fake_adapter(tmp_path / "t1"))
    reg.promote(v1)
    staging = reg.versions_dir / ".staging-v0002-123"  # a crash during add
    fake_adapter(staging)
    partial = reg.versions_dir / "v0003"  # a directory someone half-copied by hand
    partial.mkdir()
    (partial / "adapter_config.json").write_text("{}")
    assert reg.versions() == [v1]
    with pytest.raises(NotFound):
        reg.promote("v0003")
    assert reg.add(fake_adapter(tmp_path / "t4")) == "v0004"  # never reuses a name a crash left behind
    (reg.root / "current").write_text('{"current": "v0003"}')
    assert reg.current() is None  # a pointer to an incomplete version serves the base model
    assert not list(reg.root.glob(".current*"))  # no temp files left from atomic writes


def real_adapter(path: Path) -> Path:
    """An adapter folder with a real (tiny) safetensors file: one LoRA pair, float32."""
    import numpy as np
    from safetensors.numpy import save_file

    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": 2, "peft_type": "LORA"}))
    tensors = {"base_model.model.x.lora_A.weight": np.ones((2, 8), np.float32),
               "base_model.model.x.lora_B.weight": np.ones((8, 2), np.float32)}
    save_file(tensors, str(path / "adapter_model.safetensors"))
    return path


def test_registration_records_digests_and_promote_checks_them(tmp_path: Path) -> None:
    """Issue #30: `truncate -s 1000 …/adapter_model.safetensors; redline adapters promote v0002` said "now current"."""
    reg = AdapterRegistry(tmp_path / "adapters")
    v1, v2, v3 = (reg.add(real_adapter(tmp_path / f"t{i}")) for i in (1, 2, 3))
    digests = reg.meta(v1)["digests"]
    assert set(digests) == {"adapter_config.json", "adapter_model.safetensors"} and reg.verify(v1) == reg.path(v1)
    os.truncate(reg.path(v2) / "adapter_model.safetensors", 100)
    with pytest.raises(AdapterDamaged, match=r"adapter v0002 is damaged: adapter_model\.safetensors is not a complete"):
        reg.promote(v2)
    weights = reg.path(v3) / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4:] = b"\0\0\0\0"  # same size, same header: only the digest tells
    weights.write_bytes(bytes(data))
    with pytest.raises(AdapterDamaged, match="sha256 differs") as err:
        reg.promote(v3)
    assert "\n" not in str(err.value) and "redline train" in str(err.value)
    (reg.path(v1) / "adapter_config.json").write_text('{"r": 4}')
    with pytest.raises(AdapterDamaged, match=r"adapter_config\.json"):
        reg.verify(v1)
    assert reg.current() is None


def test_a_version_from_before_digests_gets_the_header_check(tmp_path: Path) -> None:
    reg = AdapterRegistry(tmp_path / "adapters")
    v1 = reg.add(real_adapter(tmp_path / "t1"))
    meta = reg.meta(v1)
    del meta["digests"]
    (reg.path(v1) / "redline.json").write_text(json.dumps(meta))
    reg.promote(v1)
    os.truncate(reg.path(v1) / "adapter_model.safetensors", 40)
    with pytest.raises(AdapterDamaged, match="safetensors"):
        reg.verify(v1)


def test_a_trainer_that_wrote_a_broken_file_fails_at_registration(tmp_path: Path) -> None:
    reg = AdapterRegistry(tmp_path / "adapters")
    src = real_adapter(tmp_path / "t1")
    os.truncate(src / "adapter_model.safetensors", 30)
    with pytest.raises(AdapterDamaged):
        reg.add(src)
    assert reg.versions() == [] and not list(reg.versions_dir.iterdir())  # no staging directory left


def test_the_layout_check_without_safetensors_installed(tmp_path: Path) -> None:
    from redline.adapters import _layout_problem

    weights = real_adapter(tmp_path / "t1") / "adapter_model.safetensors"
    assert _layout_problem(weights) is None
    size = weights.stat().st_size
    os.truncate(weights, size - 4)
    assert "header describes" in (_layout_problem(weights) or "")
    os.truncate(weights, 5)
    assert "no valid header" in (_layout_problem(weights) or "")
