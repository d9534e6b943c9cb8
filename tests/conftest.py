"""Shared fixtures: every test gets its own Redline home, so no test touches the user's data dir."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def redline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "redline-home"
    monkeypatch.setenv("REDLINE_HOME", str(home))
    return home
