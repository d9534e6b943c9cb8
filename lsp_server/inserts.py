"""The insert protocol: model-written text starts being tracked at a place in an open document.

Three ways in. The client says so (`redline/didInsertGeneration`, or the `redline.recordInsert` command) with the
generation id its model front-end recorded; or without an id (code pasted from another assistant), and then a
generation is recorded whose fill-in-the-middle prompt is reconstructed from the document around the span; or the
client says nothing, and a `didChange` that inserts the text of a completion `redline serve` / `redline proxy`
recently served is linked to it (`linking`), exactly as if the client had sent the notification.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcInvalidParams

from redline import ledger
from redline.attribution import repo_relative
from redline.errors import QueueUnavailable
from redline.lsp_server.documents import Doc, Repo, offset_of, slice_text
from redline.lsp_server.linking import Recent, RecentCompletions, Run, extends, find, normalise
from redline.lsp_server.params import parse_range
from redline.lsp_server.spans import Pos, TrackedSpan, end_of_insert, fim_context, reanchor, schedule
from redline.records import Generation, Insertion, ModelRef, Prompt, Span, new_id

if TYPE_CHECKING:
    from redline.lsp_server.server import RedlineServer

logger = logging.getLogger(__name__)

#: origins of the generations a language server links to: what `redline serve` and `redline proxy` recorded
SERVED_ORIGINS = ("server",)
#: an unlinked run longer than this starts over (no completion is that long; keeps each lookup bounded)
MAX_RUN_CHARS = 20_000



def track(ls: RedlineServer, doc: Doc, gid: str, start: Pos, text: str, inserted_at: float | None = None
          ) -> TrackedSpan:
    """Start tracking `text` at `start` under `gid` (replacing an earlier span of that id in this document)."""
    now = ls.now() if inserted_at is None else inserted_at
    span = TrackedSpan(gid, start, end_of_insert(start, text, ls.units), text, now)
    span.due = schedule(now, ls.settings.retention_checkpoints)
    doc.spans = [s for s in doc.spans if s.generation_id != gid] + [span]
    return span


async def insert(ls: RedlineServer, params: Any) -> dict[str, Any]:
    """Track model-written text at a place in an open document (see `redline/didInsertGeneration`)."""
    if not isinstance(params, dict):
        raise JsonRpcInvalidParams("expected an object {generationId?, uri, range, text?}")
    doc = await ls.ready_doc(params.get("uri"))
    assert doc.repo is not None
    start, end = parse_range(params.get("range"))
    text, gid, model = params.get("text"), params.get("generationId"), params.get("model")
    if (text is not None and not isinstance(text, str)) or (gid is not None and not isinstance(gid, str)):
        raise JsonRpcInvalidParams("text and generationId must be strings")
    lines = tuple(doc.buffer.lines)
    if start[0] >= len(lines) and not (start == (len(lines), 0) and text == ""):
        raise JsonRpcInvalidParams(f"range starts at line {start[0]}; the document has {len(lines)} lines")
    if text is None:
        if end is None:
            raise JsonRpcInvalidParams("give the inserted text or the range's end")
        text = slice_text(lines, start, end, ls.units)
    if not text.strip():
        raise JsonRpcInvalidParams("the span is empty")
    span = TrackedSpan(gid or new_id(), start, end_of_insert(start, text, ls.units), text, ls.now())
    if slice_text(lines, span.start, span.end, ls.units) != text:
        if not reanchor(span, "".join(lines), ls.units):
            raise JsonRpcInvalidParams("the text is not in the document at that range")
    span = track(ls, doc, span.generation_id, span.start, text)
    repo, rng = doc.repo, span.line_range()
    if gid:
        def write() -> bool:
            ledger.record(repo.store, repo.config, spans=[Span(gid, doc.path, rng, text)])
            return repo.store.get_generation(gid) is not None

        known = await ls.in_store(write)
    else:
        await ls.in_store(ledger.record_generation, repo.store, repo.config,
                          reconstructed(ls, doc, lines, span, model if isinstance(model, str) else None))
        known = True
    return {"generationId": span.generation_id, "known": known,
            "range": {"start": {"line": span.start[0], "character": span.start[1]},
                      "end": {"line": span.end[0], "character": span.end[1]}}}


def reconstructed(ls: RedlineServer, doc: Doc, lines: tuple[str, ...], span: TrackedSpan, model: str | None
                  ) -> Generation:
    """A generation for text marked without an id: its prompt is the document around it, as fill-in-the-middle."""
    prefix, suffix = fim_context("".join(lines), offset_of(lines, span.start, ls.units),
                                 offset_of(lines, span.end, ls.units),
                                 ls.settings.fim_prefix_chars, ls.settings.fim_suffix_chars)
    return Generation(prompt_format="fim", prompt=Prompt(prefix=prefix, suffix=suffix), completion=span.generated,
                      model=ModelRef(model or "unknown"), origin="lsp", id=span.generation_id,
                      insertion=Insertion(doc.path, span.line_range()),
                      meta={"prompt": "reconstructed from the document", "marked_by": "user",
                            "lsp_range": [*span.start, *span.end]})


# -- completions linked without the client's help ----------------------------------------------------------------


def link_change(ls: RedlineServer, doc: Doc, start: Pos, end: Pos, text: str, replaced: str = "") -> bool:
    """Called for each incremental change (after it was applied): link or extend; True if a span was tracked.

    A piece continues the document's current run when it lands where the run ends, within the link window. A
    one-character piece that does not continue a linked run is typing and costs nothing more. `replaced` is the
    text the change replaced, when known: what it shares with the new text at either end was not inserted.
    """
    run = doc.run
    if len(text) < 2 and (run is None or run.linked is None):  # typing: the common case, decided at once
        doc.run = None
        return False
    if replaced:
        head = _shared(replaced, text)
        tail = _shared(replaced[head:][::-1], text[head:][::-1])
        start = end = end_of_insert(start, replaced[:head], ls.units)
        text = text[head:len(text) - tail]
        if len(text) < 2 and (run is None or run.linked is None):
            doc.run = None
            return False
    now, s = ls.wall(), ls.settings
    contiguous = run is not None and start == end == run.end and now - run.at <= s.link_window_seconds
    if run is not None and contiguous and run.linked is not None:
        if extends(run, text):
            run.text += text
            run.end, run.at = end_of_insert(run.start, run.text, ls.units), now
            linked(ls, doc, run, piece=start)
            return True
        contiguous = False
    if len(text) < 2:
        doc.run = None
        return False
    if not contiguous or run is None or len(run.text) > MAX_RUN_CHARS:
        run = Run(start, end_of_insert(start, text, ls.units), text, now)
    else:
        run.text += text
        run.end, run.at = end_of_insert(run.start, run.text, ls.units), now
    doc.run = run
    assert doc.repo is not None
    run.linked = find(doc.repo.recent, run.text, path=doc.path, now=now, floor=s.link_min_chars,
                      window=s.link_window_seconds)
    if run.linked is None:
        return False
    linked(ls, doc, run)
    return True


def linked(ls: RedlineServer, doc: Doc, run: Run, piece: Pos | None = None) -> None:
    """Track the run under its completion's id and queue the span (on the store thread, in order).

    On the typing path, so the index is touched in one place: a further piece extends the run's span where it
    stands (its start does not move), and a new span goes into one block of the index.
    """
    assert run.linked is not None and doc.repo is not None
    gid = run.linked.generation_id
    span = run.span
    if span is not None and span.generation_id == gid and span.state == "live" and span.end == piece:
        span.end = run.end
        span.generated = span.baseline = span.text = span.recorded_text = run.text
        doc.index.max_extent = max(doc.index.max_extent, span.end[0] - span.start[0])
    elif gid in doc.index.ids:  # this completion is tracked elsewhere in the document: it moves here
        span = run.span = track(ls, doc, gid, run.start, run.text)
    else:
        now = ls.now()
        span = run.span = TrackedSpan(gid, run.start, run.end, run.text, now,
                                      due=schedule(now, ls.settings.retention_checkpoints))
        doc.index.add(span)
    repo, path, text = doc.repo, doc.path, run.text
    logger.info("linked %d characters at %s:%d to served completion %s", len(text), path, run.start[0] + 1, gid)
    ls.spawn(ls.in_store(ledger.record, repo.store, repo.config, spans=[Span(gid, path, span.line_range(), text)]))


async def refresh_recent(ls: RedlineServer) -> None:
    """Reread each repository's recent served completions when its queue files changed (on the store thread)."""
    for repo in list(ls.repos.values()):
        await ls.in_store(reload_recent, repo, ls.wall(), ls.settings.link_window_seconds,
                          ls.settings.link_max_completions)


def reload_recent(repo: Repo, now: float, window: float, limit: int) -> None:
    """Blocking: rebuild `repo.recent` from the queue unless the queue's files are unchanged since the last read."""
    db = Path(repo.config.db_path)
    stamp = tuple(_mtime(Path(f"{db}{suffix}")) for suffix in ("", "-wal"))
    if stamp == repo.recent.stamp and now - repo.recent_read_at < window / 4:
        return
    since = datetime.fromtimestamp(now - window, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    entries = []
    try:
        recent = repo.store.recent_completions(since, origins=SERVED_ORIGINS, limit=limit)
    except QueueUnavailable:  # a team queue out of reach (one warning logged): keep the last list until it is back
        return
    for gid, text, created_at, path in recent:
        rel = repo_relative(repo.config.repo_root, path) if path else None
        entries.append(Recent(gid, text, normalise(text), _epoch(created_at), rel))
    repo.recent = RecentCompletions(entries, stamp)
    repo.recent_read_at = now


def _mtime(path: Path) -> int | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns ^ st.st_size


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _shared(a: str, b: str) -> int:
    """Length of the common prefix of two strings."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
