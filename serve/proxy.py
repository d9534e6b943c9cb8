"""`redline proxy`: the same endpoints in front of a model server the user already runs, recording each answer.

Bodies go upstream unchanged; answers come back as they arrive, each event with its `id` set to Redline's
generation id (`answers.inject_id`; every other byte as the upstream sent it). The row is written when the
upstream's closing event arrives and before it is passed on, so the id the client reads names a complete row;
a stream that breaks off or turns to garbage is not recorded, and neither is a whole answer whose client hung up
before it came (the upstream request is cancelled, which stops llama.cpp, vLLM and Ollama generating). The
upstream's model must be the adapter's base model (same name, ignoring case, punctuation and quantisation
suffixes), checked at start and per request.

The same guard as `redline serve` runs first (`guard.py`: Host, Origin, Content-Type), so no web page reaches the
upstream through the proxy; a request from an origin the user allowed is forwarded with its `Origin`, so an upstream
that checks origins itself (Ollama's `OLLAMA_ORIGINS`) still decides. Credentials in `--upstream`
(`http://user:pw@host`) become an `Authorization: Basic` header on every upstream call and appear nowhere else (not
in the start-up line, errors or records).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from redline.config import Config
from redline.errors import ConfigError, QueueBusy, RedlineError, UpstreamError
from redline.records import new_id
from redline.serve import answers, shapes
from redline.serve.app import DEFAULT_MAX_BODY, error, read_raw, status_for, until_gone
from redline.serve.guard import Policy
from redline.serve.hinting import Hints
from redline.serve.recording import record_served, served_generation
from redline.serve.shapes import BadRequest, GenRequest

log = logging.getLogger("redline.serve")
TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=60.0, pool=60.0)
_TIMEOUT = {"timeout": TIMEOUT.as_dict()}
_FORWARD_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """`http://user:pw@host:8080` → (`http://host:8080`, {"Authorization": "Basic …"}); other URLs unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return urlunsplit(parts._replace(netloc=hostport)), {"Authorization": f"Basic {token}"}


def model_key(name: str) -> str:
    """`Qwen/Qwen2.5-Coder-1.5B`, `qwen2.5-coder:1.5b`, `/models/qwen2.5-coder-1.5b-q4_k_m.gguf` → comparable."""
    leaf = PurePath(name.replace(":", "-")).name.lower()
    leaf = re.sub(r"\.(gguf|bin|safetensors)$", "", leaf)
    return re.sub(r"[^a-z0-9]", "", leaf)


def same_model(upstream: str, base: str) -> bool:
    u, b = model_key(upstream), model_key(base)
    return bool(u and b) and (u.startswith(b) or b.startswith(u))


