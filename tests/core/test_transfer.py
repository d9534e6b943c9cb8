"""JSONL import/export: round-trips, and a bad file is refused whole with an error naming file and line."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from redline.config import load_config
from redline.errors import RecordError
from redline.ledger import record
from redline.queue import open_store
from redline.transfer import MAX_LINE_BYTES, export_jsonl, import_jsonl
from tests.core.helpers import make_feedback, make_generation


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    return root


def _export(store) -> str:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    export_jsonl(store, out)
    return out.getvalue()


def test_export_import_export_round_trips(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(repo)
    store = open_store(config)
    gens = [make_generation(i, path="m.py", start=i * 3) for i in range(5)]
    edit = make_feedback(gens[0].id, kind="edit", correction="def f0(x):\n    return x\n", source="lsp")
    record(store, config, generations=gens,
           feedback=[make_feedback(g.id, i) for i, g in enumerate(gens)] + [edit, make_feedback(None, 99)])
    first = _export(store)
    dump = tmp_path / "dump.jsonl"
    dump.write_text(first)

    monkeypatch.setenv("REDLINE_HOME", str(tmp_path / "other-home"))
    config2 = load_config(repo)
    store2 = open_store(config2)
    result = import_jsonl(store2, config2, dump)
    assert (result.lines, result.generations, result.feedback) == (6, 5, 7)
    assert _export(store2) == first
    assert import_jsonl(store2, config2, dump).duplicates == 12  # re-import adds nothing


def test_gzip_bundles_import(repo: Path, tmp_path: Path) -> None:
    config = load_config(repo)
    g = make_generation()
    line = json.dumps({"generation": g.to_dict(), "feedback": [make_feedback(None).to_dict()]})
    bundle = tmp_path / "ci.redline.jsonl.gz"
    bundle.write_bytes(gzip.compress((line + "\n").encode()))
    store = open_store(config)
    assert import_jsonl(store, config, bundle).feedback == 1
    assert store.feedback_for(g.id)[0].generation_id == g.id


GOOD = json.dumps({"generation": make_generation(1).to_dict(), "feedback": []})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ((GOOD + "\n" + GOOD[: len(GOOD) // 2] + "\n").encode(), "line 2: not valid JSON"),
        ((GOOD + "\n" + json.dumps({"generation": {**json.loads(GOOD)["generation"], "completion": 5}})).encode(),
         "line 2: generation.completion must be str"),
        (GOOD.encode() + b"\n" + b'{"generation": null, "feedback": [{"kind": "diagnostic", "source": "\xff"}]}\n',
         "line 2: invalid UTF-8"),
        (b'{"feedback": "nope"}\n', 'line 1: "feedback" must be a list'),
        (b"[1, 2]\n", "line 1: expected an object"),
    ],
)
def test_malformed_file_is_refused_whole(repo: Path, tmp_path: Path, content: bytes, message: str) -> None:
    config = load_config(repo)
    store = open_store(config)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    with pytest.raises(RecordError) as info:
        import_jsonl(store, config, bad)
    text = str(info.value)
    assert str(bad) in text and message in text and "\n" not in text
    assert store.counts()["generations"] == 0  # nothing half-imported
    assert import_jsonl(store, config, _good_file(tmp_path)).generations == 1  # still usable


def test_a_50_mb_line_is_refused_without_reading_it_all(repo: Path, tmp_path: Path) -> None:
    config = load_config(repo)
    store = open_store(config)
    bad = tmp_path / "huge.jsonl"
    with bad.open("wb") as f:
        f.write(GOOD.encode() + b"\n")
        f.write(b'{"generation": null, "feedback": [{"message": "' + b"x" * (50 << 20) + b'"}]}\n')
    with pytest.raises(RecordError, match=rf"huge.jsonl: line 2 is longer than {MAX_LINE_BYTES >> 20} MB"):
        import_jsonl(store, config, bad)
    assert store.counts()["generations"] == 0


def _good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.jsonl"
    path.write_text(GOOD + "\n")
    return path
