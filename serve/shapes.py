"""Request and response shapes of every endpoint, as pure functions (no torch, no HTTP library).

Each endpoint's JSON body is read into one `GenRequest`; results are written back in that endpoint's dialect:
OpenAI `/v1/completions` and `/v1/chat/completions` (SSE `data: {...}` then `data: [DONE]`), llama.cpp
`/completion` and `/infill` (SSE `data: {...}`, the last with `"stop": true`, no `[DONE]`) and Ollama
`/api/generate` and `/api/chat` (NDJSON, streamed unless `"stream": false`, the last line `"done": true`).
The proxy reads upstream answers with the same module (`delta_text`) and marks them with Redline's id
(`inject_id`). Field names follow the OpenAI API reference, llama.cpp's tools/server/README.md and Ollama's
docs/api.md.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from redline.records import Message, Prompt

Endpoint = Literal["openai_completions", "openai_chat", "llama_completion", "llama_infill", "ollama_generate",
                   "ollama_chat"]
ENDPOINTS: dict[str, Endpoint] = {
    "/v1/completions": "openai_completions",
    "/v1/chat/completions": "openai_chat",
    "/completion": "llama_completion",
    "/completions": "llama_completion",
    "/infill": "llama_infill",
    "/api/generate": "ollama_generate",
    "/api/chat": "ollama_chat",
}
#: tokens generated when a request does not say (llama.cpp and Ollama default to "until the context is full")
DEFAULT_MAX_TOKENS = 256
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"


class BadRequest(ValueError):
    """The body cannot be served; `str()` is one line naming the field and the fix (HTTP 400)."""


@dataclass
class GenRequest:
    """One generation request, whatever dialect it came in."""

    endpoint: Endpoint
    format: Literal["raw", "fim", "chat"]
    text: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    messages: list[dict[str, str]] | None = None
    model: str | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def sampling(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "stop": list(self.stop)}

    def prompt(self) -> Prompt:
        """The request as the record schema's `Prompt` (what the trainer re-renders)."""
        if self.format == "chat":
            return Prompt(messages=[Message(m["role"], m["content"]) for m in self.messages or []])
        if self.format == "fim":
            return Prompt(prefix=self.prefix or "", suffix=self.suffix or "")
        return Prompt(text=self.text or "")


@dataclass
class Result:
    """What the model wrote for one request."""

    completion: str
    finish: Literal["stop", "length", "word"]
    prompt_tokens: int
    completion_tokens: int
    stopping_word: str = ""


# -- reading requests --------------------------------------------------------------------------------------------


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def parse_request(endpoint: Endpoint, body: dict[str, Any]) -> GenRequest:
    """The normalised request for `endpoint`; raises BadRequest naming the field."""
    req = _READERS[endpoint](body)
    req.endpoint = endpoint
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("`model` must be a string")
    req.model = model or None
    path = body.get("path") or body.get("filename")
    if path is not None and not isinstance(path, str):
        raise BadRequest("`path` must be a string (the file the completion is for, relative to the repo)")
    req.path = path or None
    if req.max_tokens < 1:
        raise BadRequest("the maximum number of tokens must be at least 1")
    if req.temperature < 0:
        raise BadRequest("`temperature` must be ≥ 0")
    if not 0 < req.top_p <= 1:
        raise BadRequest("`top_p` must be in (0, 1]")
    return req


def _openai_completions(body: dict[str, Any]) -> GenRequest:
    prompt = body.get("prompt", "")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest("`prompt` must be a string (token arrays and batches are not supported)")
    if _int(body, "n", 1) != 1:
        raise BadRequest("`n` must be 1")
    suffix = _str_or_none(body, "suffix")
    req = GenRequest("openai_completions", "fim" if suffix is not None else "raw",
                     text=None if suffix is not None else prompt, prefix=prompt if suffix is not None else None,
                     suffix=suffix, max_tokens=_int(body, "max_tokens", 16), temperature=_num(body, "temperature", 1.0),
                     top_p=_num(body, "top_p", 1.0), stop=_stop(body.get("stop")), stream=_bool(body, "stream", False))
    return req


