"""The record schema: generations (what the model saw and wrote) and feedback (what was said about it).

Records are plain dataclasses that serialise to JSON-safe dicts. `from_dict` validates every field and raises
`RecordError` naming the field, so an import or a client message with a wrong type never reaches the queue.
The schema is documented in docs/records.md; bump SCHEMA_VERSION when a field changes meaning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import types
import typing
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from redline.errors import RecordError

SCHEMA_VERSION = 1

PromptFormat = Literal["chat", "fim", "raw"]
Origin = Literal["editor", "agent", "server", "import", "lsp", "bench"]
FeedbackKind = Literal["diagnostic", "test_failure", "review", "edit", "accept", "reject"]
Severity = Literal["error", "warning", "info", "hint"]
Trust = Literal["high", "normal", "low"]

SEVERITY_RANK: dict[str, int] = {"error": 0, "warning": 1, "info": 2, "hint": 3}


def new_id() -> str:
    """A UUIDv7 (RFC 9562) as 32 hex chars: unique across processes and sortable by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value).hex


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(slots=True)
class Range:
    """A span in a file as in LSP: 0-based lines and characters, the end position exclusive.

    Whole lines s..e inclusive are `Range(s, e + 1)` (end at column 0 of the next line).
    """

    start_line: int
    end_line: int
    start_col: int = 0
    end_col: int = 0

    @property
    def last_line(self) -> int:
        """The last line holding any of the span's characters."""
        if self.end_col == 0 and self.end_line > self.start_line:
            return self.end_line - 1
        return self.end_line

    def overlaps_lines(self, start_line: int, end_line: int) -> bool:
        """True when the inclusive line interval [start_line, end_line] touches this range."""
        return start_line <= self.last_line and end_line >= self.start_line


@dataclass(slots=True)
class Message:
    role: str
    content: str


@dataclass(slots=True)
class Prompt:
    """Exactly what the model saw. `chat`: messages (and `text` if the rendered string is known);
    `fim`: prefix and suffix; `raw`: text."""

    messages: list[Message] | None = None
    text: str | None = None
    prefix: str | None = None
    suffix: str | None = None

    def canonical(self) -> str:
        """A stable string for hashing (the held-out split and duplicate detection)."""
        return json.dumps(_to_jsonable(self), sort_keys=True, ensure_ascii=False)


@dataclass(slots=True)
class ModelRef:
    id: str
    revision: str | None = None


@dataclass(slots=True)
class Insertion:
    """Where the completion landed in the user's tree, when known."""

    path: str
    range: Range | None = None
    content_hash: str | None = None
    commit: str | None = None


@dataclass(slots=True)
class Generation:
    prompt_format: PromptFormat
    prompt: Prompt
    completion: str
    model: ModelRef
    repo_id: str = ""
    id: str = field(default_factory=new_id)
    created_at: str = field(default_factory=utc_now)
    adapter_version: str | None = None
    tokenizer_fingerprint: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    token_ids: list[int] | None = None
    token_logprobs: list[float] | None = None
    origin: Origin = "editor"
    insertion: Insertion | None = None
    split: Literal["train", "heldout"] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.prompt_format == "chat" and not self.prompt.messages and self.prompt.text is None:
            raise RecordError("a chat generation needs prompt.messages or prompt.text", fix="send the messages")
        if self.prompt_format == "fim" and self.prompt.prefix is None:
            raise RecordError("a fim generation needs prompt.prefix", fix="send prefix and suffix")
        if self.prompt_format == "raw" and self.prompt.text is None:
            raise RecordError("a raw generation needs prompt.text", fix="send the rendered prompt text")
        if self.token_logprobs is not None and self.token_ids is not None:
            if len(self.token_logprobs) != len(self.token_ids):
                raise RecordError("token_logprobs and token_ids differ in length", fix="send one log-prob per token")

    def assign_split(self, heldout_fraction: float) -> None:
        """Fix the held-out split once, from a stable hash of repo and prompt, so a task never moves."""
        if self.split is None:
            self.split = heldout_split(self.repo_id, self.prompt, heldout_fraction)

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(self)

    @classmethod
    def from_dict(cls, data: Any) -> Generation:
        return _from_jsonable(cls, data, "generation")


