"""`redline proxy` in front of vLLM (a stand-in process: vLLM needs a GPU): OpenAI requests go to the promoted
adapter, loaded once under its versioned name, and a newly promoted version under a new name — never reloaded
under the old one (vLLM keys its prefix cache by adapter name)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from redline.adapters import AdapterRegistry
from redline.config import load_config
from redline.queue import open_store
from tests.core.test_adapters import EMPTY_SAFETENSORS
from tests.export.test_vllm import Fake, start_fake
from tests.serve.conftest import World, start, stop

pytestmark = pytest.mark.slow


@pytest.fixture
def vllm(tmp_path: Path) -> Iterator[Fake]:
    (tmp_path / "fake").mkdir()
    yield from start_fake(tmp_path / "fake")


def register(world: World, n: int) -> str:
    """A registered, promoted adapter version for the stand-in's base model."""
    src = world.repo.parent / f"adapter{n}"
    src.mkdir()
    (src / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    (src / "adapter_model.safetensors").write_bytes(EMPTY_SAFETENSORS)
    registry = AdapterRegistry(world.config.adapters_dir)
    version = registry.add(src, {"base_model": {"id": "base-model"}})
    registry.promote(version)
    return version


def test_openai_requests_reach_the_promoted_adapter_under_a_new_name_per_version(
        tmp_path: Path, redline_home: Path, vllm: Fake) -> None:
    repo = tmp_path / "app"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "redline.toml").write_text('model = "base-model"\n')
    world = World(repo=repo, home=redline_home, model=Path("base-model"))
    v1 = register(world, 1)
    proc = start(["proxy", "--upstream", vllm.url, "--port", "0"], world, ready="redline proxy:")
    url = proc.ready_line.split()[2]  # type: ignore[attr-defined]
    try:
        def complete() -> dict:
            r = httpx.post(url + "/v1/completions", json={"model": "base-model", "prompt": "x", "max_tokens": 4},
                           timeout=30)
            assert r.status_code == 200, r.text
            return r.json()

        first, again = complete(), complete()
        assert first["model"] == again["model"] == f"app@{v1}"
        v2 = register(world, 2)
        assert complete()["model"] == f"app@{v2}"
        loads = [(b["lora_name"], Path(b["lora_path"]).name) for b in vllm.loads() if "lora_name" in b]
        assert loads == [(f"app@{v1}", v1), (f"app@{v2}", v2)]  # each version once, each under its own name
        store = open_store(load_config(repo, env={"REDLINE_HOME": str(redline_home)}))
        try:
            assert sorted(g.adapter_version for g in store.generations()) == [v1, v1, v2]
        finally:
            store.close()
    finally:
        stop(proc)