def _openai_chat(body: dict[str, Any]) -> GenRequest:
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    return GenRequest("openai_chat", "chat", messages=_messages(body.get("messages")),
                      max_tokens=_int({"m": limit}, "m", DEFAULT_MAX_TOKENS),
                      temperature=_num(body, "temperature", 1.0), top_p=_num(body, "top_p", 1.0),
                      stop=_stop(body.get("stop")), stream=_bool(body, "stream", False))


def _llama(body: dict[str, Any], *, infill: bool) -> GenRequest:
    common: dict[str, Any] = {
        "max_tokens": _n_predict(body.get("n_predict")), "temperature": _num(body, "temperature", 0.8),
        "top_p": _num(body, "top_p", 0.95), "stop": _stop(body.get("stop")), "stream": _bool(body, "stream", False)}
    if not infill:
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str):
            raise BadRequest("`prompt` must be a string (token arrays are not supported)")
        return GenRequest("llama_completion", "raw", text=prompt, **common)
    prefix = _str_or_none(body, "input_prefix") or ""
    suffix = _str_or_none(body, "input_suffix") or ""
    # llama.vim sends the cursor line's start as `prompt` (after FIM_MID): it is the end of the prefix
    cursor = _str_or_none(body, "prompt") or ""
    extra = body.get("input_extra") or []
    if not isinstance(extra, list) or not all(isinstance(c, dict) and isinstance(c.get("text", ""), str)
                                              for c in extra):
        raise BadRequest("`input_extra` must be a list of {\"filename\": string, \"text\": string}")
    # no repo-level FIM tokens here: like llama.cpp without FIM_REP/FIM_SEP, the extra context leads the prefix
    context = "".join(c.get("text", "") for c in extra)
    files = [c["filename"] for c in extra if isinstance(c.get("filename"), str)]
    req = GenRequest("llama_infill", "fim", prefix=context + prefix + cursor, suffix=suffix, **common)
    if files:
        req.meta["extra_files"] = files
    return req


def _ollama(body: dict[str, Any], *, chat: bool) -> GenRequest:
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest("`options` must be an object")
    common: dict[str, Any] = {"max_tokens": _n_predict(options.get("num_predict")),
              "temperature": _num(options, "temperature", 0.8), "top_p": _num(options, "top_p", 0.9),
              "stop": _stop(options.get("stop")), "stream": _bool(body, "stream", True)}
    if chat:
        return GenRequest("ollama_chat", "chat", messages=_messages(body.get("messages")), **common)
    prompt = _str_or_none(body, "prompt") or ""
    suffix = _str_or_none(body, "suffix")
    if suffix is not None:
        return GenRequest("ollama_generate", "fim", prefix=prompt, suffix=suffix, **common)
    return GenRequest("ollama_generate", "raw", text=prompt, **common)


_READERS = {
    "openai_completions": _openai_completions,
    "openai_chat": _openai_chat,
    "llama_completion": lambda b: _llama(b, infill=False),
    "llama_infill": lambda b: _llama(b, infill=True),
    "ollama_generate": lambda b: _ollama(b, chat=False),
    "ollama_chat": lambda b: _ollama(b, chat=True),
}


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise BadRequest("`messages` must be a non-empty list of {\"role\", \"content\"}")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"`messages[{i}]` needs a string `role`")
        content = m.get("content") or ""
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            raise BadRequest(f"`messages[{i}].content` must be a string or a list of text parts")
        out.append({"role": m["role"], "content": content})
    return out


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return [s for s in value if s]
    raise BadRequest("`stop` must be a string or a list of strings")


