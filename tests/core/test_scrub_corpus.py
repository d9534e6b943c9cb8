"""The scrubber against the corpus of bench/scrub_corpus_data.py (the bench runs it through every entry point):
every secret is cut in both strengths, no ordinary snippet is touched, and the queue's write path does the same
for completions and nested `meta`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.scrub_corpus import leaked
from bench.scrub_corpus_data import MORE_ORDINARY, MORE_SECRETS, ORDINARY, SECRETS
from redline.queue.store import SQLiteStore
from redline.records import Feedback, Generation, Message, ModelRef, Prompt
from redline.scrub import scrub


@pytest.mark.parametrize("code", [True, False], ids=["code", "prose"])
def test_every_corpus_secret_is_cut(code: bool) -> None:
    missed = [provider for provider, text, secret in SECRETS if leaked(scrub(text, code=code), secret)]
    assert missed == []
    assert len(SECRETS) >= 50 and len({p for p, _, _ in SECRETS}) >= 20


@pytest.mark.parametrize("code", [True, False], ids=["code", "prose"])
def test_no_ordinary_snippet_is_touched(code: bool) -> None:
    changed = [text for text in ORDINARY if scrub(text, code=code) != text]
    assert changed == []
    assert len(ORDINARY) >= 50


def test_the_part_written_apart_from_the_detectors_is_large_enough() -> None:
    """Issue #30: at least 30 secret formats the corpus did not have, and 30 look-alikes."""
    first = {p for p, _, _ in SECRETS[:len(SECRETS) - len(MORE_SECRETS)]}
    assert len({p for p, _, _ in MORE_SECRETS} - first) >= 30 and len(MORE_ORDINARY) >= 30
    assert SECRETS[-len(MORE_SECRETS):] == MORE_SECRETS and ORDINARY[-len(MORE_ORDINARY):] == MORE_ORDINARY


def test_a_subset_through_the_write_path(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.sqlite3", scrubber=scrub)
    sample = SECRETS[::5]
    gens = [Generation(prompt_format="chat", prompt=Prompt(messages=[Message("user", "write it")]), completion=text,
                       model=ModelRef("m"), meta={"deep": [{"note": text}]}) for _, text, _ in sample]
    store.add(gens, [Feedback(kind="review", source="github-review", message=text, generation_id=g.id,
                              meta={"diff_hunk": text}) for g, (_, text, _) in zip(gens, sample, strict=True)])
    bodies = "".join(r[0] for r in store._conn().execute(  # type: ignore[attr-defined]
        "SELECT body FROM generations UNION ALL SELECT body FROM feedback"))
    assert [p for p, _, secret in sample if leaked(bodies, secret)] == []
    plain = [Generation(prompt_format="raw", prompt=Prompt(text="x"), completion=text, model=ModelRef("m"),
                        token_ids=[1]) for text in ORDINARY[::5]]
    store.add(plain)
    for g in plain:
        stored = store.get_generation(g.id)
        assert stored is not None and stored.completion == g.completion and stored.token_ids == [1]


@pytest.mark.parametrize(("code", "shape"), [
    (False, lambda t: f"E   AssertionError: assert {t!r} == 'x'"),  # a failing test's message (pytest --redline)
    (True, lambda t: t + "x = "),  # an `input_extra` chunk, glued to the editor's prefix (/infill)
], ids=["pytest assertion", "glued to a prefix"])
def test_every_corpus_secret_is_cut_where_entry_points_put_it(code: bool, shape) -> None:
    """The bench's serve and pytest entry points found these (pgpass in an assertion, a kubeconfig key with text
    after it); every entry is checked in both shapes here, in a second."""
    assert [p for p, text, secret in SECRETS if leaked(scrub(shape(text), code=code), secret)] == []
