"""The Redline language server: runs beside the user's usual language servers and harvests feedback on code a
model wrote — diagnostics on save, the human's edits once they settle, and review from code actions.

This module is the state and the wiring. `RedlineServer` holds the state (settings, open documents with their
tracked spans, one config and queue per repo, the clock, the worker pools); `create_server` registers thin
handlers, each calling one concern's module: `tracking` (open documents and their changes), `inserts` (the insert
protocol, and completions linked without the client's help), `harvest` (save, timers, close) and `review` (code
actions and the review commands). Queue writes go to one worker thread and checkers to another pool with a timeout, so a
`didChange` never waits on SQLite or a subprocess.

Custom protocol (see docs/editors.md):
  notification redline/didInsertGeneration {generationId?, uri, range, text?, model?}   client → server
  notification redline/diagnostics {uri, diagnostics: Diagnostic[], source?}              client → server
  notification redline/status {repo, queued, generations, feedback, adapter, ...}        server → client
  workspace/executeCommand redline.recordInsert | redline.comment | redline.markGood | redline.markBad |
                           redline.status | redline.advanceClock (manual clock only)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from lsprotocol import types
from pygls.exceptions import FeatureRequestError, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.uris import to_fs_path

from redline.config import find_repo_root, load_config
from redline.errors import RedlineError
from redline.lsp_server import actions, harvest, inserts, review, tracking
from redline.lsp_server.documents import Doc, Repo
from redline.lsp_server.framing import FramedReader
from redline.lsp_server.params import plain
from redline.lsp_server.settings import Settings, settings_from_options
from redline.lsp_server.status import read_status
from redline.queue import open_store

logger = logging.getLogger(__name__)

T = TypeVar("T")

VERSION = "0.1.0"


class RedlineProtocol(LanguageServerProtocol):
    """pygls's protocol, except that changes go to Redline's own line buffers (splicing the touched lines, where
    pygls rebuilds the whole text per change). Changes to documents Redline does not track (binary, too large,
    outside a repository) are dropped: nothing reads them, and a 10 MB line then costs nothing per keystroke."""

    redline: RedlineServer

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        tracking.did_change(self.redline, params)


class RedlineServer(LanguageServer):
    """State: settings, open documents, repos (config + queue), the clock, and the worker pools."""

    protocol: RedlineProtocol

    def __init__(self, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        super().__init__("redline", VERSION, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         protocol_cls=RedlineProtocol)
        self.protocol.redline = self
        self.settings = Settings()
        self.docs: dict[str, Doc] = {}
        self.repos: dict[Path, Repo] = {}
        self.root: Path | None = None
        self.units: Callable[[str], int] = len
        #: wall-clock seconds since the epoch (how old a recorded completion is; never the manual clock)
        self.wall = wall
        self._clock = clock
        self._manual_now = 0.0
        self.last_status = -math.inf
        self._background: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._store_pool = ThreadPoolExecutor(1, thread_name_prefix="redline-store")
        self._check_pool = ThreadPoolExecutor(2, thread_name_prefix="redline-check")

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serve on stdio, reading frames through `FramedReader` so a bad `Content-Length` cannot kill or hang us."""
        super().start_io(FramedReader(stdin or sys.stdin.buffer), stdout)

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

    def every(self, seconds: Callable[[], float], work: Callable[[], Any], what: str) -> None:
        """Run `await work()` every `seconds()` until shutdown; a failure is logged and the next round runs."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds())
                try:
                    await work()
                except Exception:
                    logger.exception("%s failed", what)

        self._background.append(self.spawn(loop()))

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
        for task in self._background:
            task.cancel()
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

    async def loaded_doc(self, uri: str) -> Doc | None:
        """The tracked document at `uri` once its stored spans are loaded; None if Redline does not track it."""
        doc = self.docs.get(uri)
        if doc is not None and not doc.ready.is_set():
            # `asyncio.timeout`, not `wait_for`: no extra task, so the handlers waiting for this document wake in
            # the order their messages came (an insert before the save that follows it)
            async with asyncio.timeout(tracking.READY_TIMEOUT_S):
                await doc.ready.wait()
        return doc if doc is not None and doc.repo is not None and self.docs.get(uri) is doc else None

    async def ready_doc(self, uri: Any) -> Doc:
        if not isinstance(uri, str):
            raise JsonRpcInvalidParams("uri must be a string")
        doc = await self.loaded_doc(uri)
        if doc is None:
            raise JsonRpcInvalidParams(f"{uri} is not an open document in a repository Redline tracks")
        return doc

    # -- status ------------------------------------------------------------------------------------------------

    async def send_status(self, repo: Repo | None = None) -> dict[str, Any]:
        """Notify `redline/status`; announce a newly promoted adapter with `window/showMessage`."""
        repo = repo or self.default_repo()
        if repo is None and self.root is not None:
            repo = await self.in_store(self.repo_for, self.root)
        if repo is None:
            return {}
        self.last_status = self.now()
        status, promoted = await self.in_store(read_status, repo)
        self.protocol.notify("redline/status", status)
        if promoted:
            self.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=promoted))
        return status

    async def tick(self) -> None:
        """Timers (settled edits, retention checkpoints) and, every `statusEverySeconds`, the status."""
        await harvest.run_timers(self)
        if self.now() - self.last_status >= self.settings.status_every_seconds:
            await self.send_status()


def create_server(clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> RedlineServer:
    """A server with every handler registered (a new one per call, so tests and the bench can run several)."""
    server = RedlineServer(clock, wall)

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
            ls.every(lambda: ls.settings.tick_seconds, ls.tick, "timer run")
        if ls.settings.link_completions:
            await inserts.refresh_recent(ls)
            ls.every(lambda: ls.settings.link_refresh_seconds, lambda: inserts.refresh_recent(ls),
                     "reading recent completions")
        await ls.send_status()

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: RedlineServer, params: None) -> None:
        try:
            await harvest.run_timers(ls, flush=set(ls.docs))
        finally:
            ls.shutdown_pools()

    @server.command(actions.STATUS)
    async def status(ls: RedlineServer, *args: Any) -> dict[str, Any]:
        if ls.settings.link_completions:  # so a client (or test) that asks sees the completions served so far
            await inserts.refresh_recent(ls)
        return await ls.send_status()

    # -- documents (tracking) -------------------------------------------------------------------------------------

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: RedlineServer, params: types.DidOpenTextDocumentParams) -> None:
        await tracking.open_document(ls, params.text_document)

    # -- the insert protocol (inserts) ------------------------------------------------------------------------------

    @server.feature("redline/didInsertGeneration")
    async def did_insert_generation(ls: RedlineServer, params: Any) -> None:
        try:
            await inserts.insert(ls, plain(params))
        except JsonRpcInvalidParams as exc:
            logger.warning("redline/didInsertGeneration ignored: %s", exc)

    @server.command(actions.RECORD_INSERT)
    async def record_insert(ls: RedlineServer, *args: Any) -> dict[str, Any]:
        if len(args) != 1:
            raise JsonRpcInvalidParams("expected one argument {generationId?, uri, range, text?}")
        try:
            return await inserts.insert(ls, args[0])
        except RedlineError as exc:  # a record the queue refuses (a lone surrogate, a bad id): the client's fault
            raise JsonRpcInvalidParams(exc.one_line()) from None

    # -- harvest on save, on timers, on close (harvest) -------------------------------------------------------------

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: RedlineServer, params: types.DidSaveTextDocumentParams) -> None:
        await harvest.save(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    async def did_close(ls: RedlineServer, params: types.DidCloseTextDocumentParams) -> None:
        await harvest.close(ls, params.text_document.uri)

    @server.feature("redline/diagnostics")
    async def client_diagnostics(ls: RedlineServer, params: Any) -> None:
        await harvest.forwarded(ls, plain(params))

    @server.command(actions.ADVANCE_CLOCK)
    async def advance_clock(ls: RedlineServer, *args: Any) -> dict[str, Any]:
        return await harvest.advance_clock(ls, args)

    # -- review (review) --------------------------------------------------------------------------------------------

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION)
    async def code_action(ls: RedlineServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        doc = await ls.loaded_doc(params.text_document.uri)
        return actions.code_actions(doc.uri, doc.spans, params.range) if doc else None

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    async def code_lens(ls: RedlineServer, params: types.CodeLensParams) -> list[types.CodeLens] | None:
        doc = await ls.loaded_doc(params.text_document.uri)
        return actions.code_lenses(doc.uri, doc.spans) if doc else None

    @server.command(actions.COMMENT)
    async def comment(ls: RedlineServer, *args: Any) -> dict[str, Any]:
        return await review.review(ls, actions.COMMENT, list(args))

    @server.command(actions.MARK_GOOD)
    async def mark_good(ls: RedlineServer, *args: Any) -> dict[str, Any]:
        return await review.review(ls, actions.MARK_GOOD, list(args))

    @server.command(actions.MARK_BAD)
    async def mark_bad(ls: RedlineServer, *args: Any) -> dict[str, Any]:
        return await review.review(ls, actions.MARK_BAD, list(args))

    return server


__all__ = ["RedlineProtocol", "RedlineServer", "create_server"]
