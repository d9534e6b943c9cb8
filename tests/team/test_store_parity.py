"""The `Store` protocol means the same on SQLite and on a real PostgreSQL server: each test runs on both."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from redline.config import load_config
from redline.errors import RecordError
from redline.ledger import record
from redline.queue import SQLiteStore, Store
from redline.records import Feedback, Generation, Insertion, ModelRef, Prompt, Range, Span
from redline.scrub import scrub
from tests.core.helpers import make_feedback, make_generation


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_queue(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator:  # type: ignore[type-arg]
    """`open_queue(scrubbed=False)`: a new, empty queue of the test's backend."""
    opened: list[Store] = []

    def make(scrubbed: bool = False) -> Store:
        scrubber = scrub if scrubbed else None
        if backend == "sqlite":
            store: Store = SQLiteStore(tmp_path / f"q{len(opened)}.sqlite3", scrubber=scrubber)
        else:
            from redline.queue.postgres import PostgresStore

            url = request.getfixturevalue("pg_url")
            store = PostgresStore(url, f"test/repo{len(opened)}", spool_dir=tmp_path / "spool", scrubber=scrubber)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_writes_are_idempotent_and_all_or_nothing(open_queue) -> None:  # type: ignore[no-untyped-def]
    store = open_queue()
    g = make_generation(path="a.py")
    added = store.add([g], [make_feedback(g.id)], [Span(g.id, "a.py", Range(0, 2), "x")])
    assert (added.generations, added.feedback, added.spans) == (1, 1, 1)
    again = store.add([g], [make_feedback(g.id)])
    assert (again.generations, again.feedback) == (0, 0)

    def generations():
        yield make_generation(1)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.add(generations())
    with pytest.raises(RecordError):  # a lone surrogate cannot be stored on either: nothing of its batch lands
        store.add([make_generation(2), make_generation(3, completion="x = '\ud800'\n")])
    assert store.counts()["generations"] == 1


def test_claims_ack_release_and_takeover_rules(open_queue) -> None:  # type: ignore[no-untyped-def]
    store = open_queue()
    gens = [make_generation(i) for i in range(3)]
    store.add(gens, [make_feedback(g.id, i) for i, g in enumerate(gens)])
    first = store.claim("trainer-a", limit=2)
    second = store.claim("trainer-b")
    assert len(first.generation_ids) == 2 and len(second.generation_ids) == 1
    assert not set(first.generation_ids) & set(second.generation_ids)
    assert store.heartbeat(first.token)
    assert store.release(second.token) == 1
    assert store.ack(first.token) == 2
    assert store.counts()["states"] == {"trained": 2, "new": 1}
    held = store.claim("mine")
    assert store.claim("other", stale_after_s=0).generation_ids == []  # this process runs: its claim stands
    assert store.backlog()[0] == 0
    store.release_owner("mine")
    assert store.backlog()[0] == 1 and store.claim("again").generation_ids == held.generation_ids


def test_feedback_awaiting_its_generation_is_neither_claimed_nor_acked_away(open_queue) -> None:  # type: ignore[no-untyped-def]
    """Regression: a claim took the ids of feedback whose generation had not arrived, the trainer found nothing
    to train, and the ack marked that feedback trained, so it was never trained when its generation came."""
    store = open_queue()
    late = make_generation(7)
    store.add(feedback=[make_feedback(late.id, 7)])
    assert store.backlog()[0] == 0 and store.claim("t").generation_ids == []
    store.add([late])
    assert store.backlog()[0] == 1 and store.claim("t").generation_ids == [late.id]


def test_accepted_code_is_claimed_but_not_backlog(open_queue) -> None:  # type: ignore[no-untyped-def]
    store = open_queue()
    gens = [make_generation(i) for i in range(2)]
    store.add(gens, [make_feedback(gens[0].id, 0, kind="accept", message="kept as written", detail=None)])
    assert store.backlog()[0] == 0
    store.add(feedback=[make_feedback(gens[1].id, 1)])
    assert store.backlog()[0] == 1
    assert sorted(store.claim("t").generation_ids) == sorted(g.id for g in gens)


def _records() -> tuple[list, list, list]:  # type: ignore[type-arg]
    gens = [make_generation(i, path=f"m{i % 2}.py", start=4 * i) for i in range(4)]
    gens[1].completion = "  def shared():\n    return 1\n\n"
    gens[2].completion = "def shared():\n    return 1"
    gens[3].adapter_version = "v0002"
    gens[0].meta["path"] = "src/m0.py"
    spans = [Span(g.id, g.insertion.path, g.insertion.range, g.completion) for g in gens]
    feedback = [make_feedback(gens[0].id, 0), make_feedback(gens[1].id, 1, kind="accept", message="kept", detail=None),
                make_feedback(None, 9, path="m0.py", range=Range(1, 2)),
                make_feedback("awaited0000000000000000000000000", 5)]
    return gens, feedback, spans


def _reads(store: Store, gens: list, loose_id: str) -> dict:  # type: ignore[type-arg]
    """Every read of the protocol, as plain values."""
    origins = ["agent", "editor", "server", "import", "lsp", "bench"]
    store.set_meta("k", {"a": [1, "two"]})
    attributed = store.attribute(loose_id, gens[0].id)
    return {
        "attributed": attributed,
        "counts": store.counts(),
        "get": store.get_generation(gens[2].id).completion,
        "find": [g.id for g in store.find_generations(gens[0].id[:30])],
        "shared": sorted(g.id for g in store.generations_with_completion("def shared():\n    return 1\n")),
        "recent": sorted((i, c, w) for i, c, _, w in store.recent_completions("2000", origins=origins, limit=10)),
        "acceptance": store.acceptance(origins),
        "with_feedback": [g.id for g in store.generations(with_feedback=True)],
        "without": [g.id for g in store.generations(with_feedback=False, limit=5)],
        "heldout": [g.id for g in store.generations(split="heldout")],
        "feedback_for": [f.message for f in store.feedback_for(gens[0].id)],
        "unattributed": [f.id for f in store.feedback(unattributed=True)],
        "all_feedback": [f.fingerprint for f in store.feedback(limit=10)],
        "spans": [s.range for s in store.spans_for_path("m0.py")],
        "span_paths": store.span_paths(),
        "awaiting": store.awaiting("awaited"),
        "meta": store.get_meta("k"),
        "missing_meta": store.get_meta("nope"),
        "backlog": store.backlog()[0],
    }


