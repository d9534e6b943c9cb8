"""What a save records reaches the queue in one write (issue #28: a save was two transactions)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from redline.config import load_config
from redline.lsp_server import harvest
from redline.lsp_server.documents import Doc, LineBuffer, Repo
from redline.lsp_server.spans import TrackedSpan
from redline.queue import Store
from redline.records import Feedback, Range

TEXT = "def f(x):\n    return x + 1\n"


class InlineServer:
    """Just enough of the server for `harvest.record`: queue work runs inline."""

    async def in_store(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


def test_a_save_writes_its_feedback_and_the_spans_places_in_one_transaction(
        repo: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "m.py").write_text(TEXT)
    doc = Doc(uri=(repo / "m.py").as_uri(), abs_path=repo / "m.py", language="python", version=1,
              buffer=LineBuffer(TEXT), path="m.py", repo=Repo(load_config(repo), store))
    doc.spans = [TrackedSpan("gen-1", (0, 0), (2, 0), TEXT, 0.0, baseline=TEXT, text=TEXT)]
    writes: list[int] = []
    write = store.write
    monkeypatch.setattr(store, "write", lambda batch: (writes.append(len(batch)), write(batch))[1])
    fb = Feedback(kind="diagnostic", source="ruff", message="unused", path="m.py", range=Range(1, 2),
                  generation_id="gen-1", meta={"span_line": 1})
    added = asyncio.run(harvest.record(InlineServer(), doc, [fb], tuple(doc.buffer.lines),  # type: ignore[arg-type]
                                       persist=True))
    assert added == 1 and writes == [2]  # the feedback and the span, together
    assert [s.generation_id for s in store.spans_for_path("m.py")] == ["gen-1"]
    assert doc.problems == {"gen-1": {fb.fingerprint}}
