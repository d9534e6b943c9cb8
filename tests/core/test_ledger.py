"""The one write path: `ledger.record` prepares, attributes, checks once, and writes or spools a whole batch."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from redline.config import Config, load_config
from redline.errors import QueueBusy, RecordError
from redline.ledger import record
from redline.queue import Store, open_store
from redline.queue.spool import spool_dir
from redline.records import Feedback, Range, Span
from tests.core.helpers import make_feedback, make_generation

SECRET = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / ".git").mkdir()
    return load_config(tmp_path)


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    s = open_store(config, busy_timeout_s=0.1)
    yield s
    s.close()


@pytest.fixture
def locked(config: Config, store: Store) -> Iterator[sqlite3.Connection]:
    """Another process holds the queue's write lock."""
    blocker = sqlite3.connect(config.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    yield blocker
    blocker.execute("ROLLBACK")
    blocker.close()


def test_one_call_prepares_generations_attributes_feedback_and_writes_it_all(config: Config, store: Store) -> None:
    gen = make_generation(path="m.py", start=2, repo_id="")
    (config.repo_root / "m.py").write_text("\n\n" + gen.completion)
    finding = Feedback(kind="diagnostic", source="mypy", message="bad", path="m.py", range=Range(3, 4))
    # the span an earlier insertion left: a finding is placed by the spans already queued
    record(store, config, spans=[Span(gen.id, "m.py", Range(2, 4), gen.completion)])
    added = record(store, config, generations=[gen], feedback=[finding, make_feedback(None, 1)])
    assert (added.generations, added.feedback, added.spans, added.spooled) == (1, 2, 1, 0)
    stored = store.get_generation(gen.id)
    assert stored is not None and stored.repo_id == config.repo_id and stored.split in ("train", "heldout")
    assert stored.insertion is not None and stored.insertion.content_hash
    [attributed] = store.feedback_for(gen.id)
    assert attributed.message == "bad" and attributed.meta["span_line"] == 1


def test_attributed_feedback_is_taken_as_given(config: Config, store: Store) -> None:
    """The pytest plugin walks a failure's frames itself: the ledger does not attribute its feedback again."""
    gen = make_generation(path="m.py")
    (config.repo_root / "m.py").write_text(gen.completion)
    record(store, config, generations=[gen])
    finding = Feedback(kind="test_failure", source="pytest", message="boom", path="m.py", range=Range(0, 1))
    record(store, config, feedback=[finding], attributed=True)
    assert [f.message for f in store.feedback(unattributed=True)] == ["boom"]


def test_a_busy_queue_spools_the_batch_scrubbed_and_the_next_open_merges_it(config: Config, store: Store) -> None:
    gen = make_generation(path="m.py", completion=f'KEY = "{SECRET}"\n')
    fb = make_feedback(gen.id, detail=f"leaked {SECRET}")
    blocker = sqlite3.connect(config.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        added = record(store, config, generations=[gen], feedback=[fb])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert added.generations == added.feedback == 0 and added.spooled == 3  # generation, feedback, span
    assert added.busy is not None and "another process holds a write lock" in added.busy
    assert added.spool_file is not None and added.spool_file.parent == spool_dir(config.db_path)
    assert SECRET not in added.spool_file.read_text()
    open_store(config).close()  # the next open merges the spool
    assert not added.spool_file.exists()
    stored = store.get_generation(gen.id)
    assert stored is not None and SECRET not in stored.completion
    assert len(store.feedback_for(gen.id)) == 1 and len(store.spans_for_path("m.py")) == 1


def test_spool_never_raises_and_spool_now_does_not_wait(config: Config, store: Store,
                                                        locked: sqlite3.Connection) -> None:
    with pytest.raises(QueueBusy, match="another process holds a write lock"):
        record(store, config, feedback=[make_feedback(None, 1)], spool="never")
    assert not spool_dir(config.db_path).exists()
    added = record(store, config, feedback=[make_feedback(None, 2)], spool="now")
    assert added.spooled == 1 and added.busy is None


def test_a_bad_record_writes_and_spools_nothing(config: Config, store: Store, locked: sqlite3.Connection) -> None:
    with pytest.raises(RecordError, match="lone surrogate"):
        record(store, config, feedback=[make_feedback(None, 1), make_feedback(None, 2, message="bad \ud800")])
    assert not spool_dir(config.db_path).exists()


def test_a_spool_file_of_feedback_alone_still_merges(config: Config, store: Store) -> None:
    """Spool files written before generations and spans could be spooled hold one feedback record a line."""
    folder = spool_dir(config.db_path)
    folder.mkdir()
    old = [make_feedback(None, i) for i in range(2)]
    (folder / "1-old.jsonl").write_text("".join(json.dumps({"generation": None, "feedback": [f.to_dict()]}) + "\n"
                                                for f in old))
    (folder / "2-torn.jsonl").write_text('{"generation": null, "feedback": [{"kind": ')  # left for `doctor`
    open_store(config).close()
    assert sorted(f.id for f in store.feedback()) == sorted(f.id for f in old)
    assert [p.name for p in folder.iterdir()] == ["2-torn.jsonl"]
