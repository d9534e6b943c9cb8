"""The bench's training variants (`bench/methods.py`): best-of-k with a checker, SFT on human edits, the EMA
teacher and on-policy resampling, each a `Method` the trainer's loop runs like its own. On the trainer tests'
tiny random Llama (`tests/trainer/conftest.py`)."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("torch")

import torch
from safetensors.torch import load_file

from bench.methods import EmaTeacher, SelfDistillVariant, method_for, on_policy
from redline.errors import ConfigError
from redline.records import Feedback
from redline.trainer.api import TrainConfig, TrainingExample, train
from redline.trainer.contexts import Rendering, build_pair
from redline.trainer.errors import TrainError
from redline.trainer.methods import SelfDistill
from redline.trainer.model import attach_lora, load_base


def _trainer_helpers():  # type: ignore[no-untyped-def]
    """tests/trainer/conftest.py under a name of its own (a `conftest` module of another folder may be loaded)."""
    path = Path(__file__).resolve().parents[1] / "trainer" / "conftest.py"
    spec = importlib.util.spec_from_file_location("trainer_test_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_helpers = _trainer_helpers()
failing, raw_generation = _helpers.failing, _helpers.raw_generation


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return _helpers.build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def examples(n: int = 8) -> list[TrainingExample]:
    gens = [raw_generation(i) for i in range(n)]
    return [TrainingExample(g, failing(g)) for g in gens]


def test_baselines(tiny_model: Path, tmp_path: Path) -> None:
    exs = examples(4)
    g = exs[0].generation
    exs[0].feedback.append(Feedback(kind="edit", source="human", correction="    return a * b\n",
                                    generation_id=g.id))
    r = train(tiny_model, exs, tmp_path / "edit", TrainConfig(max_steps=2), method=method_for("sft-edit"),
              progress=False)
    assert r.pairs == 1 and r.method == "sft-edit" and (tmp_path / "edit" / "adapter_model.safetensors").exists()
    with pytest.raises(TrainError, match="human edits"):
        train(tiny_model, exs[1:], tmp_path / "no-edit", TrainConfig(max_steps=2), method=method_for("sft-edit"),
              progress=False)
    with pytest.raises(TrainError, match="checker"):
        method_for("scalar")
    cfg = TrainConfig(max_steps=2, revision_max_new_tokens=6)
    seen = []
    scalar = method_for("scalar", {"scalar_k": 2}, checker=lambda ex, text: seen.append(text) or len(seen) % 2 == 0)
    r = train(tiny_model, exs[:2], tmp_path / "scalar", cfg, method=scalar, progress=False)
    assert len(seen) == 4 and r.pairs == 2


def test_variant_settings_are_checked_and_reach_the_method() -> None:
    assert type(method_for("self-distill")) is SelfDistill  # no variant asked for: the product's method
    ema = method_for("self-distill", {"teacher": "ema", "ema_rate": 0.5, "scalar_k": 2})  # scalar_k: not its own
    assert isinstance(ema, SelfDistillVariant) and ema.ema_rate == 0.5 and not ema.caches_teacher
    assert "EMA" in ema.name
    for settings, expected in [({"teacher": "magic"}, "'base' or 'ema'"), ({"ema_rate": 0}, "(0, 1]"),
                               ({"on_policy_ratio": 2}, "[0, 1]"), ({"scalar_k": 0}, "≥ 1")]:
        with pytest.raises(ConfigError, match="invalid") as err:
            method_for("self-distill", settings)
        assert f"`{next(iter(settings))}`" in str(err.value) and expected in str(err.value)
    with pytest.raises(ConfigError, match="unless the method is self-distill"):
        method_for("sft-revision", {"on_policy_ratio": 0.5})
    with pytest.raises(ConfigError, match="unknown method"):
        method_for("rl")


def test_on_policy_mode_resamples_attempts(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    import bench.methods

    calls = []
    real = bench.methods.on_policy

    def spy(model, tokenizer, pairs, *args):  # type: ignore[no-untyped-def]
        out = real(model, tokenizer, pairs, *args)
        calls.append(sum(a is not b for a, b in zip(pairs, out, strict=True)))
        return out

    monkeypatch.setattr(bench.methods, "on_policy", spy)
    cfg = TrainConfig(max_steps=3, batch_size=4, lr=1e-3, use_revisions=False)
    train(tiny_model, examples(4), tmp_path / "op", cfg, method=method_for("self-distill", {"on_policy_ratio": 1.0}),
          progress=False)
    assert calls == [4, 4, 4]


def test_on_policy_mode_resamples_attempts_never_the_teachers_rewrites(tiny_model: Path) -> None:
    model, tok = load_base(tiny_model)
    cfg = TrainConfig()
    attempt = build_pair(tok, 0, raw_generation(), failing(raw_generation()), Rendering.of(cfg))
    rewrite = replace(attempt, completion_ids=[5, 6, 7], rewrite=True)
    out = on_policy(model, tok, [attempt, rewrite], cfg.seed, cfg.max_length, 0, 1.0)
    assert out[0] is not attempt and out[1] is rewrite


def test_ema_teacher_trains_saves_only_the_student_and_resumes(tiny_model: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(max_steps=4, checkpoint_every=2, lr=1e-2, batch_size=4)

    def ema_method() -> SelfDistillVariant:
        return SelfDistillVariant(teacher="ema", ema_rate=0.5)

    straight = train(tiny_model, examples(4), tmp_path / "a", cfg, method=ema_method(), progress=False)
    assert straight.steps == 4 and not (tmp_path / "a" / "ema").exists()

    class Stop(Exception):
        pass

    def stop_after_checkpoint(step: int, stats: dict) -> None:
        if step == 2:
            raise Stop

    with pytest.raises(Stop):
        train(tiny_model, examples(4), tmp_path / "b", cfg, method=ema_method(), progress=False,
              on_step=stop_after_checkpoint)
    resumed = train(tiny_model, examples(4), tmp_path / "b", cfg, method=ema_method(), progress=False)
    assert resumed.resumed_from_step == 2
    a = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "adapter_model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)  # the EMA state was checkpointed too

    base, _tok = load_base(tiny_model)
    model = attach_lora(base, cfg)
    ema = EmaTeacher(model, 0.5)
    assert all(not e.requires_grad and s.requires_grad for e, s in ema.pairs)
    with torch.no_grad():
        for _, s in ema.pairs:
            s.add_(1.0)
    ema.update()
    assert all(torch.allclose(e, s - 0.5) for e, s in ema.pairs)
    with ema.active():
        pass
    assert all(not e.requires_grad and s.requires_grad for e, s in ema.pairs)
