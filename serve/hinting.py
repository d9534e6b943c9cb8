"""`serve_hints`: the repository's recurring red lines put into every prompt `redline serve` and `redline proxy`
answer (see `redline.hints`). The prompt recorded is the one the model saw, hints included, so the trainer's
student sees them too; `meta["hints"]` says how many lines were added."""

from __future__ import annotations

import threading
import time
from typing import Any

from redline.hints import Hint, hint_lines, recurring, with_hints
from redline.prompts import comment_block
from redline.serve.shapes import GenRequest

#: seconds between two reads of the queue (hints follow slow trends; reading is not free)
REFRESH_S = 300.0


class Hints:
    def __init__(self, store: Any, limit: int) -> None:
        self.store, self.limit = store, limit
        self._hints: list[Hint] = []
        self._read_at = -REFRESH_S
        self._lock = threading.Lock()

    def current(self) -> list[Hint]:
        """The hints, re-read from the queue at most every REFRESH_S (call off the event loop)."""
        with self._lock:
            if self.limit and time.monotonic() - self._read_at >= REFRESH_S:
                self._hints = recurring(self.store.feedback(), limit=self.limit)
                self._read_at = time.monotonic()
            return self._hints

    def apply(self, req: GenRequest, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Put the hints into `req` (what is rendered and recorded) and, for the proxy, into the `body` it forwards
        (the same text in the endpoint's own fields). Returns the body (None when none was given)."""
        hints = self.current()
        if not hints:
            return body
        prompt = with_hints(req.format, req.prompt(), hints, req.path)
        if req.format == "chat":
            req.messages = [{"role": m.role, "content": m.content} for m in prompt.messages or []]
        elif req.format == "fim":
            req.prefix = prompt.prefix
        else:
            req.text = prompt.text
        req.meta["hints"] = len(hints)
        return None if body is None else _body_with(req, body, hints)


def _body_with(req: GenRequest, body: dict[str, Any], hints: list[Hint]) -> dict[str, Any]:
    """The forwarded body with the hints in the fields the endpoint reads its prompt from."""
    body = dict(body)
    if req.format == "chat":  # only the system turn changes; the client's other message fields stay
        note = "\n".join(hint_lines(hints))
        messages = list(body["messages"])
        if messages and messages[0].get("role") == "system":
            messages[0] = {**messages[0], "content": f"{messages[0].get('content') or ''}\n\n{note}"}
        else:
            messages.insert(0, {"role": "system", "content": note})
        body["messages"] = messages
    elif req.endpoint == "llama_infill":  # the block goes above the cursor line, which llama.vim sends as `prompt`
        cursor = str(body.get("prompt") or "")
        spliced = comment_block(str(body.get("input_prefix") or "") + cursor, hint_lines(hints), req.path)
        body["input_prefix"] = spliced[: len(spliced) - len(cursor)] if cursor else spliced
    else:  # OpenAI and Ollama completions and llama.cpp's /completion all read `prompt`
        body["prompt"] = req.prefix if req.format == "fim" else req.text
    return body
