"""Records as JSON-safe values and back, field by field, and the checks every stored value passes.

Generic over dataclasses: `redline.records` defines the schema, this module walks it. `from_jsonable` checks each
field's type against its annotation (a `RecordError` names the field); `check_value` refuses what SQLite or JSON
cannot hold (a lone surrogate, an integer past 64 bits, NaN, runaway nesting).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, Literal, get_args

from redline.errors import RecordError

#: SQLite's INTEGER range: a larger number cannot be stored in a column (and is no line number or token id)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: nesting deeper than this in `meta`/`sampling` is refused (nothing real nests so deep)
MAX_DEPTH = 64


def check_value(value: Any, where: str, depth: int = 0) -> None:
    """Every string valid Unicode, every integer within 64 bits, every float finite, nesting bounded."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RecordError(f"{where} holds a lone surrogate (U+{ord(value[exc.start]):04X}) at character "
                              f"{exc.start}", fix="send valid Unicode text") from None
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise RecordError(f"{where} is an integer too large to store", fix="send numbers within 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise RecordError(f"{where} is {value}, not a finite number", fix="send finite numbers (JSON has no NaN)")
    elif depth > MAX_DEPTH:
        raise RecordError(f"{where} is nested deeper than {MAX_DEPTH} levels", fix="flatten the value")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_value(k, f"{where} key", depth + 1)
            check_value(v, f"{where}.{k}" if isinstance(k, str) and len(k) < 40 else f"{where}[…]", depth + 1)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_value(v, f"{where}[{i}]", depth + 1)
    elif (names := field_names(type(value))) is not None:
        for n in names:
            check_value(getattr(value, n), f"{where}.{n}", depth + 1)



_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...] | None:
    names = _FIELD_NAMES.get(cls)
    if names is None and dataclasses.is_dataclass(cls):
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def to_jsonable(obj: Any) -> Any:
    names = field_names(type(obj))
    if names is not None:
        return {n: to_jsonable(getattr(obj, n)) for n in names}
    if isinstance(obj, list):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


def _json_default(obj: Any) -> Any:
    names = field_names(type(obj))
    return str(obj) if names is None else {n: getattr(obj, n) for n in names}


def to_json(record: Any) -> str:
    """A record as compact JSON; the C encoder walks it, calling back only for nested records (fast path)."""
    return json.dumps(record, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def from_jsonable(cls: type, data: Any, where: str) -> Any:
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
        return from_jsonable(hint, value, where)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (str, int, float, bool) and (type(value) is not hint):
        raise RecordError(f"{where} must be {hint.__name__}, got {type(value).__name__}", fix="see docs/records.md")
    return value

