"""Open documents and their changes: open (finding the spans the queue holds for the file by content), apply each
incremental change to Redline's line buffer and span index, and read span texts back for the harvest.

`did_change` is the hot path (every keystroke): it splices the touched lines, moves only the spans near the
change, and hands inserted text to the completion linker, which answers from memory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path

from redline.attribution import locate, repo_relative
from redline.lsp_server import inserts
from redline.lsp_server.diagnostics import language_for
from redline.lsp_server.documents import Doc, LineBuffer, slice_text, whole_lines
from redline.lsp_server.spans import SpanIndex, TrackedSpan, reanchor
from redline.records import Span

if TYPE_CHECKING:
    from redline.lsp_server.server import RedlineServer

logger = logging.getLogger(__name__)

#: how long a request about a document waits for the document's stored spans to load
READY_TIMEOUT_S = 30.0
#: changes kept while a document's repository is looked up (an editor may insert a completion at once)
MAX_EARLY = 64



async def open_document(ls: RedlineServer, item: types.TextDocumentItem) -> None:
    fs_path = to_fs_path(item.uri)
    if fs_path is None:
        logger.info("not tracking %s: not a file URI", item.uri)
        return
    if len(item.text) > ls.settings.max_file_bytes:
        logger.warning("not tracking %s: %d characters is over maxFileBytes", item.uri, len(item.text))
        return
    if "\0" in item.text:
        logger.warning("not tracking %s: it looks binary", item.uri)
        return
    doc = Doc(item.uri, Path(fs_path), language_for(item.language_id, fs_path), item.version,
              LineBuffer(item.text), saved_version=item.version)
    ls.docs[item.uri] = doc
    try:
        repo = await ls.in_store(ls.repo_for, Path(fs_path))
        rel = repo_relative(repo.config.repo_root, fs_path) if repo else None
        if repo is None or rel is None:
            logger.info("not tracking %s: outside a repository", item.uri)
            ls.docs.pop(item.uri, None)
            return
        doc.repo, doc.path = repo, rel
        await load_spans(ls, doc)
        link_early(ls, doc)
    finally:
        doc.early.clear()
        doc.ready.set()


def link_early(ls: RedlineServer, doc: Doc) -> None:
    """Link the inserts that arrived while the document was being opened, as if they arrived now.

    They are replayed in order on a scratch index (so a span linked by one moves with the later ones), then
    joined to the spans found in the queue, which were located in the current text already.
    """
    assert doc.repo is not None
    if not doc.early or not len(doc.repo.recent):
        return
    found, doc.index, doc.run = doc.index, SpanIndex(), None
    now = ls.now()
    try:
        for start, end, text, old in doc.early:
            doc.index.apply(start, end, text, now, ls.units)
            inserts.link_change(ls, doc, start, end, text, old)
    finally:
        linked, doc.index = doc.index.all(), found
    if linked:
        doc.spans = [*found.all(), *linked]


async def load_spans(ls: RedlineServer, doc: Doc) -> None:
    """Re-anchor the spans the queue holds for this file by content (after a reopen, a checkout, a restart), and
    read how many problems each already has (for the hints; later writes count themselves)."""
    assert doc.repo is not None
    store = doc.repo.store

    def read() -> list[tuple[Span, str, set[str]]]:
        out = []
        for span in store.spans_for_path(doc.path):
            if span.state != "deleted":
                gen = store.get_generation(span.generation_id)
                problems = {f.fingerprint for f in store.feedback_for(span.generation_id) if f.kind == "diagnostic"}
                out.append((span, gen.completion if gen else span.text, problems))
        return out

    stored = await ls.in_store(read)
    if not stored:
        return
    for _ in range(3):
        version = doc.version
        source = doc.buffer.source
        found = await ls.in_checker(lambda src=source: [locate(s.text, src, s.range.start_line)
                                                        for s, _, _ in stored])
        if doc.version == version:
            break
    else:
        logger.warning("%s kept changing while its spans were re-anchored; they were dropped", doc.uri)
        return
    lines = tuple(doc.buffer.lines)
    tracked = {s.generation_id for s in doc.spans}
    now = ls.now()
    found_again = []
    for (span, generated, problems), where in zip(stored, found, strict=True):
        if where is None or span.generation_id in tracked:
            continue
        rng, _ = where
        text = whole_lines(lines, rng.start_line, rng.end_line)
        found_again.append(TrackedSpan(span.generation_id, (rng.start_line, 0), (rng.end_line, 0), generated,
                                       now, baseline=text, state=span.state))
        if problems:
            doc.problems.setdefault(span.generation_id, set()).update(problems)
    doc.spans = [*doc.spans, *found_again]


def did_change(ls: RedlineServer, params: types.DidChangeTextDocumentParams) -> bool:
    """Apply a change to a document Redline holds (and its spans); False for documents it does not hold."""
    doc = ls.docs.get(params.text_document.uri)
    if doc is None:
        return False
    doc.version = params.text_document.version
    track = ls.settings.track_spans and len(doc.index) > 0
    # its repository and stored spans are being looked up: link later (the spans loaded then would replace any
    # span linked now)
    loading = not doc.ready.is_set()
    link = ls.settings.link_completions and (loading or (doc.repo is not None and len(doc.repo.recent) > 0))
    now = ls.now()
    whole = False
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            r = change.range
            start, end = (r.start.line, r.start.character), (r.end.line, r.end.character)
            # some clients (Neovim) send an insert as "replace the rest of the line with the text and that rest"
            old = slice_text(doc.buffer.lines, start, end, ls.units) if (
                link and start != end and 2 <= len(change.text) <= inserts.MAX_RUN_CHARS) else ""
            doc.buffer.apply(start, end, change.text, ls.units)
            if track:
                doc.index.apply(start, end, change.text, now, ls.units)
            if loading and link:
                if len(doc.early) < MAX_EARLY:
                    doc.early.append((start, end, change.text, old))
            elif link and (doc.run is not None or len(change.text) > 1) and inserts.link_change(
                    ls, doc, start, end, change.text, old):  # (a keystroke with no run pending: nothing to do)
                track = True
        else:
            doc.buffer.replace(change.text)
            doc.run = None
            whole = True
    if not track or not (doc.index.covered or whole):
        return True
    lost = [s for s in doc.spans if s.covered or (whole and s.state != "deleted")]
    if lost:  # a formatter rewrote the file, or it was reloaded (git checkout): find the spans by content
        source = doc.buffer.source
        for span in lost:
            if not reanchor(span, source, ls.units):
                span.state, span.covered, span.touched_at = "deleted", False, now
                span.start = span.end = min(span.start, (len(doc.buffer.lines), 0))
        doc.spans = doc.spans  # positions moved: re-sort the index
    return True


def refresh_texts(ls: RedlineServer, doc: Doc, spans: list[TrackedSpan] | None = None) -> tuple[str, ...]:
    """Read the current text of `spans` (default: all) from the document; returns a snapshot of its lines."""
    lines = tuple(doc.buffer.lines)
    for span in doc.spans if spans is None else spans:
        span.text = "" if span.state == "deleted" else slice_text(lines, span.start, span.end, ls.units)
    return lines


def stored_spans(doc: Doc, lines: tuple[str, ...]) -> list[Span]:
    """The spans as the queue keeps them: whole lines, so `locate` can find them again."""
    out = []
    for s in doc.spans:
        rng = s.line_range()
        text = (s.text or "") if s.state == "deleted" else whole_lines(lines, rng.start_line, rng.end_line)
        out.append(Span(s.generation_id, doc.path, rng, text, s.state))
    return out
