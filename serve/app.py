"""The HTTP side of `redline serve` (Starlette): endpoints, streaming, the ledger, control endpoints.

No torch here: the engine (serve/engine.py) is passed in. All model work runs on one worker thread
(a one-thread executor, first come first served), so concurrent requests queue instead of sharing KV state.
The ledger row is written on that thread right after the last token and before the closing chunk is sent, so
a response's id always names a complete row. A client that disconnects stops its generation and nothing is
recorded, streamed or not: the row would describe text the client never received in full.

Every request passes `guard.Guard` first (Host, Origin, Content-Type: a web page must not reach the model); the
control endpoints also need the per-start token that `serve.json` holds (mode 0600), which only this user's
processes can read (`control.py` sends it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from redline.config import Config
from redline.errors import NotFound, RedlineError, UpstreamError
from redline.records import new_id
from redline.serve import answers, shapes
from redline.serve.guard import Policy
from redline.serve.hinting import Hints
from redline.serve.recording import record_served, served_generation
from redline.serve.shapes import BadRequest, GenRequest

log = logging.getLogger("redline.serve")

YIELDED = "yielded-to-training"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
DEFAULT_MAX_BODY = 4 * 1024 * 1024
#: the request header carrying the control token (a custom header: a web page could not send it without a
#: preflight, which is never granted for it)
TOKEN_HEADER = "x-redline-token"


class Unavailable(RedlineError):
    """The model is not loaded (yielded to training, or loading): HTTP 503 with Retry-After."""


class BodyTooLarge(BadRequest):
    """HTTP 413."""


@dataclass
class Served:
    """What the app needs from the engine (kept as a protocol-by-convention so this module stays torch-free)."""

    engine: Any
    config: Config
    store: Any
    max_body: int = DEFAULT_MAX_BODY
    poll_s: float = 2.0
    state: str = "serving"
    reason: str = ""
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "redline-gen"))
    #: `serve_hints`: the repository's recurring red lines, put into every prompt (None = off)
    hints: Hints | None = None
    #: the control endpoints' per-start token (in serve.json); "" refuses every control request
    token: str = ""
    #: called with the adapters that failed to load ({version: why}) whenever that changes (serve.json notes it)
    on_failed: Callable[[dict[str, str]], None] | None = None
    _noted: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.hints is None and self.config.serve_hints:
            self.hints = Hints(self.store, self.config.serve_hints)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def sync(self, *, force: bool = False) -> None:
        """Pick up the registry's current adapter (worker thread), then note any that failed to load."""
        try:
            self.engine.sync(force=force)
        finally:
            self.note_failures()

    def note_failures(self) -> None:
        """Tell `on_failed` when the set of adapters that could not be loaded changed (worker thread)."""
        failed = dict(self.engine.failed)
        if failed != self._noted:
            self._noted = failed
            if self.on_failed is not None:
                try:
                    self.on_failed(failed)
                except OSError:
                    log.warning("could not note the adapter that failed to load in serve.json")