@dataclass
class Proxy:
    config: Config
    store: Any
    upstream: str
    upstream_models: dict[str, str]
    base_model: str | None
    max_body: int = DEFAULT_MAX_BODY
    tokenizer: Any = None
    #: the upstream is vLLM: OpenAI requests are routed to the promoted adapter, loaded under a versioned name
    vllm: bool = False
    #: the connection pool every upstream call goes through; generation requests call it directly (a plain
    #: forward needs none of the client's cookie, redirect or auth handling, which cost on every request)
    transport: httpx.AsyncBaseTransport = field(default_factory=httpx.AsyncHTTPTransport)
    #: the queue again, waiting at most a few ms for its lock: rows written on the event loop (see `_write`)
    quick_store: Any = None
    #: the same pool behind a client, for the few other calls (model lists)
    client: httpx.AsyncClient = field(init=False)
    _loaded: set[str] = field(default_factory=set)
    _urls: dict[str, httpx.URL] = field(default_factory=dict)
    #: `serve_hints`: the repository's recurring red lines, put into every prompt forwarded (None = off)
    hints: Hints | None = None
    #: sent on every upstream call: the credentials `--upstream` carried (kept out of `upstream` itself)
    upstream_headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client = httpx.AsyncClient(transport=self.transport, timeout=TIMEOUT, headers=self.upstream_headers)
        if self.hints is None and self.config.serve_hints:
            self.hints = Hints(self.store, self.config.serve_hints)

    @property
    def upstream_model(self) -> str | None:
        return next(iter(self.upstream_models.values()), None)

    @classmethod
    def start(cls, config: Config, store: Any, upstream: str, *, max_body: int = DEFAULT_MAX_BODY) -> Proxy:
        """Ask the upstream which model it serves and refuse one that is not the adapter's base model."""
        upstream, auth = split_credentials(upstream.rstrip("/"))
        models = upstream_models(upstream, auth)
        base = base_model(config)
        if base is not None and not any(same_model(m, base) for m in models.values()):
            raise ConfigError(f"the upstream serves {', '.join(models.values()) or 'no model'} but this repo's adapter "
                              f"is for {base}", fix="point --upstream at a server running that base model")
        return cls(config, store, upstream, models, base, max_body, _local_tokenizer(config),
                   is_vllm(upstream, auth), quick_store=open_quick_store(config), upstream_headers=auth)

    def vllm_adapter(self, requested: str | None = None) -> tuple[str, str] | None:
        """(version, served name) of the adapter a request goes to: the version it names (`<repo>@vNNNN`), else
        the promoted one; loaded into the vLLM upstream on first use.

        Each version goes in under its own name (`<repo>@vNNNN`) and is never reloaded under a name vLLM already
        serves: vLLM keys its prefix cache by adapter name, so new weights under an old name could be answered
        from stale KV. A promotion or rollback is picked up at the next request. With a team `adapter_store`
        nothing is loaded: the team's vLLM reads the store through its filesystem resolver, which loads a version
        the first time a request names it (docs/team.md)."""
        from redline.adapter_store import registry_for
        from redline.adapters import served_name
        from redline.export.vllm import vllm_load

        registry = registry_for(self.config)
        version = registry.current()
        repo = served_name(self.config.repo_id, "v0").rpartition("@")[0]
        if requested and requested.rpartition("@")[0] == repo and requested.rpartition("@")[2] in registry.versions():
            version = requested.rpartition("@")[2]
        if version is None:
            return None
        name = served_name(self.config.repo_id, version)
        if name not in self._loaded and self.config.adapter_store is None:
            vllm_load(self.upstream, name, str(registry.path(version)))
        self._loaded.add(name)
        return version, name

    # -- one request -------------------------------------------------------------------------------------------

    async def handle(self, request: Request, endpoint: shapes.Endpoint) -> Response:
        raw = await read_raw(request, self.max_body)
        req = shapes.parse_request(endpoint, shapes.parse_body(raw))
        root = self.upstream_models.get(req.model or "")
        if root is not None and self.base_model and not same_model(root, self.base_model):
            raise BadRequest(f"model {req.model!r} is not this repo's base model {self.base_model}: "
                             "ask for the base model")
        if self.hints is not None:
            hinted = await asyncio.to_thread(self.hints.apply, req, json.loads(raw))
            raw = json.dumps(hinted).encode() if req.meta.get("hints") else raw
        if self.vllm and req.endpoint.startswith("openai"):
            routed = await asyncio.to_thread(self.vllm_adapter, req.model)
            if routed is not None:
                body = json.loads(raw)
                body["model"] = routed[1]
                raw = json.dumps(body).encode()
                req.routed_version = routed[0]
        gid = new_id()
        path = request.url.path
        url = self._urls.get(path) or self._urls.setdefault(path, httpx.URL(self.upstream + path))
        headers = self._headers(request.headers.get("origin"))
        forward = httpx.Request("POST", url, content=raw, headers=headers, extensions=_TIMEOUT)
        if not req.stream:  # the whole answer, unless the client leaves first: then the upstream call is cancelled
            exchange = asyncio.ensure_future(self._whole(forward))
            if not await until_gone(request, exchange):
                exchange.cancel()
                return error(499, "the client closed the connection before the answer was ready")
            status, content, media = exchange.result()
            if status != 200:  # the upstream's own error, passed on as it is
                return Response(content, status, media_type=media)
            try:
                obj = answers.event_json(content)
                text = answers.delta_text(endpoint, obj or {})
            except BadRequest as exc:
                raise UpstreamError(str(exc)) from None
            await self._write(req, gid, text)
            return Response(answers.inject_id(content, gid), 200, media_type="application/json",
                            headers={"X-Redline-Generation": gid})
        upstream = await self._send(forward)
        if upstream.status_code != 200:
            try:
                content = await upstream.aread()
            finally:
                await upstream.aclose()
            return Response(content, upstream.status_code, media_type=upstream.headers.get("content-type"))
        return StreamingResponse(self._relay(req, gid, upstream), status_code=200,
                                 media_type=upstream.headers.get("content-type", answers.media_type(endpoint)),
                                 headers={"X-Redline-Generation": gid, "Cache-Control": "no-cache"})

    def _headers(self, origin: str | None) -> dict[str, str]:
        """What goes upstream: fixed headers, the upstream's credentials, and the Origin of a page the user allowed
        (the guard refused every other), so the page's origin is the upstream's to judge as well."""
        if not self.upstream_headers and origin is None:
            return _FORWARD_HEADERS
        return {**_FORWARD_HEADERS, **self.upstream_headers, **({"Origin": origin} if origin else {})}

    async def _send(self, forward: httpx.Request) -> httpx.Response:
        try:
            return await self.transport.handle_async_request(forward)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the upstream {self.upstream} is not answering ({type(exc).__name__}): "
                                "start it or fix --upstream") from None

    async def _whole(self, forward: httpx.Request) -> tuple[int, bytes, str | None]:
        upstream = await self._send(forward)
        try:
            return upstream.status_code, await upstream.aread(), upstream.headers.get("content-type")
        finally:
            await upstream.aclose()

    async def _relay(self, req: GenRequest, gid: str, upstream: httpx.Response) -> AsyncIterator[bytes]:
        buffer, parts, recorded = b"", [], False
        try:
            async for data in upstream.aiter_bytes():
                events, buffer = answers.split_events(req.endpoint, buffer + data)
                for event in events:
                    obj = answers.event_json(event)
                    if obj is not None:
                        parts.append(answers.delta_text(req.endpoint, obj))
                    if not recorded and answers.is_final(req.endpoint, event, obj):
                        await self._write(req, gid, "".join(parts))
                        recorded = True
                    yield answers.inject_id(event, gid)
            if buffer.strip():  # an unterminated tail: pass it on only if it is a readable event
                answers.event_json(buffer)
                yield answers.inject_id(buffer, gid)
        except (BadRequest, httpx.HTTPError) as exc:  # headers are gone: close with one error event
            log.warning("upstream stream failed: %s", exc)
            body = answers.error_body(f"the upstream stream broke off: {exc}", 502)
            line = json.dumps(body)
            yield (line + "\n" if req.endpoint.startswith("ollama") else f"data: {line}\n\n").encode()
        finally:
            await upstream.aclose()

    async def _write(self, req: GenRequest, gid: str, completion: str) -> None:
        """Record the answer before it is passed on: on the event loop when the queue's lock is free within a few
        ms (on a small machine the hop to a thread and back cost more than the write), else in a thread that
        waits for it, so a long write elsewhere (a CI ingest) never stalls other streams. Chat requests also
        look up their history, so they always take the thread."""
        if self.quick_store is not None and req.format != "chat":
            try:
                self.record(req, gid, completion, store=self.quick_store)
                return
            except QueueBusy:
                pass
        await asyncio.to_thread(self.record, req, gid, completion)

    def record(self, req: GenRequest, gid: str, completion: str, *, store: Any = None) -> None:
        """Queue the answer's generation; given the quick `store`, a busy queue raises `QueueBusy` (the caller
        tries again on a thread) where the main store's busy queue spools it."""
        quick = store is not None
        store = self.store if store is None else store
        meta: dict[str, Any] = {"upstream": self.upstream, "proxy": True}
        prompt = req.prompt()
        if req.format != "raw":
            if self.tokenizer is not None:
                from redline.prompts import render_student

                prompt.text = render_student(self.tokenizer, prompt)[0]
            else:  # the trainer re-renders it with the base model's tokenizer
                meta["prompt_unrendered"] = True
        generation = served_generation(req, gid=gid, prompt=prompt, completion=completion,
                                       model=self.base_model or req.model or self.upstream_model or "upstream",
                                       meta=meta, adapter_version=req.routed_version)
        record_served(store, self.config, req, generation, spool="never" if quick else "if busy")


