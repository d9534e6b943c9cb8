"""The Redline language server: runs beside the user's usual language servers and harvests feedback on code a
model wrote — diagnostics on save, the human's edits once they settle, and review from code actions.

`RedlineServer` holds all state (open documents with their tracked spans, one config and queue per repo, the
clock); the handlers registered in `create_server` are thin: they find the document, call a pure function from
`spans`, `diagnostics` or `actions`, and hand queue writes to one worker thread (checkers run on another pool
with a timeout), so a `didChange` never waits on SQLite or a subprocess.

Custom protocol (see docs/editors.md):
  notification redline/didInsertGeneration {generationId?, uri, range, text?, model?}   client → server
  notification redline/diagnostics {uri, diagnostics: Diagnostic[], source?}              client → server
  notification redline/status {repo, queued, generations, feedback, adapter, lastTraining, nextTraining}
                                                                                          server → client
  workspace/executeCommand redline.recordInsert | redline.comment | redline.markGood | redline.markBad |
                           redline.status | redline.advanceClock (manual clock only)
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import FeatureRequestError, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.uris import to_fs_path

from lsp_server import actions
from lsp_server.diagnostics import diagnostic_feedback, findings_from_lsp, language_for, run_checkers
from lsp_server.documents import Doc, LineBuffer, Repo, offset_of, slice_text, whole_lines
from lsp_server.settings import Settings, settings_from_options
from lsp_server.spans import (
    TrackedSpan,
    edit_feedback,
    edit_ready,
    end_of_insert,
    fim_context,
    is_settled,
    measure_due,
    on_save,
    reanchor,
    schedule,
)
from lsp_server.status import read_status
from redline.attribution import locate, repo_relative
from redline.config import find_repo_root, load_config
from redline.errors import RedlineError
from redline.ledger import record_feedback, record_generation, record_insertion
from redline.queue import open_store
from redline.records import Feedback, Generation, Insertion, ModelRef, Prompt, Span, new_id

logger = logging.getLogger(__name__)

T = TypeVar("T")

VERSION = "0.1.0"
#: how long a request about a document waits for the document's stored spans to load
READY_TIMEOUT_S = 30.0


class RedlineProtocol(LanguageServerProtocol):
    """pygls's protocol, except that changes go to Redline's own line buffers (splicing the touched lines, where
    pygls rebuilds the whole text per change). Changes to documents Redline does not track (binary, too large,
    outside a repository) are dropped: nothing reads them, and a 10 MB line then costs nothing per keystroke."""

    redline: RedlineServer

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        self.redline.did_change(params)


class RedlineServer(LanguageServer):
    """State: settings, open documents, repos (config + queue), the clock, and the worker pools."""

    protocol: RedlineProtocol

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__("redline", VERSION, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         protocol_cls=RedlineProtocol)
        self.protocol.redline = self
        self.settings = Settings()
        self.docs: dict[str, Doc] = {}
        self.repos: dict[Path, Repo] = {}
        self.root: Path | None = None
        self.units: Callable[[str], int] = len
        self._clock = clock
        self._manual_now = 0.0
        self._last_status = -math.inf
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._store_pool = ThreadPoolExecutor(1, thread_name_prefix="redline-store")
        self._check_pool = ThreadPoolExecutor(2, thread_name_prefix="redline-check")

    # -- plumbing ----------------------------------------------------------------------------------------------

    def now(self) -> float:
        return self._manual_now if self.settings.manual_clock else self._clock()

    def advance(self, seconds: float) -> float:
        self._manual_now += seconds
        return self._manual_now

    def settle_for(self, doc: Doc) -> float:
        """The editor's `settleSeconds` if set, else the repo config's `settle_seconds`."""
        if self.settings.settle_seconds is not None:
            return self.settings.settle_seconds
        return doc.repo.config.settle_seconds if doc.repo else 30.0

    async def in_store(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run queue work on the single store thread (writes stay ordered; the event loop never waits on SQLite)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._store_pool, functools.partial(fn, *args, **kwargs))

    async def in_checker(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._check_pool, functools.partial(fn, *args, **kwargs))

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Start background work, keeping a reference and logging (never raising) its failure."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background work failed", exc_info=task.exception())

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Errors go to the log, never to a pop-up: the user is typing, not debugging Redline.

        A failed request already got its error response (and pygls logged it), so only the rest is logged here.
        """
        if source is not FeatureRequestError:
            logger.error("%s: %s", getattr(source, "__name__", source), error)

    def shutdown_pools(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        self._check_pool.shutdown(wait=False, cancel_futures=True)
        self._store_pool.shutdown(wait=True)

    # -- repos -------------------------------------------------------------------------------------------------

    def repo_for(self, path: Path) -> Repo | None:
        """Config and queue for the repo around `path` (blocking: call on the store thread)."""
        root = find_repo_root(path)
        if root not in self.repos:
            try:
                config = load_config(root)
                self.repos[root] = Repo(config, open_store(config))
            except RedlineError as exc:
                logger.warning("redline is off for %s: %s", root, exc.one_line())
                return None
        return self.repos[root]

    def default_repo(self) -> Repo | None:
        if self.root is not None and find_repo_root(self.root) in self.repos:
            return self.repos[find_repo_root(self.root)]
        return next(iter(self.repos.values()), None)

    # -- documents ---------------------------------------------------------------------------------------------

    def refresh_texts(self, doc: Doc, spans: list[TrackedSpan] | None = None) -> tuple[str, ...]:
        """Read the current text of `spans` (default: all) from the document; returns a snapshot of its lines."""
        lines = tuple(doc.buffer.lines)
        for span in doc.spans if spans is None else spans:
            span.text = "" if span.state == "deleted" else slice_text(lines, span.start, span.end, self.units)
        return lines

    def stored_spans(self, doc: Doc, lines: tuple[str, ...]) -> list[Span]:
        out = []
        for s in doc.spans:
            rng = s.line_range()
            text = (s.text or "") if s.state == "deleted" else whole_lines(lines, rng.start_line, rng.end_line)
            out.append(Span(s.generation_id, doc.path, rng, text, s.state))
        return out

    async def open_document(self, item: types.TextDocumentItem) -> None:
        fs_path = to_fs_path(item.uri)
        if fs_path is None:
            logger.info("not tracking %s: not a file URI", item.uri)
            return
        if len(item.text) > self.settings.max_file_bytes:
            logger.warning("not tracking %s: %d characters is over maxFileBytes", item.uri, len(item.text))
            return
        if "\0" in item.text:
            logger.warning("not tracking %s: it looks binary", item.uri)
            return
        doc = Doc(item.uri, Path(fs_path), language_for(item.language_id, fs_path), item.version,
                  LineBuffer(item.text), saved_version=item.version)
        self.docs[item.uri] = doc
        try:
            repo = await self.in_store(self.repo_for, Path(fs_path))
            rel = repo_relative(repo.config.repo_root, fs_path) if repo else None
            if repo is None or rel is None:
                logger.info("not tracking %s: outside a repository", item.uri)
                self.docs.pop(item.uri, None)
                return
            doc.repo, doc.path = repo, rel
            await self.load_spans(doc)
        finally:
            doc.ready.set()

    async def load_spans(self, doc: Doc) -> None:
        """Re-anchor the spans the queue holds for this file by content (after a reopen, a checkout, a restart)."""
        assert doc.repo is not None
        store = doc.repo.store

        def read() -> list[tuple[Span, str]]:
            out = []
            for span in store.spans_for_path(doc.path):
                if span.state != "deleted":
                    gen = store.get_generation(span.generation_id)
                    out.append((span, gen.completion if gen else span.text))
            return out

        stored = await self.in_store(read)
        if not stored:
            return
        for _ in range(3):
            version = doc.version
            source = doc.buffer.source
            found = await self.in_checker(lambda src=source: [locate(s.text, src, s.range.start_line)
                                                               for s, _ in stored])
            if doc.version == version:
                break
        else:
            logger.warning("%s kept changing while its spans were re-anchored; they were dropped", doc.uri)
            return
        lines = tuple(doc.buffer.lines)
        tracked = {s.generation_id for s in doc.spans}
        now = self.now()
        found_again = []
        for (span, generated), where in zip(stored, found, strict=True):
            if where is None or span.generation_id in tracked:
                continue
            rng, _ = where
            text = whole_lines(lines, rng.start_line, rng.end_line)
            found_again.append(TrackedSpan(span.generation_id, (rng.start_line, 0), (rng.end_line, 0), generated,
                                           now, baseline=text, state=span.state))
        doc.spans = [*doc.spans, *found_again]

    def did_change(self, params: types.DidChangeTextDocumentParams) -> bool:
        """Apply a change to a document Redline holds (and its spans); False for documents it does not hold."""
        doc = self.docs.get(params.text_document.uri)
        if doc is None:
            return False
        doc.version = params.text_document.version
        track = self.settings.track_spans and len(doc.index) > 0
        now = self.now()
        whole = False
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                r = change.range
                start, end = (r.start.line, r.start.character), (r.end.line, r.end.character)
                doc.buffer.apply(start, end, change.text, self.units)
                if track:
                    doc.index.apply(start, end, change.text, now, self.units)
            else:
                doc.buffer.replace(change.text)
                whole = True
        if not track or not (doc.index.covered or whole):
            return True
        lost = [s for s in doc.spans if s.covered or (whole and s.state != "deleted")]
        if lost:  # a formatter rewrote the file, or it was reloaded (git checkout): find the spans by content
            source = doc.buffer.source
            for span in lost:
                if not reanchor(span, source, self.units):
                    span.state, span.covered, span.touched_at = "deleted", False, now
                    span.start = span.end = min(span.start, (len(doc.buffer.lines), 0))
            doc.spans = doc.spans  # positions moved: re-sort the index
        return True

    # -- generated spans ---------------------------------------------------------------------------------------

    async def loaded_doc(self, uri: str) -> Doc | None:
        """The tracked document at `uri` once its stored spans are loaded; None if Redline does not track it."""
        doc = self.docs.get(uri)
        if doc is not None and not doc.ready.is_set():
            await asyncio.wait_for(doc.ready.wait(), READY_TIMEOUT_S)
        return doc if doc is not None and doc.repo is not None and self.docs.get(uri) is doc else None

    async def ready_doc(self, uri: Any) -> Doc:
        if not isinstance(uri, str):
            raise JsonRpcInvalidParams("uri must be a string")
        doc = await self.loaded_doc(uri)
        if doc is None:
            raise JsonRpcInvalidParams(f"{uri} is not an open document in a repository Redline tracks")
        return doc

    async def insert(self, params: Any) -> dict[str, Any]:
        """Track model-written text at a place in an open document (see `redline/didInsertGeneration`)."""
        if not isinstance(params, dict):
            raise JsonRpcInvalidParams("expected an object {generationId?, uri, range, text?}")
        doc = await self.ready_doc(params.get("uri"))
        assert doc.repo is not None
        start, end = _parse_range(params.get("range"))
        text, gid, model = params.get("text"), params.get("generationId"), params.get("model")
        if (text is not None and not isinstance(text, str)) or (gid is not None and not isinstance(gid, str)):
            raise JsonRpcInvalidParams("text and generationId must be strings")
        lines = tuple(doc.buffer.lines)
        if start[0] >= len(lines) and not (start == (len(lines), 0) and text == ""):
            raise JsonRpcInvalidParams(f"range starts at line {start[0]}; the document has {len(lines)} lines")
        if text is None:
            if end is None:
                raise JsonRpcInvalidParams("give the inserted text or the range's end")
            text = slice_text(lines, start, end, self.units)
        if not text.strip():
            raise JsonRpcInvalidParams("the span is empty")
        span = TrackedSpan(gid or new_id(), start, end_of_insert(start, text, self.units), text, self.now())
        if slice_text(lines, span.start, span.end, self.units) != text:
            source = "".join(lines)
            if not reanchor(span, source, self.units):
                raise JsonRpcInvalidParams("the text is not in the document at that range")
        span.due = schedule(span.inserted_at, self.settings.retention_checkpoints)
        doc.spans = [s for s in doc.spans if s.generation_id != span.generation_id] + [span]
        repo, rng = doc.repo, span.line_range()
        if gid:
            def track() -> bool:
                record_insertion(repo.store, gid, doc.path, rng, text)
                return repo.store.get_generation(gid) is not None

            known = await self.in_store(track)
        else:
            source = "".join(lines)
            prefix, suffix = fim_context(source, offset_of(lines, span.start, self.units),
                                         offset_of(lines, span.end, self.units),
                                         self.settings.fim_prefix_chars, self.settings.fim_suffix_chars)
            gen = Generation(prompt_format="fim", prompt=Prompt(prefix=prefix, suffix=suffix), completion=text,
                             model=ModelRef(model if isinstance(model, str) and model else "unknown"), origin="lsp",
                             id=span.generation_id, insertion=Insertion(doc.path, rng),
                             meta={"prompt": "reconstructed from the document", "marked_by": "user",
                                   "lsp_range": [*span.start, *span.end]})
            await self.in_store(record_generation, repo.store, repo.config, gen)
            known = True
        return {"generationId": span.generation_id, "known": known,
                "range": {"start": {"line": span.start[0], "character": span.start[1]},
                          "end": {"line": span.end[0], "character": span.end[1]}}}

    # -- saving, checking, recording ---------------------------------------------------------------------------

    async def save(self, uri: str) -> None:
        doc = self.docs.get(uri)
        if doc is None:
            return
        await doc.ready.wait()
        if doc.repo is None:
            return
        async with doc.lock:
            doc.saved_version = doc.version
            lines = self.refresh_texts(doc)
            on_save(doc.spans, self.now())
            snapshot = [copy.copy(s) for s in doc.spans]
            findings = []
            size = sum(len(line) for line in lines)
            if size <= self.settings.max_file_bytes and doc.language:
                findings = await self.in_checker(
                    run_checkers, doc.abs_path, doc.language, cwd=doc.repo.config.repo_root,
                    configured=doc.repo.config.checkers, builtin=self.settings.builtin_checkers,
                    timeout=self.settings.checker_timeout)
            for forwarded in doc.forwarded.values():
                findings += forwarded
            feedback = diagnostic_feedback(findings, snapshot, doc.path)
            await self.record(doc, feedback, lines, persist=True)
            self.publish_hints(doc)
        await self.send_status(doc.repo)

    async def forwarded(self, params: Any) -> None:
        """`redline/diagnostics`: what the client's other language servers published for a document."""
        if not isinstance(params, dict) or not isinstance(params.get("uri"), str):
            logger.warning("redline/diagnostics without a uri ignored")
            return
        doc = self.docs.get(params["uri"])
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
            if feedback and await self.record(doc, feedback, tuple(doc.buffer.lines)):
                self.publish_hints(doc)

    async def record(self, doc: Doc, feedback: list[Feedback], lines: tuple[str, ...], *,
                     persist: bool = False) -> int:
        """Queue feedback for `doc` (and the spans' current places); returns how many records were new."""
        repo = doc.repo
        assert repo is not None
        spans = self.stored_spans(doc, lines) if persist else []
        gids = [s.generation_id for s in doc.spans]
        source = "".join(lines)

        def write() -> tuple[int, dict[str, int]]:
            added = record_feedback(repo.store, repo.config, feedback, file_texts={doc.path: source}).feedback
            if spans:
                repo.store.add(spans=spans)
            problems = {g: sum(f.kind == "diagnostic" for f in repo.store.feedback_for(g)) for g in gids}
            return added, problems

        added, doc.problems = await self.in_store(write) if (feedback or spans) else (0, doc.problems)
        return added

    def publish_hints(self, doc: Doc) -> None:
        diagnostics = []
        if self.settings.hints:
            for span in doc.spans:
                n = doc.problems.get(span.generation_id, 0)
                if n and span.state != "deleted":
                    diagnostics.append(types.Diagnostic(
                        range=types.Range(types.Position(*span.start), types.Position(*span.end)),
                        message=f"{n} problem{'s' if n != 1 else ''} recorded for training",
                        severity=types.DiagnosticSeverity.Hint, source="redline"))
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=doc.uri, diagnostics=diagnostics, version=doc.version))

    async def run_timers(self, *, flush: set[str] | None = None) -> int:
        """Measure retention checkpoints that passed and record settled human edits; returns records added."""
        now, added = self.now(), 0
        for doc in list(self.docs.values()):
            if doc.repo is None or not doc.ready.is_set():
                continue
            flushing = flush is not None and doc.uri in flush
            settle = self.settle_for(doc)
            due = [s for s in doc.spans if (s.due and s.due[0][1] <= now)
                   or (s.touched_at is not None and (flushing or is_settled(s, now, settle)))]
            if not due:
                continue
            async with doc.lock:
                lines = self.refresh_texts(doc, due)
                feedback = []
                for span in due:
                    measure_due(span, now)
                    if edit_ready(span, now, settle, flush=flushing):
                        feedback.append(edit_feedback(span, doc.path))
                        span.recorded_text = "" if span.state == "deleted" else span.text
                    if not span.due and span.text == span.recorded_text:
                        span.touched_at = None  # nothing pending: stop looking at it
                if feedback:
                    added += await self.record(doc, feedback, lines, persist=True)
                doc.spans = [s for s in doc.spans if not (s.state == "deleted" and s.touched_at is None)]
        return added

    async def review(self, command: str, args: Any) -> dict[str, Any]:
        try:
            uri, gid, text = actions.review_target(args)
        except ValueError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        doc = await self.ready_doc(uri)
        span = next((s for s in doc.spans if s.generation_id == gid), None)
        if span is None:
            raise JsonRpcInvalidParams(f"no generated span {gid} in {uri}")
        lines = self.refresh_texts(doc, [span])
        try:
            feedback = actions.review_feedback(command, span, doc.path, text)
        except ValueError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        return {"recorded": await self.record(doc, [feedback], lines)}

    async def close(self, uri: str) -> None:
        if uri in self.docs:
            await self.run_timers(flush={uri})
            doc = self.docs.pop(uri, None)
            if doc is not None and doc.repo is not None:
                self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    # -- status ------------------------------------------------------------------------------------------------

    async def send_status(self, repo: Repo | None = None) -> dict[str, Any]:
        """Notify `redline/status`; announce a newly promoted adapter with `window/showMessage`."""
        repo = repo or self.default_repo()
        if repo is None and self.root is not None:
            repo = await self.in_store(self.repo_for, self.root)
        if repo is None:
            return {}
        self._last_status = self.now()
        status, promoted = await self.in_store(read_status, repo)
        self.protocol.notify("redline/status", status)
        if promoted:
            self.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=promoted))
        return status

    async def tick(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_seconds)
            try:
                await self.run_timers()
                if self.now() - self._last_status >= self.settings.status_every_seconds:
                    await self.send_status()
            except Exception:
                logger.exception("timer run failed")


