from __future__ import annotations

import pytest

from redline.errors import ConfigError
from trainer.config import TrainConfig


@pytest.mark.parametrize(("field", "value"), [("method", "rl"), ("alpha", 1.5), ("top_k", -1), ("batch_size", 0),
                                              ("hindsight", "magic"), ("lr", 0.0), ("max_steps", 0),
                                              ("gate_human_code", "src/")])
def test_bad_values_are_named(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        TrainConfig(**{field: value})
    assert field in str(err.value) and repr(value) in str(err.value)


def test_template_needs_prompt_and_feedback() -> None:
    with pytest.raises(ConfigError, match="template"):
        TrainConfig(hindsight="template", template="{feedback} only")
    with pytest.raises(ConfigError, match="template"):
        TrainConfig(hindsight="template")
    TrainConfig(hindsight="template", template="# {feedback}\n{prompt}")


def test_round_trip_and_unknown_keys(tmp_path) -> None:
    cfg = TrainConfig(lora_targets=["q_proj", "v_proj"], max_steps=3, gate_human_code=["src/", "*.ts"])
    assert cfg.lora_targets == ("q_proj", "v_proj") and cfg.gate_human_code == ("src/", "*.ts")
    cfg.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == cfg
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 1e-4})
    assert TrainConfig.from_dict({"lr": 1e-3}, max_steps=None).lr == 1e-3


def test_max_length_is_capped_at_the_models_window() -> None:
    from types import SimpleNamespace

    from trainer.model import fit_to_model

    def model(window: int) -> SimpleNamespace:
        return SimpleNamespace(config=SimpleNamespace(max_position_embeddings=window))

    assert fit_to_model(TrainConfig(max_length=1024), model(256)).max_length == 256
    assert fit_to_model(TrainConfig(max_length=1024), model(4096)).max_length == 1024
    assert fit_to_model(TrainConfig(max_length=1024), SimpleNamespace()).max_length == 1024


def test_unset_lr_is_chosen_by_width() -> None:
    from types import SimpleNamespace

    from trainer.model import fit_to_model, lr_for_width

    assert lr_for_width(4096) == 1e-4 and lr_for_width(8192) == 5e-5 and lr_for_width(None) == 1e-4
    assert lr_for_width(128) == 3.2e-3 and lr_for_width(16) == 5e-3  # capped
    wide = SimpleNamespace(config=SimpleNamespace(hidden_size=2048))
    assert fit_to_model(TrainConfig(), wide).lr == 2e-4
    assert fit_to_model(TrainConfig(lr=1e-3), wide).lr == 1e-3  # a set lr is kept
    assert fit_to_model(TrainConfig(), SimpleNamespace(config=SimpleNamespace(n_embd=768))).lr > 1e-4
