from __future__ import annotations

import pytest

from redline.errors import ConfigError
from redline.trainer.config import TrainConfig


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
    TrainConfig(hindsight="template")  # no template set: the model's own (tokenizer_config.json), else SDPO's
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

    from redline.trainer.model import fit_to_model

    def model(window: int) -> SimpleNamespace:
        return SimpleNamespace(config=SimpleNamespace(max_position_embeddings=window))

    assert fit_to_model(TrainConfig(max_length=1024), model(256)).max_length == 256
    assert fit_to_model(TrainConfig(max_length=1024), model(4096)).max_length == 1024
    assert fit_to_model(TrainConfig(max_length=1024), SimpleNamespace()).max_length == 1024


def test_unset_lr_is_chosen_by_width() -> None:
    from types import SimpleNamespace

    from redline.trainer.model import fit_to_model, lr_for_width

    assert lr_for_width(4096) == 1e-4 and lr_for_width(8192) == 5e-5 and lr_for_width(None) == 1e-4
    assert lr_for_width(1024) == 4e-4 and lr_for_width(128) == 2e-3 and lr_for_width(16) == 2e-3  # capped
    wide = SimpleNamespace(config=SimpleNamespace(hidden_size=2048))
    assert fit_to_model(TrainConfig(), wide).lr == 2e-4
    assert fit_to_model(TrainConfig(lr=1e-3), wide).lr == 1e-3  # a set lr is kept
    assert fit_to_model(TrainConfig(), SimpleNamespace(config=SimpleNamespace(n_embd=768))).lr > 1e-4


def test_each_bad_setting_gets_its_own_error_naming_it_and_the_expectation() -> None:
    """#10: the validation is a table, one error per setting (it once named three settings in one message)."""
    for field, value, expected in [("weight_decay", -1, "a number ≥ 0"), ("max_grad_norm", 0, "a positive number"),
                                   ("is_clip", 0.5, "a number ≥ 1"), ("max_memory", "lots", "22GiB"),
                                   ("quantize", "2bit", "4bit"), ("micro_batch", 0, "positive integer")]:
        with pytest.raises(ConfigError) as err:
            TrainConfig(**{field: value})
        text = str(err.value)
        assert f"`{field}`" in text and expected in text
        others = {"weight_decay", "max_grad_norm", "is_clip"} - {field}
        assert not any(f"`{o}`" in text for o in others)


def test_validate_train_settings_lists_every_problem_for_doctor() -> None:
    from redline.trainer.config import validate_train_settings

    assert validate_train_settings({}) == []
    assert validate_train_settings({"lr": 1e-4, "max_memory": "22GiB", "quantize": "4bit"}) == []
    problems = validate_train_settings({"lr": 0, "batch_sise": 8, "grad_accum": 2, "alpha": 3})
    assert len(problems) == 4
    assert any("`batch_sise`" in p and "did you mean `batch_size`" in p for p in problems)
    assert any("`grad_accum` was removed" in p for p in problems)
    assert any("`lr` = 0" in p for p in problems) and any("`alpha` = 3" in p for p in problems)
    assert validate_train_settings({"hindsight": "template"}) == []  # the model's own template, else SDPO's
    assert validate_train_settings({"hindsight": "poem"}) == [
        "trainer setting `hindsight` = 'poem' is invalid: expected one of ['auto', 'chat', 'chat-turn', 'fim', "
        "'template'] — see docs/trainer.md"]


@pytest.mark.slow
def test_doctor_reports_a_typo_in_the_train_table(tmp_path) -> None:
    import subprocess
    import sys

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "redline.toml").write_text("[train]\nlearning_rate = 1e-4\n")
    proc = subprocess.run([sys.executable, "-m", "redline", "doctor"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert "train settings" in proc.stdout and "learning_rate" in proc.stdout


def test_steps_follow_the_data() -> None:
    from redline.trainer.batching import MAX_AUTO_STEPS, planned_steps

    steps = lambda n, **kw: planned_steps(n, **{"batch_size": 8, "epochs": None, "max_steps": None, **kw})  # noqa: E731
    assert steps(16) == 40 and steps(64) == 40  # the floor: 40 steps (20 / 5 epochs)
    assert steps(256) == 96  # 3 epochs
    assert steps(100_000) == MAX_AUTO_STEPS  # the ceiling
    assert steps(16, epochs=1) == 2 and steps(16, max_steps=7) == 7  # what the user set wins


def test_a_setting_that_moved_to_the_bench_is_named_with_where_it_went(tmp_path) -> None:
    """Issue #28: the experiments' settings left `TrainConfig`. A train_config.json saved before names every one at
    its default and still loads; a table or file that asks for an experiment is told where it went."""
    import json

    from redline.trainer.config import validate_train_settings

    old = {**TrainConfig().to_dict(), "teacher": "base", "ema_rate": 0.05, "on_policy_ratio": 0.0, "scalar_k": 4,
           "scalar_temperature": 1.0}
    (tmp_path / "train_config.json").write_text(json.dumps(old))
    assert TrainConfig.load(tmp_path / "train_config.json") == TrainConfig()
    for key, value in [("teacher", "ema"), ("ema_rate", 0.5), ("on_policy_ratio", 0.25), ("scalar_k", 8)]:
        with pytest.raises(ConfigError) as err:
            TrainConfig.from_dict({**old, key: value})
        assert f"`{key}` was removed" in str(err.value) and "bench/methods.py" in str(err.value)
        assert "\n" not in err.value.one_line()
    for method in ("sft-edit", "scalar"):
        with pytest.raises(ConfigError, match=f"method `{method}` was removed: .*bench/methods.py"):
            TrainConfig.from_dict({"method": method})
    problems = validate_train_settings({"teacher": "ema", "method": "scalar", "lr": 1e-4})
    assert len(problems) == 2 and all("bench/methods.py" in p for p in problems)


def test_every_setting_is_declared_once_with_its_check_and_help_and_documented() -> None:
    import dataclasses
    import re
    from pathlib import Path

    from redline.trainer.config import METHODS, REMOVED, setting_help

    fields = dataclasses.fields(TrainConfig)
    assert all(callable(f.metadata["ok"]) and f.metadata["expected"] and f.metadata["help"] for f in fields)
    assert list(setting_help()) == [f.name for f in fields]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "trainer.md").read_text(encoding="utf-8")
    table = docs.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = {name for row in table.splitlines() if row.startswith("| `")
                  for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert documented == {f.name for f in fields}, documented ^ {f.name for f in fields}
    assert not documented & set(REMOVED)
    from redline.trainer.methods import METHODS as IMPLEMENTED

    assert tuple(IMPLEMENTED) == METHODS  # every method a config may name has its implementation