def _n_predict(value: Any) -> int:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value < 0):
        return DEFAULT_MAX_TOKENS  # -1 ("until the context is full") is capped; the context caps it again
    return _int({"n": value}, "n", DEFAULT_MAX_TOKENS)


def _int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"`{key}` must be an integer")
    return value


def _num(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"`{key}` must be a number")
    return float(value)


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"`{key}` must be true or false")
    return value


def _str_or_none(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"`{key}` must be a string")
    return value


# -- writing responses -------------------------------------------------------------------------------------------


def media_type(endpoint: Endpoint) -> str:
    return NDJSON if endpoint.startswith("ollama") else SSE


def response(req: GenRequest, gid: str, model: str, result: Result) -> dict[str, Any]:
    """The non-streamed answer."""
    e = req.endpoint
    if e.startswith("openai"):
        usage = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                 "total_tokens": result.prompt_tokens + result.completion_tokens}
        choice: dict[str, Any] = {"index": 0, "finish_reason": _openai_finish(result)}
        if e == "openai_chat":
            choice["message"] = {"role": "assistant", "content": result.completion}
            obj = "chat.completion"
        else:
            choice.update(text=result.completion, logprobs=None)
            obj = "text_completion"
        return {"id": gid, "object": obj, "created": int(time.time()), "model": model, "choices": [choice],
                "usage": usage}
    if e.startswith("llama"):
        return {**_llama_final(gid, model, result), "content": result.completion}
    return {**_ollama_chunk(req, model, result.completion), **_ollama_final(gid, result)}


