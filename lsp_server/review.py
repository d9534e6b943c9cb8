"""Review on generated spans: code actions and lenses offer Redline's commands; each command becomes `review`,
`accept` or `reject` feedback on the span's generation (the pure parts are in `actions`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcInvalidParams

from redline.lsp_server import actions
from redline.lsp_server.harvest import record
from redline.lsp_server.tracking import refresh_texts

if TYPE_CHECKING:
    from redline.lsp_server.server import RedlineServer



async def review(ls: RedlineServer, command: str, args: Any) -> dict[str, Any]:
    try:
        uri, gid, text = actions.review_target(args)
    except ValueError as exc:
        raise JsonRpcInvalidParams(str(exc)) from None
    doc = await ls.ready_doc(uri)
    span = next((s for s in doc.spans if s.generation_id == gid), None)
    if span is None:
        raise JsonRpcInvalidParams(f"no generated span {gid} in {uri}")
    lines = refresh_texts(ls, doc, [span])
    try:
        feedback = actions.review_feedback(command, span, doc.path, text)
    except ValueError as exc:
        raise JsonRpcInvalidParams(str(exc)) from None
    return {"recorded": await record(ls, doc, [feedback], lines)}
