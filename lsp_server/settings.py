"""The language server's settings: one typed object built once from the client's `initializationOptions`.

Clients send camelCase keys (`{"settleSeconds": 10}`); anything unknown or of the wrong type is reported back as a
warning and the default is kept, so a typo in an editor config never stops the server from starting.
Repository settings (checkers, the default settle time) come from the repo's Redline config; these only tune the
editor side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Settings:
    #: track model-written spans at all (off: the server still answers, which is what the latency bench compares)
    track_spans: bool = True
    #: seconds a span must sit saved and untouched before a human change to it counts; None → the repo config's
    settle_seconds: float | None = None
    #: seconds after insertion at which retained characters are measured (editors' accepted-and-retained figure)
    retention_checkpoints: tuple[float, ...] = (30.0, 120.0, 600.0)
    #: wall-clock limit for one checker run; a checker that runs longer is killed and its output dropped
    checker_timeout: float = 20.0
    #: run the built-in checkers (Python: py_compile, and ruff when installed) besides the configured ones
    builtin_checkers: bool = True
    #: documents larger than this (UTF-8 bytes) are not tracked or checked
    max_file_bytes: int = 4_000_000
    #: characters of document before / after a marked span kept as its reconstructed fill-in-the-middle prompt
    fim_prefix_chars: int = 4096
    fim_suffix_chars: int = 1024
    #: publish "N problems recorded for training" hints on generated spans
    hints: bool = True
    #: seconds between looks at the queue for a newly promoted adapter (and settle/retention timers)
    tick_seconds: float = 1.0
    status_every_seconds: float = 30.0
    #: link text an editor inserts to a completion `redline serve` / `redline proxy` served (no client help needed)
    link_completions: bool = True
    #: inserted text shorter than this (characters, whitespace at line edges not counted) is never linked
    link_min_chars: int = 10
    #: only completions served this many seconds ago or less are linked; also the longest pause between pieces
    link_window_seconds: float = 300.0
    #: at most this many recent completions are kept per repository (newest first)
    link_max_completions: int = 1000
    #: seconds between looks at the queue for newly served completions
    link_refresh_seconds: float = 1.0
    #: the clock only moves through the `redline.advanceClock` command (tests and benches; never for users)
    manual_clock: bool = False


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


_BY_KEY = {_camel(name): name for name in _FIELDS}


def settings_from_options(options: Any) -> tuple[Settings, list[str]]:
    """Build `Settings` from `initializationOptions` (a dict, possibly nested under "redline").

    Returns the settings and a list of warnings naming each ignored key or bad value.
    """
    warnings: list[str] = []
    if options is None or options == []:  # Lua clients send an empty table as []
        return Settings(), warnings
    if isinstance(options, dict) and isinstance(options.get("redline"), dict):
        options = options["redline"]
    if not isinstance(options, dict):
        return Settings(), [f"initializationOptions must be an object, got {type(options).__name__}"]
    values: dict[str, Any] = {}
    for key, raw in options.items():
        name = _BY_KEY.get(key)
        if name is None:
            warnings.append(f"unknown setting {key!r} ignored")
            continue
        try:
            values[name] = _coerce(name, raw)
        except (TypeError, ValueError):
            warnings.append(f"setting {key!r} has a bad value {raw!r}; using the default")
    return Settings(**values), warnings


def _coerce(name: str, raw: Any) -> Any:
    default = _FIELDS[name].default
    if name == "settle_seconds":
        return None if raw is None else _non_negative(raw)
    if isinstance(default, bool):
        if not isinstance(raw, bool):
            raise TypeError(name)
        return raw
    if isinstance(default, tuple):
        if not isinstance(raw, list) or not raw:
            raise TypeError(name)
        return tuple(sorted(_non_negative(v) for v in raw))
    if isinstance(default, int):
        if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
            raise ValueError(name)
        return raw
    return _non_negative(raw)


def _non_negative(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise ValueError(raw)
    return float(raw)
