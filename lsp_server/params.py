"""Reading the loosely typed params of Redline's custom messages and commands (checked by hand, since lsprotocol
knows nothing of them): a bad value raises `JsonRpcInvalidParams` naming it."""

from __future__ import annotations

from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

from redline.lsp_server.spans import Pos


def plain(obj: Any) -> Any:
    """pygls hands custom-message params over as namedtuples; turn them back into dicts and lists."""
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def parse_range(raw: Any) -> tuple[Pos, Pos | None]:
    """`{start, end?}` with non-negative integer positions, the end not before the start."""
    def pos(p: Any) -> Pos:
        if not isinstance(p, dict):
            raise JsonRpcInvalidParams("a position must be {line, character}")
        line, char = p.get("line"), p.get("character")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31 for v in (line, char)):
            raise JsonRpcInvalidParams("line and character must be non-negative integers")
        return line, char

    if not isinstance(raw, dict):
        raise JsonRpcInvalidParams("range must be {start, end?}")
    start = pos(raw.get("start"))
    end = pos(raw["end"]) if raw.get("end") is not None else None
    if end is not None and end < start:
        raise JsonRpcInvalidParams("range ends before it starts")
    return start, end
