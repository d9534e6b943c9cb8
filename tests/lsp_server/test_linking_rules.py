"""The pure matching rules of completion linking (no server): what counts as the same text, the length floor,
the time window, the file, and when a run of pieces stops growing."""

from __future__ import annotations

from redline.lsp_server.linking import Recent, RecentCompletions, Run, extends, find, match, normalise

DEF = "def add(a, b):\n    return a + b\n"


def recent(text: str, at: float = 1000.0, path: str | None = "app.py", gid: str = "g1") -> Recent:
    return Recent(gid, text, normalise(text), at, path)


def test_match_whole_prefix_reindented_and_closed() -> None:
    norm = normalise(DEF)
    assert match(normalise(DEF), norm) == "whole"
    assert match(normalise("def add(a, b):\n"), norm) == "prefix"
    assert match(normalise("        def add(a, b):\n            return a + b"), norm) == "whole"
    assert match(normalise("print(add(2, 3))"), normalise("print(add(2, 3)")) == "whole"
    assert match(normalise("def add(a, c):"), norm) is None
    assert match(normalise("def add(a, b)]]]]"), norm) is None  # more closers than an editor adds


def test_find_applies_floor_window_and_file() -> None:
    index = RecentCompletions([recent(DEF), recent("x = compute(1)\n", gid="g2", path=None),
                               recent("def mul(a, b):\n    return a * b\n", at=0.0, gid="old")])
    assert find(index, DEF, path="app.py", now=1010.0, floor=10, window=300).generation_id == "g1"
    assert find(index, DEF, path="other.py", now=1010.0, floor=10, window=300) is None  # asked for app.py
    assert find(index, "x = compute(1)\n", path="other.py", now=1010.0, floor=10, window=300).generation_id == "g2"
    assert find(index, "def add(", path="app.py", now=1010.0, floor=10, window=300) is None  # under the floor
    assert find(index, "def mul(a, b):\n", path="app.py", now=1010.0, floor=10, window=300) is None  # too old
    assert find(index, DEF, path="app.py", now=1400.0, floor=10, window=300) is None  # the window has passed


def test_newest_same_file_completion_wins_a_tie() -> None:
    index = RecentCompletions([recent(DEF, at=900.0, gid="older"), recent(DEF, at=950.0, gid="newer"),
                               recent(DEF, at=990.0, gid="anywhere", path=None)])
    assert find(index, DEF, path="app.py", now=1000.0, floor=10, window=300).generation_id == "newer"


def test_a_run_stops_growing_once_the_whole_completion_is_in() -> None:
    entry = recent(DEF)
    run = Run((3, 0), (4, 0), "def add(a, b):\n", 1000.0, entry)
    assert extends(run, "    return a + b\n")
    run.text += "    return a + b\n"
    assert not extends(run, "\n")  # the user's own newline after the completion
    assert not extends(Run((3, 0), (4, 0), "def add(a, b):\n", 1000.0, entry), "    return a - b\n")
