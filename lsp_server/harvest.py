"""Harvest: what happens to model-written code becomes feedback — checkers and forwarded diagnostics on save,
settled human edits, retention figures and code kept as written on timers, and everything pending when a
document closes.

Each function takes the server, reads the document's spans, calls a pure function from `spans` or `diagnostics`,
and queues the result on the store thread.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from redline import ledger
from redline.lsp_server.diagnostics import diagnostic_feedback, findings_from_lsp, run_checkers
from redline.lsp_server.documents import Doc
from redline.lsp_server.spans import (
    edit_feedback,
    edit_ready,
    is_settled,
    kept_as_written,
    kept_feedback,
    measure_due,
    on_save,
)
from redline.lsp_server.tracking import refresh_texts, stored_spans
from redline.records import Feedback

if TYPE_CHECKING:
    from redline.lsp_server.server import RedlineServer

logger = logging.getLogger(__name__)



async def save(ls: RedlineServer, uri: str) -> None:
    doc = ls.docs.get(uri)
    if doc is None:
        return
    await doc.ready.wait()
    if doc.repo is None:
        return
    async with doc.lock:
        doc.saved_version = doc.version
        lines = refresh_texts(ls, doc)
        on_save(doc.spans, ls.now())
        snapshot = [copy.copy(s) for s in doc.spans]
        findings = []
        size = sum(len(line) for line in lines)
        if size <= ls.settings.max_file_bytes and doc.language:
            findings = await ls.in_checker(
                run_checkers, doc.abs_path, doc.language, cwd=doc.repo.config.repo_root,
                configured=doc.repo.config.checkers, builtin=ls.settings.builtin_checkers,
                timeout=ls.settings.checker_timeout)
        for more in doc.forwarded.values():
            findings += more
        feedback = diagnostic_feedback(findings, snapshot, doc.path)
        await record(ls, doc, feedback, lines, persist=True)
        publish_hints(ls, doc)
    await ls.send_status(doc.repo)


async def forwarded(ls: RedlineServer, params: Any) -> None:
    """`redline/diagnostics`: what the client's other language servers published for a document."""
    if not isinstance(params, dict) or not isinstance(params.get("uri"), str):
        logger.warning("redline/diagnostics without a uri ignored")
        return
    doc = ls.docs.get(params["uri"])
    if doc is None:
        return
    key = params.get("source") if isinstance(params.get("source"), str) else "client"
    doc.forwarded[key] = findings_from_lsp(params.get("diagnostics"), key)
    await doc.ready.wait()
    if doc.repo is None or not doc.clean:
        return  # diagnostics on unsaved text are often transient: they are harvested at the next save
    async with doc.lock:
        feedback = diagnostic_feedback(doc.forwarded[key], doc.spans, doc.path)
        # hints only when something new was recorded: a client that forwards on every diagnostics change
        # would otherwise see our own hints as a change and loop
        if feedback and await record(ls, doc, feedback, tuple(doc.buffer.lines)):
            publish_hints(ls, doc)


async def record(ls: RedlineServer, doc: Doc, feedback: list[Feedback], lines: tuple[str, ...], *,
                 persist: bool = False) -> int:
    """Queue feedback for `doc` (and the spans' current places) in one ledger call; returns how many records
    were new.

    The hints' problem counts are kept from what is written here (a set of fingerprints per generation, seeded
    when the document opened), so no write is followed by a read of everything the span already has.
    """
    repo = doc.repo
    assert repo is not None
    spans = stored_spans(doc, lines) if persist else []
    if not (feedback or spans):
        return 0
    source = "".join(lines)

    result = await ls.in_store(ledger.record, repo.store, repo.config, feedback=feedback, spans=spans,
                               file_texts={doc.path: source})
    if result.spooled:
        logger.warning("%s; %d records spooled to %s, merged on the next open", result.busy, result.spooled,
                       result.spool_file)
    for fb in feedback:  # feedback on a tracked span already carries its generation id
        if fb.kind == "diagnostic" and fb.generation_id is not None:
            doc.problems.setdefault(fb.generation_id, set()).add(fb.fingerprint)
    return result.feedback


def publish_hints(ls: RedlineServer, doc: Doc) -> None:
    diagnostics = []
    if ls.settings.hints:
        for span in doc.spans:
            n = len(doc.problems.get(span.generation_id, ()))
            if n and span.state != "deleted":
                diagnostics.append(types.Diagnostic(
                    range=types.Range(types.Position(*span.start), types.Position(*span.end)),
                    message=f"{n} problem{'s' if n != 1 else ''} recorded for training",
                    severity=types.DiagnosticSeverity.Hint, source="redline"))
    ls.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=doc.uri, diagnostics=diagnostics, version=doc.version))


async def run_timers(ls: RedlineServer, *, flush: set[str] | None = None) -> int:
    """Measure retention checkpoints that passed, record settled human edits and spans kept as written; returns
    records added."""
    now, added = ls.now(), 0
    for doc in list(ls.docs.values()):
        if doc.repo is None or not doc.ready.is_set():
            continue
        flushing = flush is not None and doc.uri in flush
        settle = ls.settle_for(doc)
        due = [s for s in doc.spans if (s.due and s.due[0][1] <= now)
               or (s.touched_at is not None and (flushing or is_settled(s, now, settle)))]
        if not due:
            continue
        async with doc.lock:
            lines = refresh_texts(ls, doc, due)
            feedback = []
            for span in due:
                # the last checkpoint measured now (once), the span unchanged, the saved file checked clean
                if measure_due(span, now) and kept_as_written(span) and doc.clean \
                        and not doc.problems.get(span.generation_id):
                    feedback.append(kept_feedback(span, doc.path))
                if edit_ready(span, now, settle, flush=flushing):
                    feedback.append(edit_feedback(span, doc.path))
                    span.recorded_text = "" if span.state == "deleted" else span.text
                if not span.due and span.text == span.recorded_text:
                    span.touched_at = None  # nothing pending: stop looking at it
            if feedback:
                added += await record(ls, doc, feedback, lines, persist=True)
            doc.spans = [s for s in doc.spans if not (s.state == "deleted" and s.touched_at is None)]
    return added


async def close(ls: RedlineServer, uri: str) -> None:
    if uri in ls.docs:
        await run_timers(ls, flush={uri})
        doc = ls.docs.pop(uri, None)
        if doc is not None and doc.repo is not None:
            ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


async def advance_clock(ls: RedlineServer, args: tuple[Any, ...]) -> dict[str, Any]:
    """`redline.advanceClock SECONDS` (manual clock only): move time on and run the timers it makes due."""
    if not ls.settings.manual_clock:
        raise JsonRpcInvalidParams("redline.advanceClock needs initializationOptions.manualClock")
    if len(args) != 1 or isinstance(args[0], bool) or not isinstance(args[0], int | float) or args[0] < 0:
        raise JsonRpcInvalidParams("expected one non-negative number of seconds")
    now = ls.advance(float(args[0]))
    added = await run_timers(ls)
    await ls.send_status()
    return {"now": now, "recorded": added}
