"""Placing a served completion by its prompt's context: verbatim, re-indented, a partial accept, fill-in-the-middle;
never where the human wrote something else, and never away from its prompt's context."""

from __future__ import annotations

from redline.records import Generation, ModelRef, Prompt
from redline.served_code import place_served

PREFIX = "import json\n\n\ndef load(path):\n    "
BODY = "with open(path) as f:\n        return json.load(f)\n"


def raw(prefix: str, completion: str) -> Generation:
    return Generation(prompt_format="raw", prompt=Prompt(text=prefix), completion=completion, model=ModelRef("m"))


def lines(span) -> tuple[int, int] | None:  # type: ignore[no-untyped-def]
    return None if span is None else (span.range.start_line, span.range.end_line)


def test_verbatim_reindented_and_partly_accepted_completions_are_placed() -> None:
    gen = raw(PREFIX, BODY)
    assert lines(place_served(gen, "a.py", PREFIX + BODY + "\n\ndef other():\n    return 1\n")) == (4, 6)
    reindented = "import json\n\n\ndef load(path):\n  with open(path) as f:\n    return json.load(f)\n"
    assert lines(place_served(gen, "a.py", reindented)) == (4, 6)
    first_line_only = "import json\n\n\ndef load(path):\n    with open(path) as f:\n        data = f.read()\n"
    assert lines(place_served(gen, "a.py", first_line_only)) == (4, 5)
    moved_down = "# a header the human added\n" + PREFIX + BODY
    assert lines(place_served(gen, "a.py", moved_down)) == (5, 7)


def test_fill_in_the_middle_continues_the_cursor_line() -> None:
    gen = Generation(prompt_format="fim", prompt=Prompt(prefix="def f(a, b):\n    return ", suffix="\n\nf(1, 2)\n"),
                     completion="a + b * 2", model=ModelRef("m"))
    assert lines(place_served(gen, "b.py", "x = 1\ndef f(a, b):\n    return a + b * 2\n\nf(1, 2)\n")) == (2, 3)


def test_not_placed_where_the_human_wrote_the_code_or_away_from_the_prompts_context() -> None:
    gen = raw(PREFIX, BODY)
    assert place_served(gen, "a.py", "import json\n\n\ndef load(path):\n    return read_json(path)\n") is None
    elsewhere = "def other(path):\n    with open(path) as f:\n        return json.load(f)\n"
    assert place_served(gen, "a.py", elsewhere) is None  # the same text, but not after `def load(path):`
    tiny = raw(PREFIX, "x\n")
    assert place_served(tiny, "a.py", PREFIX + "x\n") is None  # too short to tell from a coincidence
