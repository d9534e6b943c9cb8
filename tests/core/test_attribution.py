"""Attribution finds the generation behind a line, even after the file changed around it."""

from __future__ import annotations

from pathlib import Path

import pytest

from redline.attribution import attribute, locate, repo_relative
from redline.config import load_config
from redline.ledger import record, record_generation
from redline.queue import open_store
from redline.records import Feedback, Range, Span
from tests.core.helpers import make_generation

GENERATED = "def area(r):\n    return 3.14159 * r * r\n"


def test_locate_exact_moved_and_fuzzy() -> None:
    file_text = "import math\n\n" + GENERATED
    assert locate(GENERATED, file_text, 2) == (Range(2, 4), "exact")
    moved = "import math\nimport os\n\n\n" + GENERATED
    assert locate(GENERATED, moved, 2) == (Range(4, 6), "reanchored")
    tweaked = "import math\n\n\ndef area(r):\n    return 3.14159 * r ** 2\n"
    assert locate(GENERATED, tweaked, 2) == (Range(3, 5), "fuzzy")
    assert locate(GENERATED, "print('something else entirely')\n", 0) is None


def test_nearest_copy_wins_when_text_repeats() -> None:
    text = GENERATED + "\n" * 20 + GENERATED
    assert locate(GENERATED, text, 18)[0] == Range(22, 24)


@pytest.mark.parametrize(
    ("path", "expected"),
    [("pkg/a.py", "pkg/a.py"), ("./pkg/../pkg/a.py", "pkg/a.py"), ("../../etc/passwd", None),
     ("/etc/passwd", None), ("https://example.com/a.py", None), ("", None)],
)
def test_repo_relative_rejects_paths_outside_the_repo(tmp_path: Path, path: str, expected: str | None) -> None:
    assert repo_relative(tmp_path, path) == expected


def test_repo_relative_accepts_absolute_and_file_uris_inside(tmp_path: Path) -> None:
    assert repo_relative(tmp_path, tmp_path / "x" / "y.py") == "x/y.py"
    assert repo_relative(tmp_path, f"file://{tmp_path}/x/y.py") == "x/y.py"


def test_feedback_is_attributed_after_lines_moved(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    config = load_config(tmp_path)
    store = open_store(config)
    gen = record_generation(store, config, make_generation(completion=GENERATED, path="geo.py", start=2))
    other = record_generation(store, config, make_generation(7, path="geo.py", start=0, completion="X = 1\n"))
    (tmp_path / "geo.py").write_text("X = 1\n# a comment the user added\n\n\n" + GENERATED)
    fb = Feedback(kind="diagnostic", source="mypy", message="float * str", path="geo.py", range=Range(5, 5))
    loose = Feedback(kind="diagnostic", source="mypy", message="elsewhere", path="geo.py", range=Range(2, 2))
    record(store, config, feedback=[fb, loose])
    [attributed] = store.feedback_for(gen.id)
    assert attributed.message == "float * str" and attributed.meta["attribution"] == "reanchored"
    assert store.feedback_for(other.id) == []
    assert [f.message for f in store.feedback(unattributed=True)] == ["elsewhere"]


def test_span_of_an_unknown_generation_still_attributes(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    store = open_store(config)
    record(store, config, spans=[Span("pasted-from-chat", "a.py", Range(0, 2), GENERATED)])
    matches = attribute(store, "a.py", 1, file_text=GENERATED)
    assert [m.generation_id for m in matches] == ["pasted-from-chat"]