def upstream_models(upstream: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    """The upstream's models from `/v1/models` (OpenAI, vLLM, llama.cpp, LM Studio) or `/api/tags` (Ollama):
    name → the base model it runs (vLLM and `redline serve` say so in `root`; else the name itself)."""
    errors = []
    for path, key, name in (("/v1/models", "data", "id"), ("/api/tags", "models", "name")):
        try:
            r = httpx.get(upstream + path, timeout=10.0, headers=headers)
            if r.status_code == 200:
                listed = r.json().get(key) or []
                return {str(m[name]): str(m.get("root") or m[name]) for m in listed
                        if isinstance(m, dict) and m.get(name)}
            errors.append(f"{path}: HTTP {r.status_code}")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            errors.append(f"{path}: {type(exc).__name__}")
    raise ConfigError(f"cannot read the upstream's models at {upstream} ({'; '.join(errors)})",
                      fix="start the model server first, or fix --upstream")


def is_vllm(upstream: str, headers: dict[str, str] | None = None) -> bool:
    """vLLM's OpenAI server marks its models `owned_by: "vllm"`."""
    try:
        listed = httpx.get(upstream + "/v1/models", timeout=10.0, headers=headers).json().get("data") or []
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
    return any(isinstance(m, dict) and m.get("owned_by") == "vllm" for m in listed)


def base_model(config: Config) -> str | None:
    """The current adapter's base model id, else the configured model; None when neither is known."""
    from redline.adapter_store import registry_for

    registry = registry_for(config)
    version = registry.current()
    if version is not None:
        found = (registry.meta(version).get("base_model") or {}).get("id")
        if found:
            return str(found)
    return config.model


def open_quick_store(config: Config) -> Any:
    """The queue with a 5 ms lock wait, or None when it cannot be opened now (every row then takes a thread). A
    team queue is a network hop away: its rows always take a thread, never the event loop."""
    from redline.queue import open_store

    if config.queue_url:
        return None
    try:
        return open_store(config, busy_timeout_s=0.005)
    except RedlineError:
        return None


def _local_tokenizer(config: Config) -> Any:
    if not config.model:
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(config.model, local_files_only=True)
    except Exception:  # no transformers, or the model is not on this machine: record the prompt unrendered
        return None


def build_proxy_app(proxy: Proxy, *, policy: Policy | None = None) -> Starlette:
    def route(endpoint: shapes.Endpoint) -> Any:
        async def handle(request: Request) -> Response:
            return await proxy.handle(request, endpoint)

        return handle

    async def models(request: Request) -> Response:
        try:
            r = await proxy.client.get(proxy.upstream + request.url.path)
        except httpx.HTTPError as exc:
            return error(502, f"the upstream {proxy.upstream} is not answering ({type(exc).__name__})")
        return Response(r.content, r.status_code, media_type=r.headers.get("content-type"))

    async def failed(request: Request, exc: Exception) -> Response:
        status = status_for(exc)
        if status == 500:
            log.exception("proxy request failed")
        return error(status, str(exc) or type(exc).__name__)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await proxy.client.aclose()

    routes = [Route(p, route(e), methods=["POST"]) for p, e in shapes.ENDPOINTS.items()]
    routes += [Route("/v1/models", models, methods=["GET"]), Route("/api/tags", models, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan, middleware=(policy or Policy()).middleware(),
                     exception_handlers={BadRequest: failed, RedlineError: failed, Exception: failed})


__all__ = ["Proxy", "build_proxy_app", "same_model", "upstream_models"]
