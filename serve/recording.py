"""What a served answer leaves in the ledger, built once for both front-ends (`redline serve` and `redline proxy`):
the generation with the exact prompt and where it is going, and the feedback that a chat's history carries (a
user's reply to an answer Redline recorded earlier; the rule lives in `conversation.py`)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from redline.config import Config
from redline.ledger import record
from redline.records import Feedback, Generation, Insertion, ModelRef, Prompt
from redline.serve.shapes import GenRequest

log = logging.getLogger("redline.serve")


def served_generation(req: GenRequest, *, gid: str, prompt: Prompt, completion: str, model: str,
                      meta: dict[str, Any], adapter_version: str | None = None, **recorded: Any) -> Generation:
    """The generation for one answer. `meta` is what the front-end adds (finish reason, upstream); `recorded`
    what only the server knows (the tokenizer's fingerprint, token ids and their log-probs)."""
    meta = {"endpoint": req.endpoint, **req.meta, **meta}
    if req.path:
        meta["path"] = req.path
    return Generation(prompt_format=req.format, prompt=prompt, completion=completion, model=ModelRef(model), id=gid,
                      sampling=req.sampling(), origin="server", adapter_version=adapter_version,
                      insertion=Insertion(path=req.path) if req.path else None, meta=meta, **recorded)


def record_served(store: Any, config: Config, req: GenRequest, generation: Generation, *,
                  spool: Literal["if busy", "never"] = "if busy") -> None:
    """Queue the generation and any feedback its chat history carries, in one write. With `spool="never"` a busy
    queue raises `QueueBusy` (the proxy's quick try on the event loop, which then writes from a thread)."""
    found = chat_feedback(store, config, req.messages) if req.format == "chat" and req.messages else []
    record(store, config, generations=[generation], feedback=found, spool=spool)


def chat_feedback(store: Any, config: Config, messages: list[dict[str, str]]) -> list[Feedback]:
    """The feedback `feedback_from_history` finds in `messages` (none when that module is not installed).
    Never raises: feedback from history must not fail the answer it rides on."""
    try:
        from redline.serve.conversation import feedback_from_history
    except ImportError:
        return []
    try:
        return list(feedback_from_history(store, config, messages))
    except Exception:
        log.exception("could not read feedback from the chat history")
        return []