@dataclass(slots=True)
class Feedback:
    kind: FeedbackKind
    source: str
    message: str = ""
    generation_id: str | None = None
    id: str = field(default_factory=new_id)
    created_at: str = field(default_factory=utc_now)
    detail: str | None = None
    correction: str | None = None
    path: str | None = None
    range: Range | None = None
    severity: Severity = "error"
    rule: str | None = None
    commit: str | None = None
    trust: Trust = "normal"
    fingerprint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.kind == "edit" and self.correction is None:
            raise RecordError("edit feedback needs `correction` (the human's final text)", fix="send the text")
        if not self.fingerprint:
            self.fingerprint = self.compute_fingerprint()

    def compute_fingerprint(self) -> str:
        """Same finding on the same generation (or the same place, when unattributed) → same fingerprint.

        Line numbers are left out for attributed feedback so a diagnostic that moved with its code is not
        recorded twice across saves.
        """
        where: list[Any] = [self.generation_id]
        if self.generation_id is None:
            where = [self.path, self.range.start_line if self.range else None]
        parts = [self.kind, self.source, self.rule, " ".join(self.message.split()), self.correction, *where]
        return sha256_text(json.dumps(parts, ensure_ascii=False))[:32]

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(self)

    @classmethod
    def from_dict(cls, data: Any) -> Feedback:
        return _from_jsonable(cls, data, "feedback")


@dataclass(slots=True)
class Span:
    """Where a generation's text stands now in a file (kept current by the language server)."""

    generation_id: str
    path: str
    range: Range
    text: str
    state: Literal["live", "edited", "deleted"] = "live"
    commit: str | None = None
    updated_at: str = field(default_factory=utc_now)

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(self)

    @classmethod
    def from_dict(cls, data: Any) -> Span:
        return _from_jsonable(cls, data, "span")


def heldout_split(repo_id: str, prompt: Prompt, fraction: float) -> Literal["train", "heldout"]:
    digest = hashlib.sha256(f"{repo_id}\0{prompt.canonical()}".encode("utf-8", "surrogatepass")).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") / 2**64 < fraction else "train"


# --- (de)serialisation -----------------------------------------------------------------------------------------


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    names = _FIELD_NAMES.get(cls)
    if names is None and dataclasses.is_dataclass(cls):
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _to_jsonable(obj: Any) -> Any:
    names = _field_names(type(obj))
    if names is not None:
        return {n: _to_jsonable(getattr(obj, n)) for n in names}
    if isinstance(obj, list):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    return obj


def _json_default(obj: Any) -> Any:
    names = _field_names(type(obj))
    return str(obj) if names is None else {n: getattr(obj, n) for n in names}


def to_json(record: Any) -> str:
    """A record as compact JSON; the C encoder walks it, calling back only for nested records (fast path)."""
    return json.dumps(record, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _from_jsonable(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise RecordError(f"{where} must be a JSON object, got {type(data).__name__}", fix="check the record")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise RecordError(f"{where} has unknown field(s) {sorted(unknown)}", fix="see docs/records.md")
    kwargs: dict[str, Any] = {}
    hints = _hints(cls)
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        missing = [n for n, f in names.items() if n not in data and _required(f)]
        raise RecordError(f"{where} is missing {missing or exc}", fix="see docs/records.md") from None


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


_HINT_CACHE: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINT_CACHE:
        _HINT_CACHE[cls] = typing.get_type_hints(cls)
    return _HINT_CACHE[cls]


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise RecordError(f"{where} must not be null", fix="give a value")
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if origin is Literal:
        if value not in args:
            raise RecordError(f"{where} must be one of {list(args)}, got {value!r}", fix="see docs/records.md")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{where} must be a list", fix="see docs/records.md")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where} must be an object", fix="see docs/records.md")
        return value
    if dataclasses.is_dataclass(hint):
        return _from_jsonable(hint, value, where)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (str, int, float, bool) and (type(value) is not hint):
        raise RecordError(f"{where} must be {hint.__name__}, got {type(value).__name__}", fix="see docs/records.md")
    return value


__all__ = [
    "SCHEMA_VERSION",
    "SEVERITY_RANK",
    "Feedback",
    "FeedbackKind",
    "Generation",
    "Insertion",
    "Message",
    "ModelRef",
    "Prompt",
    "PromptFormat",
    "Range",
    "Span",
    "heldout_split",
    "new_id",
    "sha256_text",
    "to_json",
    "utc_now",
]
