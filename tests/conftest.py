"""Shared fixtures: every test gets its own Redline home, so no test touches the user's data dir."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def redline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "redline-home"
    monkeypatch.setenv("REDLINE_HOME", str(home))
    return home


@pytest.fixture
def world_model() -> Path:
    """The committed tiny model of bench/world (or REDLINE_DEMO_MODEL=DIR); skips when neither is there."""
    import os

    from bench.world.pretrain import MODEL_DIR, verify

    override = os.environ.get("REDLINE_DEMO_MODEL")
    if override:
        return Path(override)
    if not verify(MODEL_DIR):
        pytest.skip("the committed tiny model (bench/world/model) is missing; set REDLINE_DEMO_MODEL=DIR")
    return MODEL_DIR
