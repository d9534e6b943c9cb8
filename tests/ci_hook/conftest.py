"""Fixtures for the CI hook: a checkout of the sample project with a queue, and the real-tool samples in it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from redline.config import Config, load_config
from redline.ledger import record_generation
from redline.queue import Store, open_store
from redline.records import Generation, Insertion, ModelRef, Prompt, Range

SAMPLES = Path(__file__).parent / "samples"

#: the sample project has failing tests of its own: they are data, not part of this suite
collect_ignore = ["samples"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(SAMPLES / "project", root)
    (root / ".git").mkdir()
    return root


@pytest.fixture
def config(repo: Path, redline_home: Path) -> Config:
    return load_config(repo)


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    s = open_store(config)
    yield s
    s.close()


@pytest.fixture
def sample(repo: Path, tmp_path: Path):
    """Copy a sample report into the temporary checkout, its recorded root replaced by the checkout's."""

    def make(name: str) -> Path:
        out = tmp_path / "reports" / name
        out.parent.mkdir(exist_ok=True)
        out.write_text((SAMPLES / name).read_text().replace("@ROOT@", str(repo)))
        return out

    return make


@pytest.fixture
def generation_at(store: Store, config: Config):
    """Record a generation whose completion is lines first..last (0-based, inclusive) of `path` as they are now."""

    def make(path: str, first: int, last: int) -> Generation:
        lines = (config.repo_root / path).read_text().splitlines(keepends=True)
        gen = Generation(prompt_format="fim", prompt=Prompt(prefix="".join(lines[:first]), suffix=""),
                         completion="".join(lines[first:last + 1]), model=ModelRef("tiny"),
                         insertion=Insertion(path, Range(first, last + 1)))
        return record_generation(store, config, gen)

    return make