def test_every_read_answers_the_same_on_both(tmp_path: Path, pg_url: str) -> None:
    from redline.queue.postgres import PostgresStore

    gens, feedback, spans = _records()
    answers = []
    for store in (SQLiteStore(tmp_path / "q.sqlite3"),
                  PostgresStore(pg_url, "test/repo", spool_dir=tmp_path / "spool")):
        try:
            store.add(copy.deepcopy(gens), copy.deepcopy(feedback), copy.deepcopy(spans))
            answers.append(_reads(store, gens, feedback[2].id))
        finally:
            store.close()
    sqlite, postgres = answers
    assert sqlite["shared"] == sorted([gens[1].id, gens[2].id]) and sqlite["attributed"]
    assert sqlite["awaiting"] == {"awaited0000000000000000000000000": 1}
    assert (gens[0].id, gens[0].completion, "src/m0.py") in sqlite["recent"]
    assert postgres == sqlite, (postgres, sqlite)


def test_hold_out_moves_generations_to_the_gates_split_once(open_queue) -> None:  # type: ignore[no-untyped-def]
    """`hold_out` (main's held-out top-up, `trainer.data.top_up_heldout`): the split changes in the column the
    queries filter on and in the record itself, and a second call moves nothing."""
    store = open_queue()
    gens = [make_generation(i) for i in range(3)]
    for g in gens:
        g.split = "train"
    store.add(gens, [make_feedback(g.id, i) for i, g in enumerate(gens)])
    assert store.hold_out([gens[0].id, gens[1].id, "missing"]) == 2
    assert store.hold_out([gens[0].id]) == 0 and store.hold_out([]) == 0
    assert sorted(g.id for g in store.generations(split="heldout")) == sorted([gens[0].id, gens[1].id])
    assert [g.id for g in store.generations(split="train")] == [gens[2].id]
    assert store.get_generation(gens[0].id).split == "heldout"
    assert store.get_generation(gens[0].id).completion == gens[0].completion


def test_prune_and_scrubbing(open_queue, backend: str) -> None:  # type: ignore[no-untyped-def]
    store = open_queue(scrubbed=True)
    old = make_generation(1)
    old.created_at = "2001-01-01T00:00:00.000Z"
    g = make_generation(2, completion='KEY = "AKIAIOSFODNN7EXAMPLE"\n')
    g.prompt.messages[1].content = "use password = 'hunter2hunter2'"
    store.add([old, g], [make_feedback(g.id, detail="token ghp_abcdefghijklmnopqrstuvwxyz0123456789")])
    assert store.prune(30) == 1
    stored = store.get_generation(g.id)
    assert "AKIAIOSFODNN7EXAMPLE" not in stored.completion and stored.meta["scrubbed"] is True
    assert "hunter2hunter2" not in stored.prompt.messages[1].content
    assert "ghp_" not in store.feedback_for(g.id)[0].detail
    if backend == "postgres":  # what the server holds, read back raw: no secret was sent
        import psycopg

        with psycopg.connect(store.url, autocommit=True) as conn:
            rows = conn.execute(f"SELECT body FROM {store.schema}.generations UNION ALL"
                                f" SELECT body FROM {store.schema}.feedback").fetchall()
        raw = "".join(r[0] for r in rows)
        for secret in ("AKIAIOSFODNN7EXAMPLE", "hunter2hunter2", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"):
            assert secret not in raw
        assert '"written_by"' in raw  # each record says who wrote it


def test_findings_on_served_code_reach_its_generation_on_both(open_queue, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Served-code attribution (`redline.served_code`, from main) asks the store for the recent served completions
    of a file (`recent_completions`, `get_generation`, `spans_for_path`): on either backend a finding on the lines
    `redline serve` wrote reaches that generation and the span found is recorded; one on the human's line does
    not."""
    store = open_queue()
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "redline.toml").write_text('repo_id = "test/repo"\n', encoding="utf-8")
    config = load_config(root)
    prefix, body = "import json\n\n\ndef load(path):\n    ", "with open(path) as f:\n        return json.load(f)\n"
    served = Generation(prompt_format="raw", prompt=Prompt(text=prefix), completion=body, model=ModelRef("m"),
                        origin="server", insertion=Insertion(path="src/a.py"), meta={"path": "src/a.py"})
    record(store, config, generations=[served])
    (root / "src" / "a.py").write_text(prefix + body + "\n\ndef other(x):\n    return x == None\n", encoding="utf-8")
    on_model = Feedback(kind="diagnostic", source="ruff", message="F821 undefined name", path="src/a.py",
                        range=Range(5, 6))
    on_human = Feedback(kind="diagnostic", source="ruff", message="E711 comparison to None", path="src/a.py",
                        range=Range(9, 10))
    record(store, config, feedback=[on_model, on_human])
    assert {f.message: f.generation_id for f in store.feedback()} == {on_model.message: served.id,
                                                                      on_human.message: None}
    assert [(s.generation_id, s.range.start_line, s.range.end_line) for s in store.spans_for_path("src/a.py")] \
        == [(served.id, 4, 6)]
