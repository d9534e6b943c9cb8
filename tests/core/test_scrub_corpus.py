"""The scrubber against the corpus of bench/scrub_corpus_data.py (the bench runs it through every entry point):
every secret is cut in both strengths, no ordinary snippet is touched, and the queue's write path does the same
for completions and nested `meta`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.scrub_corpus import leaked
from bench.scrub_corpus_data import ORDINARY, SECRETS
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
