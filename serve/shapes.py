"""Request shapes of every endpoint, as pure functions (no torch, no HTTP library).

Each endpoint's JSON body is read into one `GenRequest`, whatever the dialect: OpenAI `/v1/completions` and
`/v1/chat/completions`, llama.cpp `/completion` and `/infill`, Ollama `/api/generate` and `/api/chat`; answers
are written back in the same dialect by `answers.py`. Field names follow the OpenAI API reference, llama.cpp's
tools/server/README.md and Ollama's docs/api.md.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
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
#: deepest nesting a body may have (the real shapes are 4 deep: body → messages → message → content parts)
MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    #: the adapter version the proxy routed this request to on a team's vLLM (None: the upstream's own model)
    routed_version: str | None = None

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
    """The body as a JSON object, refusing what Python's `json` accepts but nothing downstream can use: `NaN`
    and `Infinity` (and numbers too large for a float), lone UTF-16 surrogates (`"\\ud800"`: no tokenizer takes
    them, and the queue cannot store them) and nesting deeper than MAX_DEPTH (or than the parser's recursion)."""
    try:
        body = json.loads(raw, parse_constant=_not_a_number, parse_float=_finite)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest(f"the body is nested too deeply (more than {MAX_DEPTH} levels): send the documented "
                         "shape") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    _check_values(body)
    return body


def _not_a_number(name: str) -> float:
    raise BadRequest(f"`{name}` is not a number JSON allows: send a finite number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"the number {text[:20]} is too large: send a finite number")
    return value


def _check_values(body: dict[str, Any]) -> None:
    """Walk the parsed body without recursion: depth, and lone surrogates in every key and string."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(f"the body is nested too deeply (more than {MAX_DEPTH} levels): send the documented "
                             "shape")
        if isinstance(value, dict):
            for k, v in value.items():
                if _SURROGATE.search(k):
                    raise BadRequest(f"the key {k.encode('utf-8', 'backslashreplace').decode()[:40]!r} holds a lone "
                                     "UTF-16 surrogate: send valid Unicode")
                stack.append((v, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str) and (m := _SURROGATE.search(value)):
            raise BadRequest(f"a string in the body holds a lone UTF-16 surrogate (\\u{ord(m.group()):04x} at "
                             f"character {m.start()}): send valid Unicode")


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
