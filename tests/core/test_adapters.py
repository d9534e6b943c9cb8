from __future__ import annotations

import json
from pathlib import Path

import pytest

from redline.adapters import AdapterRegistry
from redline.errors import NotFound


def fake_adapter(path: Path, records: int = 2) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text("{}")
    (path / "adapter_model.safetensors").write_bytes(b"weights")
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
