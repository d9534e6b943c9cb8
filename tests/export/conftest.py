"""A tiny Llama base and a PEFT LoRA on it with non-zero weights, registered as v0001 of a throw-away repo."""

from __future__ import annotations

from pathlib import Path

import pytest

from redline.config import Config, load_config
from tests.export.helpers import build_adapter, build_base, register


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="session")
def tiny_adapter(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_adapter(tiny_base, tmp_path_factory.mktemp("adapter") / "a")


@pytest.fixture
def repo(tmp_path: Path, tiny_base: Path, tiny_adapter: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    root = tmp_path / "app"
    root.mkdir()
    (root / "redline.toml").write_text(f'model = "{tiny_base}"\nrepo_id = "github.com/acme/app"\n')
    monkeypatch.chdir(root)
    config = load_config(root)
    register(config, tiny_adapter, str(tiny_base))
    return config
