"""The engine in-process: a server started before any adapter exists picks the first promotion up, and an
explicit version asked for before that works too (regression: it used to call set_adapter on the bare model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from redline.adapters import AdapterRegistry
from redline.config import load_config
from redline.serve.engine import Engine
from redline.serve.shapes import parse_request
from tests.serve.conftest import World, _adapter

pytestmark = pytest.mark.slow


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


def _engine(serve_world: World, tmp_path: Path) -> Engine:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True, exist_ok=True)
    return Engine(load_config(repo, env={"REDLINE_HOME": str(tmp_path / "home")}), serve_world.model)


def test_streamed_pieces_are_the_completion_coalesced_after_the_first(serve_world: World, tmp_path: Path,
                                                                       monkeypatch):
    """Every token is its own piece when the interval is 0; with a long interval the first piece still goes at
    once and the rest in one piece at the end; either way the pieces join to exactly the recorded completion."""
    import redline.serve.engine as engine_module

    engine = _engine(serve_world, tmp_path)
    req = parse_request("openai_completions", {"prompt": "def f():\n", "max_tokens": 24, "temperature": 0})
    counts = {}
    for interval in (0.0, 3600.0):
        monkeypatch.setattr(engine_module, "STREAM_INTERVAL_S", interval)
        pieces: list[str] = []
        out = engine.generate(engine.prepare(req), req, None, on_tokens=pieces.append)
        assert out is not None and "".join(pieces) == out.result.completion
        assert len(out.token_ids) >= 8, "the tiny model stopped too early to tell"
        counts[interval] = len(pieces)
    # (a token that ends inside a UTF-8 character waits for the next one, so not quite one piece per token)
    assert counts[0.0] > 4 and counts[3600.0] == 2


def test_stop_string_in_the_middle_of_a_token_run(serve_world: World, tmp_path: Path):
    """The completion ends before the stop string, found wherever it starts in the new text."""
    engine = _engine(serve_world, tmp_path)
    req = parse_request("openai_completions", {"prompt": "def f():\n", "max_tokens": 24, "temperature": 0})
    full = engine.generate(engine.prepare(req), req, None)
    assert full is not None
    text = full.result.completion
    stop = text[len(text) // 2:len(text) // 2 + 2]
    assert stop.strip(), f"pick a prompt whose answer has text mid-way: {text!r}"
    req = parse_request("openai_completions", {"prompt": "def f():\n", "max_tokens": 24, "temperature": 0,
                                               "stop": [stop]})
    pieces: list[str] = []
    out = engine.generate(engine.prepare(req), req, None, on_tokens=pieces.append)
    assert out is not None and out.result.finish == "word"
    assert stop not in out.result.completion and text.startswith(out.result.completion)
    assert "".join(pieces) == out.result.completion


def _wrong_rank(serve_world: World, tmp_path: Path, registry: AdapterRegistry) -> str:
    """Intact files that pass every file check, with a rank peft injects before it finds the tensors too small."""
    src = tmp_path / "wrong-rank"
    shutil.copytree(AdapterRegistry(serve_world.config.adapters_dir).path("v0001"), src)
    config = json.loads((src / "adapter_config.json").read_text())
    (src / "adapter_config.json").write_text(json.dumps({**config, "r": config["r"] * 2}))
    return registry.add(src, {})


def test_a_failed_load_is_taken_out_of_peft(serve_world: World, tmp_path: Path):
    """Issue #30: the failed load stayed registered in peft, and every later load answered "already exists"."""
    from redline.serve.engine import AdapterUnavailable

    engine = _engine(serve_world, tmp_path)
    registry = AdapterRegistry(engine.config.adapters_dir)
    good = registry.add(AdapterRegistry(serve_world.config.adapters_dir).path("v0001"), {})
    registry.promote(good)
    assert engine.sync(force=True) == good
    bad = _wrong_rank(serve_world, tmp_path, registry)
    for _ in range(2):  # a second try (what a reload does) fails for the same reason, not "already exists"
        engine.failed.clear()
        with pytest.raises(AdapterUnavailable, match="size mismatch"):
            engine.ensure(bad)
        assert bad not in engine.model.peft_config and f"{engine.repo_name}@{bad}" not in engine.model_names()
    with pytest.raises(AdapterUnavailable):
        engine.resolve(f"{engine.repo_name}@{bad}")
    req = parse_request("openai_completions", {"prompt": "def f():\n", "max_tokens": 4, "temperature": 0})
    assert engine.generate(engine.prepare(req), req, good) is not None


def test_a_failed_first_load_leaves_the_base_model_clean(serve_world: World, tmp_path: Path):
    """Wrapping the bare model in peft injects the adapter's layers before its weights are read: a failure there
    must not leave them in the base model (they would change every base-model answer)."""
    from redline.serve.engine import AdapterUnavailable

    engine = _engine(serve_world, tmp_path)
    req = parse_request("openai_completions", {"prompt": "def f():\n", "max_tokens": 8, "temperature": 0})
    before = engine.generate(engine.prepare(req), req, None)
    bad = _wrong_rank(serve_world, tmp_path, AdapterRegistry(engine.config.adapters_dir))
    with pytest.raises(AdapterUnavailable, match="size mismatch"):
        engine.ensure(bad)
    assert not hasattr(engine.model, "peft_config")
    after = engine.generate(engine.prepare(req), req, None)
    assert before is not None and after is not None and after.token_logprobs == before.token_logprobs


def test_an_adapter_of_another_shape_never_reaches_peft(serve_world: World, tmp_path: Path):
    from safetensors.torch import load_file, save_file

    from redline.serve.engine import AdapterUnavailable

    engine = _engine(serve_world, tmp_path)
    registry = AdapterRegistry(engine.config.adapters_dir)
    src = tmp_path / "wide"
    shutil.copytree(AdapterRegistry(serve_world.config.adapters_dir).path("v0001"), src)
    tensors = load_file(str(src / "adapter_model.safetensors"))
    save_file({k: (v.new_zeros(v.shape[0], v.shape[1] + 3) if "lora_A" in k else v) for k, v in tensors.items()},
              str(src / "adapter_model.safetensors"))
    bad = registry.add(src, {})
    with pytest.raises(AdapterUnavailable, match="does not fit this model"):
        engine.ensure(bad)
    assert not hasattr(engine.model, "peft_config")
