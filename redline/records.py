"""The record schema: generations (what the model saw and wrote) and feedback (what was said about it).

Records are plain dataclasses that serialise to JSON-safe dicts (the field-by-field walk is `redline.codec`).
`from_dict` validates every field and raises `RecordError` naming the field, so an import or a client message
with a wrong type never reaches the queue. The schema is documented in docs/records.md; bump SCHEMA_VERSION when
a field changes meaning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
import typing
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from redline.codec import check_value, from_jsonable, to_json, to_jsonable
from redline.errors import RecordError

SCHEMA_VERSION = 1

PromptFormat = Literal["chat", "fim", "raw"]
Origin = Literal["editor", "agent", "server", "import", "lsp", "bench"]
FeedbackKind = Literal["diagnostic", "test_failure", "review", "edit", "accept", "reject"]
Severity = Literal["error", "warning", "info", "hint"]
Trust = Literal["high", "normal", "low"]

SEVERITY_RANK: dict[str, int] = {"error": 0, "warning": 1, "info": 2, "hint": 3}

#: ids: a UUIDv7 as 32 hex chars is what Redline writes; any 1-128 chars of letters, digits and `._:+-` (starting
#: with a letter or digit) is accepted, so other tools' ids fit but no path, space or control character does
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")
#: positions are LSP's unsigned 31-bit integers
MAX_POSITION = 2**31 - 1
_FOREIGN_PATH = re.compile(r"^(?:[A-Za-z]:|[\\/])|[\\/]{2}|\x00")


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
        return json.dumps(to_jsonable(self), sort_keys=True, ensure_ascii=False)


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
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: Any) -> Generation:
        return validate(from_jsonable(cls, data, "generation"), "generation")


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

        Attributed feedback is keyed by its line offset within the generation's span (`meta["span_line"]`), not
        the file line, so a diagnostic that moved with its code is recorded once while two call sites stay two
        records. Sources and test ids are normalised (`lsp.ruff` is `ruff`; a pytest node id and a JUnit class
        name are one test) so one finding seen by the editor and by CI, or by the plugin and JUnit, is one record.
        """
        where: list[Any] = [self.generation_id, self.meta.get("span_line")]
        if self.generation_id is None:
            where = [self.path, self.range.start_line if self.range else None]
        rule = normal_test_id(self.rule) if self.kind == "test_failure" and self.rule else self.rule
        parts = [self.kind, source_family(self.kind, self.source), rule, " ".join(self.message.split()),
                 self.correction, *where]
        if self.meta.get("subtest"):
            parts.append(str(self.meta["subtest"]))
        return sha256_text(json.dumps(parts, ensure_ascii=False))[:32]

    def attributed_to(self, generation_id: str, **meta: Any) -> Feedback:
        """A copy given to `generation_id` (with `meta` added, e.g. `span_line`, `attribution`) and its
        fingerprint recomputed for the new key: the one place that rule lives."""
        return dataclasses.replace(self, generation_id=generation_id, fingerprint="",
                                   meta={**self.meta, **{k: v for k, v in meta.items() if v is not None}})

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: Any) -> Feedback:
        return validate(from_jsonable(cls, data, "feedback"), "feedback")


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
        return to_jsonable(self)

    @classmethod
    def from_dict(cls, data: Any) -> Span:
        return validate(from_jsonable(cls, data, "span"), "span")


def source_family(kind: str, source: str) -> str:
    """The checker behind a source, for duplicate keys: `lsp.ruff` → `ruff`; every test runner → `test`."""
    if kind == "test_failure":
        return "test"
    return source.removeprefix("lsp.")


def normal_test_id(rule: str) -> str:
    """A test's id in one spelling: `tests/test_m.py::Cls::test_x[p]` and JUnit's `tests.test_m.Cls::test_x[p]`
    (class name `::` test name) both become `tests.test_m.Cls::test_x[p]`."""
    head, bracket, params = rule.partition("[")
    parts = head.split("::")
    if len(parts) >= 2 and parts[0].endswith(".py"):
        module = parts[0][:-3].replace("\\", "/").replace("/", ".")
        head = ".".join([module, *parts[1:-1]]) + "::" + parts[-1]
    return head + bracket + params


def heldout_split(repo_id: str, prompt: Prompt, fraction: float) -> Literal["train", "heldout"]:
    digest = hashlib.sha256(f"{repo_id}\0{prompt.canonical()}".encode("utf-8", "surrogatepass")).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") / 2**64 < fraction else "train"


# --- validation -----------------------------------------------------------------------------------------------

_R = typing.TypeVar("_R")


def validate(record: _R, where: str) -> _R:
    """`record` unchanged, or a `RecordError` naming the first bad field.

    Beyond the types `from_dict` checks: every string is valid Unicode (no lone surrogate), every number fits
    SQLite and JSON (no integer past 64 bits, no NaN or infinity), nesting is bounded, ids follow `ID_PATTERN`,
    ranges are non-negative and not inverted, paths are repo-relative, and the schema version is one we know.
    Run on every record read from outside (`from_dict`) and again by the queue before it writes."""
    check_value(record, where)
    version = getattr(record, "schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise RecordError(f"{where}.schema_version is {version}; this Redline reads version {SCHEMA_VERSION}",
                          fix="upgrade Redline or re-export with a matching version")
    for name in ("id", "generation_id"):
        value = getattr(record, name, None)
        if value is not None and not ID_PATTERN.fullmatch(value):
            raise RecordError(f"{where}.{name} {value[:40]!r} is not an id (1-128 letters, digits or ._:+-)",
                              fix="use the id Redline gave the record (a 32-hex UUIDv7)")
    insertion = getattr(record, "insertion", None)
    for name, path, rng in (("path", getattr(record, "path", None), getattr(record, "range", None)),
                            ("insertion", insertion.path if insertion else None,
                             insertion.range if insertion else None)):
        if path is not None:
            check_repo_path(path, f"{where}.{name}")
        if rng is not None:
            check_range(rng, f"{where}.{'insertion.range' if name == 'insertion' else 'range'}")
    return record


def check_repo_path(path: str, where: str) -> None:
    """A path inside the repository, POSIX and relative: no `..`, no absolute, drive-letter or UNC path."""
    parts = re.split(r"[\\/]", path)
    if not path or _FOREIGN_PATH.search(path) or ".." in parts:
        raise RecordError(f"{where} {path[:80]!r} is not a path inside the repository",
                          fix="give a repo-relative POSIX path such as `src/app.py`")


def check_range(rng: Range, where: str) -> None:
    values = (rng.start_line, rng.start_col, rng.end_line, rng.end_col)
    if any(v < 0 or v > MAX_POSITION for v in values):
        raise RecordError(f"{where} has a position outside 0..{MAX_POSITION}", fix="send 0-based lines and columns")
    if (rng.end_line, rng.end_col) < (rng.start_line, rng.start_col):
        raise RecordError(f"{where} ends before it starts", fix="send start <= end")


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
    "normal_test_id",
    "sha256_text",
    "source_family",
    "to_json",
    "utc_now",
    "validate",
]
