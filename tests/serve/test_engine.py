"""The engine in-process: a server started before any adapter exists picks the first promotion up, and an
explicit version asked for before that works too (regression: it used to call set_adapter on the bare model)."""

from __future__ import annotations

from pathlib import Path

from redline.config import load_config
from redline.trainer.registry import AdapterRegistry
from redline.trainer.serve.engine import Engine
from redline.trainer.serve.shapes import parse_request
from tests.serve.conftest import World, _adapter


def test_first_adapter_arrives_while_serving(serve_world: World, tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    config = load_config(repo, env={"REDLINE_HOME": str(tmp_path / "home")})
    engine = Engine(config, serve_world.model)
    assert engine.current is None and engine.sync() is None
    registry = AdapterRegistry(config.adapters_dir)
    version = registry.add(_adapter(serve_world.model, tmp_path / "lora", 3), {})
    req = parse_request("openai_completions", {"prompt": "def f():\n", "max_tokens": 4, "temperature": 0,
                                               "model": f"{engine.repo_name}@{version}"})
    explicit = engine.generate(engine.prepare(req), req, engine.resolve(req.model))
    assert explicit is not None and engine.current is None  # asked for, not promoted
    base = engine.generate(engine.prepare(req), req, None)
    registry.promote(version)
    assert engine.sync() == version == engine.resolve(None)
    served = engine.generate(engine.prepare(req), req, engine.resolve(None))
    assert served.token_logprobs == explicit.token_logprobs != base.token_logprobs