def _parse_range(raw: Any) -> tuple[tuple[int, int], tuple[int, int] | None]:
    def pos(p: Any) -> tuple[int, int]:
        if not isinstance(p, dict):
            raise JsonRpcInvalidParams("a position must be {line, character}")
        line, char = p.get("line"), p.get("character")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31 for v in (line, char)):
            raise JsonRpcInvalidParams("line and character must be non-negative integers")
        return line, char

    if not isinstance(raw, dict):
        raise JsonRpcInvalidParams("range must be {start, end?}")
    start = pos(raw.get("start"))
    end = pos(raw["end"]) if raw.get("end") is not None else None
    if end is not None and end < start:
        raise JsonRpcInvalidParams("range ends before it starts")
    return start, end


def plain(obj: Any) -> Any:
    """pygls hands custom-message params over as namedtuples; turn them back into dicts and lists."""
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def create_server(clock: Callable[[], float] = time.monotonic) -> RedlineServer:
    """A server with every handler registered (a new one per call, so tests and the bench can run several)."""
    server = RedlineServer(clock)

    @server.feature(types.INITIALIZE)
    def initialize(ls: RedlineServer, params: types.InitializeParams) -> None:
        ls.settings, warnings = settings_from_options(params.initialization_options)
        for warning in warnings:
            logger.warning("%s", warning)
        ls.units = ls.workspace.position_codec.client_num_units
        root = params.root_uri or (params.workspace_folders[0].uri if params.workspace_folders else None)
        fs_root = to_fs_path(root) if root else params.root_path
        ls.root = Path(fs_root) if fs_root else None

    @server.feature(types.INITIALIZED)
    async def initialized(ls: RedlineServer, params: types.InitializedParams) -> None:
        if ls.root is not None:
            await ls.in_store(ls.repo_for, ls.root)
        if not ls.settings.manual_clock:
            ls._ticker = ls.spawn(ls.tick())
        await ls.send_status()

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: RedlineServer, params: None) -> None:
        try:
            await ls.run_timers(flush=set(ls.docs))
        finally:
            ls.shutdown_pools()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: RedlineServer, params: types.DidOpenTextDocumentParams) -> None:
        await ls.open_document(params.text_document)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: RedlineServer, params: types.DidSaveTextDocumentParams) -> None:
        await ls.save(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    async def did_close(ls: RedlineServer, params: types.DidCloseTextDocumentParams) -> None:
        await ls.close(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION)
    async def code_action(ls: RedlineServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        doc = await ls.loaded_doc(params.text_document.uri)
        return actions.code_actions(doc.uri, doc.spans, params.range) if doc else None

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    async def code_lens(ls: RedlineServer, params: types.CodeLensParams) -> list[types.CodeLens] | None:
        doc = await ls.loaded_doc(params.text_document.uri)
        return actions.code_lenses(doc.uri, doc.spans) if doc else None

    @server.feature("redline/didInsertGeneration")
    async def did_insert_generation(ls: RedlineServer, params: Any) -> None:
        try:
            await ls.insert(plain(params))
        except JsonRpcInvalidParams as exc:
            logger.warning("redline/didInsertGeneration ignored: %s", exc)

    @server.feature("redline/diagnostics")
    async def client_diagnostics(ls: RedlineServer, params: Any) -> None:
        await ls.forwarded(plain(params))

    @server.command(actions.RECORD_INSERT)
    async def record_insert(ls: RedlineServer, *args: Any) -> dict[str, Any]:
        if len(args) != 1:
            raise JsonRpcInvalidParams("expected one argument {generationId?, uri, range, text?}")
        return await ls.insert(args[0])

    @server.command(actions.COMMENT)
    async def comment(ls: RedlineServer, *args: Any) -> dict[str, Any]:
        return await ls.review(actions.COMMENT, list(args))

    @server.command(actions.MARK_GOOD)
    async def mark_good(ls: RedlineServer, *args: Any) -> dict[str, Any]:
        return await ls.review(actions.MARK_GOOD, list(args))

    @server.command(actions.MARK_BAD)
    async def mark_bad(ls: RedlineServer, *args: Any) -> dict[str, Any]:
        return await ls.review(actions.MARK_BAD, list(args))

    @server.command(actions.STATUS)
    async def status(ls: RedlineServer, *args: Any) -> dict[str, Any]:
        return await ls.send_status()

    @server.command(actions.ADVANCE_CLOCK)
    async def advance_clock(ls: RedlineServer, *args: Any) -> dict[str, Any]:
        if not ls.settings.manual_clock:
            raise JsonRpcInvalidParams("redline.advanceClock needs initializationOptions.manualClock")
        if len(args) != 1 or isinstance(args[0], bool) or not isinstance(args[0], int | float) or args[0] < 0:
            raise JsonRpcInvalidParams("expected one non-negative number of seconds")
        now = ls.advance(float(args[0]))
        added = await ls.run_timers()
        await ls.send_status()
        return {"now": now, "recorded": added}

    return server


__all__ = ["RedlineProtocol", "RedlineServer", "create_server"]