def build_app(served: Served, *, policy: Policy | None = None, on_start: Callable[[], None] | None = None,
              on_stop: Callable[[], None] | None = None) -> Starlette:
    routes = [Route(path, _generation_route(served, ep), methods=["POST"]) for path, ep in shapes.ENDPOINTS.items()]
    routes += [
        Route("/v1/models", _bound(_models, served), methods=["GET"]),
        Route("/api/tags", _bound(_tags, served), methods=["GET"]),
        Route("/redline/health", _bound(_control, served, "health"), methods=["GET"]),
        Route("/redline/reload", _bound(_control, served, "reload"), methods=["POST"]),
        Route("/redline/yield", _bound(_control, served, "yield"), methods=["POST"]),
        Route("/redline/resume", _bound(_control, served, "resume"), methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        poller = asyncio.create_task(_poll(served))
        if on_start:
            on_start()
        try:
            yield
        finally:
            poller.cancel()
            if on_stop:
                on_stop()
            served.executor.shutdown(wait=False, cancel_futures=True)

    return Starlette(routes=routes, lifespan=lifespan, middleware=(policy or Policy()).middleware(),
                     exception_handlers={
        # the specific ones answer inside the app; `Exception` (a real 500) also reaches uvicorn's log
        BadRequest: _error_response, RedlineError: _error_response, Exception: _error_response})


def _bound(fn: Callable[..., Any], *args: Any) -> Callable[[Request], Any]:
    """An async endpoint calling `fn(request, *args)` (Starlette runs plain callables on a thread pool)."""
    async def endpoint(request: Request) -> Response:
        return await fn(request, *args)

    return endpoint


# -- errors ------------------------------------------------------------------------------------------------------


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(answers.error_body(message, status), status_code=status, headers=headers)


def status_for(exc: BaseException) -> int:
    if isinstance(exc, BodyTooLarge):
        return 413
    if isinstance(exc, BadRequest):
        return 400
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Unavailable):
        return 503
    if isinstance(exc, UpstreamError):  # the proxy's upstream is down or answered something unreadable
        return 502
    return 500


async def _error_response(request: Request, exc: Exception) -> Response:
    status = status_for(exc)
    if status == 500:
        log.exception("request failed")
    headers = {"X-Redline-State": YIELDED, "Retry-After": "30"} if status == 503 else None
    text = exc.one_line() if isinstance(exc, RedlineError) else str(exc) or type(exc).__name__
    return error(status, text, headers)


async def read_body(request: Request, limit: int) -> dict[str, Any]:
    return shapes.parse_body(await read_raw(request, limit))


async def read_raw(request: Request, limit: int) -> bytes:
    """The body's bytes, refusing more than `limit` before reading them all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body is {declared} bytes, over the limit of {limit}: send less context")
    chunks, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise BodyTooLarge(f"the body is over the limit of {limit} bytes: send less context")
        chunks.append(part)
    return b"".join(chunks)


# -- generation --------------------------------------------------------------------------------------------------


def _generation_route(served: Served, endpoint: shapes.Endpoint) -> Callable[[Request], Any]:
    async def handle(request: Request) -> Response:
        if served.state != "serving":
            why = f"{served.state}: {served.reason}" if served.reason else served.state
            raise Unavailable(f"the model is not loaded ({why})", fix="retry after training finishes")
        req = shapes.parse_request(endpoint, await read_body(request, served.max_body))
        if req.path is None and request.headers.get("x-redline-path"):
            req.path = request.headers["x-redline-path"]
        job = _Job(served, req, new_id(), asyncio.get_running_loop())
        headers = {"X-Redline-Generation": job.gid}
        if not req.stream:
            if not await _finished_unless_gone(request, job):
                return error(499, "the client closed the connection before the answer was ready")
            finished = job.done.result()
            if finished is None:
                await job.ready  # raises why the prompt was refused (unknown model, too long)
            assert finished is not None  # nothing else stops a whole answer once its prompt is ready
            out, name = finished
            return JSONResponse(answers.response(req, job.gid, name, out.result), headers=headers)
        try:
            await job.ready  # the prompt was rendered, or refused: then nothing was generated, and no header sent
        except asyncio.CancelledError:  # the client left before we answered
            job.stopped = True
            raise
        return _JobStream(job, media_type=answers.media_type(endpoint),
                          headers={**headers, "Cache-Control": "no-cache"})

    return handle


async def _finished_unless_gone(request: Request, job: _Job) -> bool:
    """Wait for a whole (unstreamed) answer; False when the client hung up first. The worker is then told to stop
    at the next token, so an answer nobody will receive costs no more time and leaves no row (as a stream does)."""
    if await until_gone(request, job.done):
        return True
    job.stopped = True
    job.ready.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody waits on it any more
    return False


async def until_gone(request: Request, pending: asyncio.Future[Any]) -> bool:
    """Wait for `pending`; False, leaving it running, when the client disconnected first."""
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({pending, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    return pending.done()


async def _disconnected(request: Request) -> None:
    """Returns when the ASGI server says the client disconnected (the body was read already, so the next message
    can only be that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class _Job:
    """One request on the worker, in one hop: render the prompt, then generate and record. The event loop hears
    when the prompt is ready (or why it was refused, before any header is sent) and, when streaming, each piece
    of text; generation does not wait for the loop to send the headers."""

    def __init__(self, served: Served, req: GenRequest, gid: str, loop: asyncio.AbstractEventLoop) -> None:
        self.served, self.req, self.gid, self.loop = served, req, gid, loop
        self.ready: asyncio.Future[None] = loop.create_future()
        self.pieces: asyncio.Queue[str | None] = asyncio.Queue()
        self.stopped = False  # set when the client is gone: the worker stops at the next token
        self.done = loop.run_in_executor(served.executor, self._run)
        self.done.add_done_callback(self._finished)

    def _run(self) -> tuple[Any, str] | None:
        if self.stopped:  # the client left while this request waited its turn
            self.loop.call_soon_threadsafe(_settle, self.ready, None)
            return None
        try:
            engine = _engine(self.served)
            engine.sync()
            version = engine.resolve(self.req.model)
            if version is not None:
                engine.ensure(version)  # an explicit version that cannot be loaded is refused before any header
            if self.served.hints is not None:
                self.served.hints.apply(self.req)
            prep = engine.prepare(self.req)
        except BaseException as exc:
            self.loop.call_soon_threadsafe(_settle, self.ready, exc)
            return None
        finally:
            self.served.note_failures()
        self.loop.call_soon_threadsafe(_settle, self.ready, None)
        on_tokens = self._piece if self.req.stream else None
        out = engine.generate(prep, self.req, version, on_tokens=on_tokens, cancelled=lambda: self.stopped)
        if out is None:
            return None
        _record(self.served, self.req, prep, self.gid, version, out)
        return out, f"{engine.repo_name}@{version or 'base'}"

    def _piece(self, text: str) -> None:
        self.loop.call_soon_threadsafe(self.pieces.put_nowait, text)

    def _finished(self, done: asyncio.Future[Any]) -> None:
        if not self.ready.done():  # never ran: the executor was shut down under it
            self.ready.set_exception(Unavailable("the server is shutting down", fix="retry in a moment"))
        self.pieces.put_nowait(None)


class _JobStream(StreamingResponse):
    """The job's pieces as a stream; however the response ends (done, client gone before or during the first
    byte), the worker is told to stop, so an answer nobody received is not finished or recorded."""

    def __init__(self, job: _Job, **kwargs: Any) -> None:
        super().__init__(_stream(job), **kwargs)
        self.job = job

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.stopped = True


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(None)


def _engine(served: Served) -> Any:
    """Requests queued before a yield still run (the unload waits behind them); new ones were refused at entry."""
    if not served.engine.loaded:
        raise Unavailable(f"the model is not loaded ({served.state})", fix="retry after training finishes")
    return served.engine


def _record(served: Served, req: GenRequest, prep: Any, gid: str, version: str | None, out: Any) -> None:
    engine = served.engine
    generation = served_generation(
        req, gid=gid, prompt=prep.prompt, completion=out.result.completion, model=engine.model_path,
        meta={"finish": out.result.finish, "add_special_tokens": prep.add_special_tokens}, adapter_version=version,
        tokenizer_fingerprint=engine.fingerprint, token_ids=out.token_ids, token_logprobs=out.token_logprobs)
    record_served(served.store, served.config, req, generation)


async def _stream(job: _Job) -> AsyncIterator[str]:
    req, name = job.req, job.req.model or job.served.engine.repo_name
    first = True
    try:
        while True:
            text = await job.pieces.get()
            if text is None:
                break
            yield answers.chunk(req, job.gid, name, text, first=first)
            first = False
        done = job.done.result()
        if done is not None:
            out, _ = done
            yield answers.final_chunk(req, job.gid, name, out.result)
    except Exception as exc:  # headers are gone: end the stream with one error line
        log.exception("stream failed")
        yield (json.dumps(answers.error_body(str(exc), 500)) + "\n") if req.endpoint.startswith("ollama") else \
            f"data: {json.dumps(answers.error_body(str(exc), 500))}\n\n"


# -- models, health and control ----------------------------------------------------------------------------------


async def _models(request: Request, served: Served) -> Response:
    now = int(time.time())
    root = served.engine.model_path  # the base model, as vLLM reports it for its LoRA models
    return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "created": now,
                                                     "owned_by": "redline", "root": root}
                                                    for n in _names(served)]})


