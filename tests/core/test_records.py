"""Record schema: validation errors name the field; UUIDv7 ids sort by time."""

from __future__ import annotations

import pytest

from redline.errors import RecordError
from redline.records import Feedback, Generation, Prompt, Range, heldout_split, new_id
from tests.core.helpers import make_feedback, make_generation


def test_generation_round_trips_through_dict() -> None:
    g = make_generation(3, path="pkg/mod.py", start=10)
    assert Generation.from_dict(g.to_dict()) == g


def test_feedback_round_trips_and_fingerprint_is_stable() -> None:
    f = make_feedback("abc", range=Range(1, 2), path="a.py", rule="E1")
    again = Feedback.from_dict(f.to_dict())
    assert again == f and again.compute_fingerprint() == f.fingerprint


def test_same_finding_on_same_generation_dedups_even_after_the_code_moved() -> None:
    a = Feedback(kind="diagnostic", source="ruff", message="F401  unused", generation_id="g", range=Range(3, 3))
    b = Feedback(kind="diagnostic", source="ruff", message="F401 unused", generation_id="g", range=Range(9, 9))
    assert a.fingerprint == b.fingerprint
    c = Feedback(kind="diagnostic", source="ruff", message="F401 unused", generation_id="other")
    assert c.fingerprint != a.fingerprint


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"completion": 3}, "generation.completion must be str"),
        ({"prompt_format": "poem"}, "generation.prompt_format must be one of"),
        ({"prompt": {"messages": [{"role": "user"}]}}, "missing"),
        ({"token_ids": "123"}, "generation.token_ids must be a list"),
        ({"surprise": 1}, "unknown field"),
    ],
)
def test_bad_generation_fields_are_named(patch: dict, needle: str) -> None:
    data = make_generation().to_dict() | patch
    with pytest.raises(RecordError, match=needle):
        Generation.from_dict(data)


def test_prompt_format_requires_its_prompt_parts() -> None:
    with pytest.raises(RecordError, match=r"fim generation needs prompt\.prefix"):
        Generation.from_dict(make_generation().to_dict() | {"prompt_format": "fim"})


def test_edit_feedback_needs_the_corrected_text() -> None:
    with pytest.raises(RecordError, match="correction"):
        Feedback(kind="edit", source="lsp")


def test_ids_are_uuid7_and_time_sortable() -> None:
    ids = [new_id() for _ in range(200)]
    assert all(len(i) == 32 and i[12] == "7" for i in ids)
    assert len(set(ids)) == 200
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)


def test_heldout_split_is_fixed_by_prompt() -> None:
    p = Prompt(text="write a parser")
    assert heldout_split("r", p, 0.5) == heldout_split("r", Prompt(text="write a parser"), 0.5)
    splits = {heldout_split("r", Prompt(text=f"task {i}"), 0.2) for i in range(100)}
    assert splits == {"train", "heldout"}
    share = sum(heldout_split("r", Prompt(text=f"t{i}"), 0.2) == "heldout" for i in range(2000)) / 2000
    assert 0.15 < share < 0.25