def chunk(req: GenRequest, gid: str, model: str, delta: str, *, first: bool = False) -> str:
    """One streamed piece carrying `delta`, framed for the wire (SSE event or NDJSON line)."""
    e = req.endpoint
    if e == "openai_chat":
        d = {"role": "assistant", "content": delta} if first else {"content": delta}
        return _sse({"id": gid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                     "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
    if e == "openai_completions":
        return _sse({"id": gid, "object": "text_completion", "created": int(time.time()), "model": model,
                     "choices": [{"index": 0, "text": delta, "logprobs": None, "finish_reason": None}]})
    if e.startswith("llama"):
        return _sse({"id": gid, "content": delta, "stop": False})
    return _ndjson(_ollama_chunk(req, model, delta))


def final_chunk(req: GenRequest, gid: str, model: str, result: Result) -> str:
    """The closing piece(s): finish reason and counts, and `[DONE]` for OpenAI."""
    e = req.endpoint
    if e.startswith("openai"):
        choice: dict[str, Any] = {"index": 0, "finish_reason": _openai_finish(result)}
        if e == "openai_chat":
            choice["delta"] = {}
            obj = "chat.completion.chunk"
        else:
            choice.update(text="", logprobs=None)
            obj = "text_completion"
        return _sse({"id": gid, "object": obj, "created": int(time.time()), "model": model,
                     "choices": [choice]}) + "data: [DONE]\n\n"
    if e.startswith("llama"):
        return _sse({**_llama_final(gid, model, result), "content": ""})
    return _ndjson({**_ollama_chunk(req, model, ""), **_ollama_final(gid, result)})


def error_body(message: str, status: int) -> dict[str, Any]:
    """One-line JSON error in OpenAI's shape (llama.cpp uses the same; Ollama clients read `error` too)."""
    return {"error": {"message": " ".join(message.split()), "code": status}}


def _openai_finish(result: Result) -> str:
    return "length" if result.finish == "length" else "stop"


def _llama_final(gid: str, model: str, result: Result) -> dict[str, Any]:
    stop_type = {"stop": "eos", "length": "limit", "word": "word"}[result.finish]
    return {"id": gid, "stop": True, "model": model, "stop_type": stop_type, "stopping_word": result.stopping_word,
            "tokens_predicted": result.completion_tokens, "tokens_evaluated": result.prompt_tokens}


def _ollama_chunk(req: GenRequest, model: str, text: str) -> dict[str, Any]:
    created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if req.endpoint == "ollama_chat":
        return {"model": model, "created_at": created, "message": {"role": "assistant", "content": text},
                "done": False}
    return {"model": model, "created_at": created, "response": text, "done": False}


def _ollama_final(gid: str, result: Result) -> dict[str, Any]:
    return {"id": gid, "done": True, "done_reason": "length" if result.finish == "length" else "stop",
            "prompt_eval_count": result.prompt_tokens, "eval_count": result.completion_tokens}


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def _ndjson(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"


# -- reading upstream answers (the proxy) ------------------------------------------------------------------------


def split_events(endpoint: Endpoint, buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete events (SSE blocks ending in a blank line, or NDJSON lines, each with its terminator) and the
    unfinished rest."""
    sep = b"\n" if endpoint.startswith("ollama") else b"\n\n"
    events: list[bytes] = []
    while True:
        i = buffer.find(sep)
        if i < 0:
            return events, buffer
        events.append(buffer[: i + len(sep)])
        buffer = buffer[i + len(sep):]


def event_json(event: bytes) -> dict[str, Any] | None:
    """The JSON object an SSE event or NDJSON line carries; None for `[DONE]`, comments and blank lines."""
    text = event.decode("utf-8", "replace").strip()
    if text.startswith("data:"):
        text = text[5:].strip()
    if not text or text == "[DONE]" or text.startswith(":"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        raise BadRequest(f"the upstream sent something that is not JSON: {text[:80]!r}") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"the upstream sent JSON that is not an object: {text[:80]!r}")
    return obj


def delta_text(endpoint: Endpoint, obj: dict[str, Any]) -> str:
    """The text a streamed piece (or a whole non-streamed answer) adds to the completion."""
    if "error" in obj and not any(k in obj for k in ("choices", "content", "response", "message")):
        raise BadRequest(f"the upstream answered an error: {json.dumps(obj['error'])[:200]}")
    if endpoint.startswith("openai"):
        choices = obj.get("choices") or []
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return ""
        c = choices[0]
        if endpoint == "openai_chat":
            part = c.get("delta") if isinstance(c.get("delta"), dict) else c.get("message") or {}
            return str(part.get("content") or "") if isinstance(part, dict) else ""
        return str(c.get("text") or "")
    if endpoint.startswith("llama"):
        return str(obj.get("content") or "")
    if endpoint == "ollama_chat":
        msg = obj.get("message") or {}
        return str(msg.get("content") or "") if isinstance(msg, dict) else ""
    return str(obj.get("response") or "")


def is_final(endpoint: Endpoint, event: bytes, obj: dict[str, Any] | None) -> bool:
    """The upstream's closing event: `[DONE]` (OpenAI), `"stop": true` (llama.cpp), `"done": true` (Ollama)."""
    if endpoint.startswith("openai"):
        return obj is None and event.strip().removeprefix(b"data:").strip() == b"[DONE]"
    if obj is None:
        return False
    return obj.get("stop") is True if endpoint.startswith("llama") else obj.get("done") is True


_ID_VALUE = re.compile(rb'("id"\s*:\s*)"(?:[^"\\]|\\.)*"')


def inject_id(event: bytes, gid: str) -> bytes:
    """`event` with its top-level `id` set to Redline's generation id; every other byte is left as it was
    (an added id follows the event's own spacing)."""
    try:
        obj = event_json(event)
    except BadRequest:
        return event
    if obj is None:
        return event
    value = json.dumps(gid).encode()
    if isinstance(obj.get("id"), str):
        return _ID_VALUE.sub(lambda m: m.group(1) + value, event, count=1)
    compact = b'": ' not in event and b'", ' not in event
    i = event.find(b"{")
    sep = (b":", b",") if compact else (b": ", b", ")
    return event[: i + 1] + b'"id"' + sep[0] + value + (sep[1] if len(obj) else b"") + event[i + 1:]
