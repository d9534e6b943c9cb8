"""Base-model identity: an adapter is continued, gated and served only on the base it was trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import build_tiny_model, failing, raw_generation

from redline.trainer.api import TrainConfig, TrainingExample, train
from redline.trainer.gate import evaluate_gate
from redline.trainer.identity import BaseModelMismatch, check_base, identity_of, read_adapter_meta

CFG = TrainConfig(max_steps=1, batch_size=2)


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same architecture and tokenizer as `tiny_model`, other weights (seed 1)."""
    return build_tiny_model(tmp_path_factory.mktemp("other-llama"), seed=1)


@pytest.fixture(scope="module")
def adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("adapter")
    gens = [raw_generation(i) for i in range(2)]
    train(tiny_model, [TrainingExample(g, failing(g)) for g in gens], out, CFG, progress=False)
    return out


@pytest.mark.slow
def test_the_adapter_records_its_base_and_matches_it(tiny_model: Path, adapter: Path) -> None:
    meta = read_adapter_meta(adapter)
    base = meta["base_model"]
    assert base["id"] == str(tiny_model)
    assert base["config_hash"] and base["tokenizer_fingerprint"] and base["weights"]
    assert identity_of(tiny_model)["weights"] == base["weights"]  # from the files, without loading the model
    check_base(meta, tiny_model)  # no error
    check_base({}, tiny_model)  # a plain PEFT adapter from elsewhere records nothing to compare


def test_another_base_is_a_one_line_error_naming_both(tiny_model: Path, other_model: Path, adapter: Path,
                                                      tmp_path: Path) -> None:
    with pytest.raises(BaseModelMismatch) as err:
        check_base(read_adapter_meta(adapter), other_model)
    text = err.value.one_line()
    assert "\n" not in text and str(tiny_model) in text and str(other_model) in text and "weights" in text
    gens = [raw_generation(i) for i in range(2)]
    examples = [TrainingExample(g, failing(g)) for g in gens]
    with pytest.raises(BaseModelMismatch):  # continuing the adapter on another base
        train(other_model, examples, tmp_path / "cont", CFG, init_adapter=adapter, progress=False)
    held = [raw_generation(9, split="heldout")]
    with pytest.raises(BaseModelMismatch):  # gating (and so promoting) it there
        evaluate_gate(other_model, adapter, [TrainingExample(g, failing(g)) for g in held], human_texts=[])


def test_a_different_tokenizer_or_revision_is_refused(adapter: Path) -> None:
    meta = read_adapter_meta(adapter)
    here = dict(meta["base_model"])
    with pytest.raises(BaseModelMismatch, match="tokenizer"):
        check_base(meta, {**here, "tokenizer_fingerprint": "0" * 16})
    with pytest.raises(BaseModelMismatch, match="revision"):
        check_base({**meta, "base_model": {**here, "revision": "abc"}}, {**here, "revision": "def"})
    json.dumps(meta)  # the identity is plain JSON