async def _tags(request: Request, served: Served) -> Response:
    return JSONResponse({"models": [{"name": n, "model": n, "root": served.engine.model_path}
                                    for n in _names(served)]})


def _names(served: Served) -> list[str]:
    return served.engine.model_names()


async def _control(request: Request, served: Served, action: str) -> Response:
    host = request.client.host if request.client else ""
    if host not in LOOPBACK:
        return error(403, "control endpoints answer loopback clients only")
    if action != "health" and not _token_ok(request.headers.get(TOKEN_HEADER, ""), served.token):
        return error(403, "control endpoints need this server's token (in its serve.json, readable by its user "
                          "only) — call them through redline.serve.control, as the daemon does")
    if action == "reload" and served.state == "serving":
        await served.run(lambda: served.sync(force=True))
    elif action == "yield" and served.state == "serving":
        try:
            body = shapes.parse_body(await read_raw(request, served.max_body) or b"{}")
        except BadRequest:
            body = {}
        served.state, served.reason = YIELDED, " ".join(str(body.get("reason", "")).split())[:200]
        await served.run(served.engine.unload)
    elif action == "resume" and served.state == YIELDED:
        served.state = "loading"
        try:
            await served.run(served.engine.load)
        except Exception:
            served.state = YIELDED
            raise
        served.state, served.reason = "serving", ""
    return JSONResponse(_health(served))


def _token_ok(given: str, token: str) -> bool:
    return bool(token) and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())


def _health(served: Served) -> dict[str, Any]:
    engine = served.engine
    return {"model": engine.model_path, "adapter": engine.current, "state": served.state,
            "reason": served.reason or None, "failed": dict(engine.failed)}


async def _poll(served: Served) -> None:
    """Pick up a promotion or rollback while idle too (requests also check the pointer before they start)."""
    while True:
        await asyncio.sleep(served.poll_s)
        if served.state == "serving":
            try:
                await served.run(served.sync)
            except Exception:
                log.exception("could not load the promoted adapter; still serving %s", served.engine.current)
