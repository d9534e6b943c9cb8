from __future__ import annotations

from redline.records import Feedback, Range
from redline.trainer.feedback_text import aggregate, correction_of, is_accepted, is_passed


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
    assert "a.py" not in text  # the teacher sees the attempt, not the file


def test_length_cap_keeps_strongest_item() -> None:
    items = [fb(message="error " * 200, severity="error"), fb(message="hint", severity="hint")]
    text = aggregate(items, max_chars=100)
    assert len(text) <= 100 and text.startswith("- error")


def test_passed_and_correction() -> None:
    assert is_passed([]) and is_passed([fb(kind="accept", source="editor")])
    assert not is_passed([fb(message="x")])
    assert is_accepted([fb(kind="accept", source="editor")]) and not is_accepted([])  # silence proves nothing
    assert aggregate([fb(kind="accept", source="editor")]) == ""
    edits = [fb(kind="edit", source="h", correction="a"), fb(kind="edit", source="h", correction="b")]
    assert correction_of(edits) == "b"


def test_test_failure_drops_test_id_and_repeated_detail() -> None:
    item = fb(kind="test_failure", source="pytest", severity="error", path="tasks/t1.py", range=Range(4, 5),
              message="NameError: name 'f' is not defined\n>   f(x)", rule="tests/test_a.py::test_b[1]",
              detail="E   NameError: name 'f' is not defined\n    >   f(x)\nsrc/a.py:3: in g")
    assert aggregate([item]) == "- test failed: NameError: name 'f' is not defined\n  >   f(x)\n  src/a.py:3: in g"


def test_a_later_answer_to_the_same_prompt_that_passed_is_shown_to_the_teacher_after_the_strongest_item() -> None:
    import dataclasses

    from conftest import raw_generation

    from redline.trainer.data import TrainingExample
    from redline.trainer.demonstrations import SIBLING, with_demonstrations

    failed = raw_generation(1)
    passed = dataclasses.replace(raw_generation(1), completion="    return a + b\n", created_at="2999-01-01T00:00:00Z")
    other = raw_generation(2)
    wrong = [fb(generation_id=failed.id, message="test failed: add(1, 2) returned 4", kind="test_failure"),
             fb(generation_id=failed.id, message="line too long", severity="hint", rule="E501")]
    examples = [TrainingExample(failed, wrong), TrainingExample(other, [fb(generation_id=other.id, message="x")]),
                TrainingExample(passed, [Feedback(kind="accept", source="lsp.kept", generation_id=passed.id)])]
    shown = with_demonstrations(examples)
    assert shown[1:] == examples[1:] and examples[0].feedback == wrong  # others untouched, the queue's copy too
    text = aggregate(shown[0].feedback)
    lines = text.splitlines()
    assert lines[0].startswith("- test failed") and lines[1] == f"A version that passes ({SIBLING}):"
    assert "\n    return a + b\n" in text + "\n" and text.rstrip().endswith("[E501]")
    corrected = [*wrong, Feedback(kind="edit", source="human", correction="    return a + b\n", generation_id="g")]
    assert with_demonstrations([TrainingExample(failed, corrected), examples[2]])[0].feedback == corrected
