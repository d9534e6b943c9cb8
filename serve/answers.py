"""Answers in each endpoint's dialect, as pure functions: what `redline serve` writes back, and how the proxy reads
its upstream's answers and marks them with Redline's id. OpenAI `/v1/completions` and `/v1/chat/completions`
(SSE `data: {...}` then `data: [DONE]`), llama.cpp `/completion` and `/infill` (SSE `data: {...}`, the last with
`"stop": true`, no `[DONE]`) and Ollama `/api/generate` and `/api/chat` (NDJSON, the last line `"done": true`).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from redline.serve.shapes import NDJSON, SSE, BadRequest, Endpoint, GenRequest, Result

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
