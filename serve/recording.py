"""What both front-ends (serve and proxy) add to the ledger besides the generation: feedback that a chat's
history carries (a user's reply to an answer Redline recorded earlier; the rule lives in `conversation.py`)."""

from __future__ import annotations

import logging
from typing import Any

from redline.config import Config
from redline.ledger import record

log = logging.getLogger("redline.serve")


def chat_feedback(store: Any, config: Config, messages: list[dict[str, str]]) -> int:
    """Record the feedback `feedback_from_history` finds in `messages`; 0 when that module is not installed.
    Never raises: feedback from history must not fail the answer it rides on."""
    try:
        from redline.serve.conversation import feedback_from_history
    except ImportError:
        return 0
    try:
        found = list(feedback_from_history(store, config, messages))
        if found:
            record(store, config, feedback=found)
        return len(found)
    except Exception:
        log.exception("could not record feedback from the chat history")
        return 0
