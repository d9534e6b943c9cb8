"""Fit by default: the memory planner shrinks the micro-batch or turns on gradient checkpointing when memory is
short, and an out-of-memory step halves the micro-batch and carries on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import failing, raw_generation
from safetensors.torch import load_file

from redline.trainer.api import TrainConfig, TrainingExample, train
from redline.trainer.plan import ModelShape, estimate_bytes, model_shape, plan_memory

GiB = 2**30
#: a 7B-class Llama in bf16
SEVEN_B = ModelShape(params=6_740_000_000, layers=32, hidden=4096, intermediate=11008, vocab=32000,
                     weight_bytes=13_480_000_000, act_bytes=2)


def _plan(budget: int | None, **cfg: object):  # type: ignore[no-untyped-def]
    return plan_memory(SEVEN_B, TrainConfig(**cfg), seq_len=1024 + 256, completion_len=256, budget=budget)


def test_planner_fits_a_7b_shape_into_a_24gb_card() -> None:
    roomy = _plan(140 * GiB)
    assert roomy.micro_batch == 8 and not roomy.gradient_checkpointing
    mid = _plan(60 * GiB)
    assert mid.micro_batch < 8 and not mid.gradient_checkpointing  # a smaller micro-batch first
    small = _plan(22 * GiB)
    assert small.gradient_checkpointing and small.estimate_bytes * 1.25 <= 22 * GiB
    # the effective batch is the config's: the loop accumulates batch_size / micro_batch micro-batches
    assert TrainConfig().batch_size == 8


def test_settings_the_user_fixed_are_kept() -> None:
    assert _plan(22 * GiB, micro_batch=2).micro_batch == 2
    assert not _plan(22 * GiB, gradient_checkpointing=False).gradient_checkpointing
    assert _plan(None).micro_batch == 8  # free memory unknown: no guess


def test_checkpointing_keeps_a_fraction_of_the_activations() -> None:
    full, ckpt = (estimate_bytes(SEVEN_B, micro_batch=4, seq_len=1280, completion_len=256, top_k=100,
                                 checkpointing=c, lora_r=16, include_weights=False) for c in (False, True))
    assert ckpt < full / 3


def _examples(n: int = 8) -> list[TrainingExample]:
    gens = [raw_generation(i) for i in range(n)]
    return [TrainingExample(g, failing(g)) for g in gens]


@pytest.mark.slow
def test_a_tiny_budget_turns_on_checkpointing_and_the_run_still_trains(tiny_model: Path, tmp_path: Path) -> None:
    from redline.trainer.model import load_base

    model, _ = load_base(tiny_model)
    shape = model_shape(model)
    assert shape.layers == 2 and shape.hidden == 64 and shape.weight_bytes > 0
    result = train(tiny_model, _examples(), tmp_path / "a", TrainConfig(max_steps=2, max_memory="1MB"),
                   progress=False)
    plan = result.metrics["memory_plan"]
    assert plan["gradient_checkpointing"] and plan["micro_batch"] == 1
    assert result.metrics["tokens_per_s"] > 0 and "mfu" not in result.metrics  # no MFU on a CPU


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "adapter_model.safetensors"))


@pytest.mark.slow
def test_an_out_of_memory_step_halves_the_micro_batch_and_resumes(tiny_model: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import redline.trainer.methods as methods

    cfg = dict(max_steps=4, batch_size=4, lr=1e-2, seed=3)
    reference = train(tiny_model, _examples(), tmp_path / "ref", TrainConfig(**cfg, micro_batch=2), progress=False)

    real, calls = methods.distill_loss, {"oom": 0}

    def flaky(model, pairs, *args, **kwargs):  # type: ignore[no-untyped-def]
        if len(pairs) > 2:  # "too big for the card": fails until the micro-batch is halved
            calls["oom"] += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, pairs, *args, **kwargs)

    monkeypatch.setattr(methods, "distill_loss", flaky)
    result = train(tiny_model, _examples(), tmp_path / "oom", TrainConfig(**cfg, micro_batch=4), progress=False)
    assert calls["oom"] == 1 and result.metrics["oom_retries"] == 1 and result.metrics["micro_batch"] == 2
    assert result.steps == reference.steps == 4
    ref, got = _weights(tmp_path / "ref"), _weights(tmp_path / "oom")
    assert all(torch.allclose(ref[k], got[k], atol=1e-6) for k in ref)  # as if it had run at 2 from the start


@pytest.mark.slow
def test_an_out_of_memory_optimizer_step_resumes_from_the_last_checkpoint(tiny_model: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = dict(max_steps=4, batch_size=4, micro_batch=4, lr=1e-2, seed=3, checkpoint_every=2)
    train(tiny_model, _examples(), tmp_path / "ref", TrainConfig(**cfg), progress=False)

    real, state = torch.optim.AdamW.step, {"n": 0, "oom": 0}

    def flaky(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        state["n"] += 1
        if state["n"] == 4:  # the 4th optimizer step (after the checkpoint at step 2) runs out of memory
            state["oom"] += 1
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", flaky)
    result = train(tiny_model, _examples(), tmp_path / "oom", TrainConfig(**cfg), progress=False)
    assert state["oom"] == 1 and result.metrics["micro_batch"] == 2 and result.steps == 4
    ref, got = _weights(tmp_path / "ref"), _weights(tmp_path / "oom")
    assert all(torch.allclose(ref[k], got[k], atol=1e-5) for k in ref)


def test_the_passes_before_training_halve_their_batch_on_out_of_memory_and_say_so_at_one() -> None:
    from redline.trainer.batching import shrinking_batches
    from redline.trainer.errors import TrainError

    lengths = [50, 10, 30, 20, 40, 60]
    seen: list[list[int]] = []

    def run(rows: list[int]) -> None:  # a card that holds two sequences at a time
        if len(rows) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        seen.append(rows)

    done: list[int] = []
    shrinking_batches(lengths, 4, run, what="in a test pass over", fix="-", on_batch=done.append)
    assert seen == [[1, 3], [2, 4], [0, 5]] and done == [2, 2, 2]  # shortest first, every item once

    def never(rows: list[int]) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(TrainError, match="out of memory in a test pass over a 10-token context"):
        shrinking_batches(lengths, 4, never, what="in a test pass over", fix="-")
