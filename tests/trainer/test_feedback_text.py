from __future__ import annotations

from redline.records import Feedback, Range
from trainer.feedback_text import aggregate, correction_of, is_passed


def fb(**kw) -> Feedback:
    return Feedback(**{"kind": "diagnostic", "source": "ruff", "generation_id": "g", **kw})


def test_dedupes_and_orders_most_severe_first_with_edit_strongest() -> None:
    items = [
        fb(message="unused import os", severity="warning", rule="F401"),
        fb(message="unused  import os", severity="warning", rule="F401", source="pyflakes"),
        fb(message="undefined name x", severity="error", path="a.py", range=Range(3, 3)),
        fb(kind="edit", source="human", correction="return a + b"),
        fb(message="style nit", severity="hint"),
    ]
    text = aggregate(items)
    assert text.startswith("The reviewer changed it to:\nreturn a + b")
    assert text.count("unused import os") == 1
    assert text.index("undefined name x") < text.index("unused import os") < text.index("style nit")
    assert "a.py:4" in text


def test_length_cap_keeps_strongest_item() -> None:
    items = [fb(message="error " * 200, severity="error"), fb(message="hint", severity="hint")]
    text = aggregate(items, max_chars=100)
    assert len(text) <= 100 and text.startswith("- error")


def test_passed_and_correction() -> None:
    assert is_passed([]) and is_passed([fb(kind="accept", source="editor")])
    assert not is_passed([fb(message="x")])
    assert aggregate([fb(kind="accept", source="editor")]) == ""
    edits = [fb(kind="edit", source="h", correction="a"), fb(kind="edit", source="h", correction="b")]
    assert correction_of(edits) == "b"
