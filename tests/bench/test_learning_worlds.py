"""`bench/learning.py --worlds`: worlds side by side on the trainer's defaults. The parts that need no training."""

from __future__ import annotations

import pytest

from bench.learning_worlds import WorldMissing, WorldRun, load_world, summarise, verdict


def _run(world: str = "w", **kw: object) -> WorldRun:
    values = {"base_heldout": 0.0, "base_unchanged": 0.9, "ceiling": 0.6, "hint_heldout": 0.1, "heldout": 0.4,
              "unchanged": 0.9, "n_heldout": 128, "n_unchanged": 128, **kw}
    return WorldRun(world, "r", 0, 64, **values)  # type: ignore[arg-type]


def test_a_missing_world_is_skipped_in_one_line() -> None:
    with pytest.raises(WorldMissing, match="no package bench/nosuchworld"):
        load_world("nosuchworld")


def test_the_bar_per_world() -> None:
    assert verdict([_run()]) == "held-out ≥ 50 % of ceiling ✓, retention ≥ 98 % ✓, ahead of hints ✓"
    assert "✗" in verdict([_run(heldout=0.2)])
    assert verdict([_run(unchanged=0.8)]).count("✗") == 1
    assert "ahead of hints ✗" in verdict([_run(hint_heldout=0.5)])
    assert verdict([_run(ceiling=0.0, nothing_to_learn="nothing to learn")]).endswith("✓")
    assert "NOT said" in verdict([_run(ceiling=0.0, gate="promoted")])


def test_the_table_has_a_row_per_world_and_names_what_was_skipped() -> None:
    runs = [_run("world", probe_line="hindsight probe ...", gate="promoted", gate_summary="fixes 3 of 8"),
            _run("world2", hints=["Conventions", "- use `x`"])]
    table = summarise(runs, {"realrepo": "world 'realrepo': its model is not here"})
    rows = [line for line in table.splitlines() if line.startswith("| world")]
    assert len(rows) == 3 and "40.0%" in rows[1] and "66.7%" in rows[1]  # header, world, world2
    assert "| realrepo | skipped" in table and "gate promoted" in table and "use `x`" in table


def test_world2_without_its_model_is_skipped_not_pretrained_at_run_time() -> None:
    from bench.world2 import model_missing

    why = model_missing()
    if why is None:
        pytest.skip("world 2's model is here")
    with pytest.raises(WorldMissing, match=r"python -m bench\.world2\.pretrain --stages"):
        load_world("world2")
