"""Student and teacher sequences for one record.

The student sees exactly what the model saw when it wrote the attempt; the teacher sees that plus the hindsight
(feedback on the attempt). Both prompts are tokenized on their own and the attempt's token ids are spliced after
each, so the scored tokens are the same ids in both sequences — joined text is never re-tokenized, because a
tokenizer may merge across the prompt/completion boundary differently in the two contexts.

Too long for `max_length`: the feedback is cut first, then the oldest prompt tokens; the completion never is.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redline.prompts import (
    chat_text,
    comment_block,
    encode,
    fim_text,
    fim_tokens,
    message_dict,
    render_student,
    student_prompt_ids,
)
from redline.records import Generation
from redline.trainer.feedback_text import aggregate, is_accepted, truncate_text

if TYPE_CHECKING:
    from redline.trainer.config import TrainConfig

log = logging.getLogger("redline.trainer")

REPROMPT_FEEDBACK = "The following is feedback from your unsuccessful earlier attempt:"
REPROMPT_SOLVE = "Correctly solve the original question."
REPROMPT_CODE = "Write the code again, correctly."
DEFAULT_TEMPLATE = REPROMPT_FEEDBACK + "\n{feedback}\n" + REPROMPT_SOLVE + "\n\n{prompt}"

_MIN_FEEDBACK_CHARS = 64


@dataclass(frozen=True)
class Rendering:
    """What turning a record into token ids needs, and nothing else: how the teacher sees the hindsight and how
    long a sequence may be (the trainer's settings of the same names; the gate passes its adapter's)."""

    hindsight: str
    template: str | None
    max_length: int
    max_feedback_chars: int
    append_eos: bool

    @classmethod
    def of(cls, config: TrainConfig) -> Rendering:
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


@dataclass
class Pair:
    """One record as token ids: the two prompts and the shared completion."""

    index: int
    student_ids: list[int]
    teacher_ids: list[int]
    completion_ids: list[int]
    old_logprobs: list[float] | None = None
    anchor: bool = False
    #: the completion is the teacher's own rewrite, not the recorded attempt (`revisions.py`)
    rewrite: bool = False
    truncated: bool = False
    adapter_version: str | None = None
    #: the frozen teacher's final hidden states at the completion positions [len(completion_ids), H], on the CPU,
    #: computed once before training (`teacher.cache_teacher_hidden`); None = run the teacher live
    teacher_hidden: Any = field(default=None, repr=False, compare=False)

    @property
    def length(self) -> int:
        return max(len(self.student_ids), len(self.teacher_ids)) + len(self.completion_ids)


# -- rendering ---------------------------------------------------------------------------------------------------


def render_teacher(tokenizer: Any, generation: Generation, feedback: str, rendering: Rendering) -> tuple[str, bool]:
    """The student's context plus the hindsight, per strategy:

    - `chat`: the chat's messages, then a user turn with SDPO's reprompt (the attempt itself is not pasted);
    - `chat-turn`: for a code completion on a model with a chat template (an instruct model): a user turn with
      the code as attempted and the feedback, then the assistant's turn starting with the prompt, where the
      attempt's ids follow — what an instruct model reads as "here is what was wrong, write it again";
    - `fim`: the feedback as a comment block above the cursor's line, inside the model's FIM format;
    - `template`: `template`, else the model's own (`hindsight_template` in its tokenizer_config.json, as a chat
      template ships there), else SDPO's reprompt before the prompt."""
    strategy = resolve_strategy(tokenizer, generation, rendering)
    p = generation.prompt
    if strategy == "chat-turn":
        text, _ = render_student(tokenizer, generation)
        user = (f"```\n{text}{generation.completion}\n```\n\n{REPROMPT_FEEDBACK}\n\n{feedback}\n\n"
                f"{REPROMPT_CODE}")
        return chat_text(tokenizer, [{"role": "user", "content": user}]) + text, False
    if strategy == "chat":
        reprompt = f"{REPROMPT_FEEDBACK}\n\n{feedback}\n\n{REPROMPT_SOLVE}"
        messages = [message_dict(m) for m in p.messages or []]
        try:
            return chat_text(tokenizer, [*messages, {"role": "user", "content": reprompt}]), False
        except Exception:  # templates that insist on alternating roles: fold the reprompt into the last user turn
            messages[-1] = {**messages[-1], "content": messages[-1]["content"] + "\n\n" + reprompt}
            return chat_text(tokenizer, messages), False
    if strategy == "fim":
        path = generation.insertion.path if generation.insertion else ""
        lines = ["Feedback on an earlier attempt at the code below:", *feedback.splitlines(), "Write it correctly."]
        prefix = comment_block(p.prefix or "", lines, path)
        return fim_text(tokenizer, prefix, p.suffix or ""), True
    text, special = render_student(tokenizer, generation)
    template = rendering.template or declared_template(tokenizer) or DEFAULT_TEMPLATE
    return template.format(prompt=text, feedback=feedback, completion=generation.completion), special


def declared_template(tokenizer: Any) -> str | None:
    """The hindsight template a model ships in its tokenizer_config.json (`hindsight_template`), if any."""
    value = (getattr(tokenizer, "init_kwargs", None) or {}).get("hindsight_template")
    return value if isinstance(value, str) and "{prompt}" in value and "{feedback}" in value else None


def supported(tokenizer: Any, generation: Generation) -> list[str]:
    """The strategies a record supports on this tokenizer, in the order `auto` prefers them."""
    fmt, p = generation.prompt_format, generation.prompt
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    out = []
    if fmt == "chat" and p.messages and has_chat:
        out.append("chat")
    if has_chat and (fmt == "raw" or (fmt == "fim" and fim_tokens(tokenizer) is None)):
        out.append("chat-turn")  # a FIM model reads its feedback best in its own FIM format
    if fmt == "fim" and p.prefix is not None:
        out.append("fim")
    return [*out, "template"]


def resolve_strategy(tokenizer: Any, generation: Generation, rendering: Rendering) -> str:
    """`auto` → the first strategy the record supports (`supported`); an explicit one it cannot support falls
    back to `chat` for a chat record asked for `chat-turn`, else to `template`. The trainer's probe replaces
    `auto` by the strategy it measured best before training (`probe.py`)."""
    choices = supported(tokenizer, generation)
    wanted = choices[0] if rendering.hindsight == "auto" else rendering.hindsight
    if wanted in choices:
        return wanted
    return "chat" if wanted == "chat-turn" and "chat" in choices else "template"


def strategies_for(tokenizer: Any, generations: Sequence[Generation], rendering: Rendering) -> list[str]:
    """The strategies worth probing for these records: with `auto`, each one some record supports, in the order
    `auto` prefers them; else the one configured."""
    if rendering.hindsight != "auto":
        return [rendering.hindsight]
    found = {s for g in generations for s in supported(tokenizer, g)}
    return [s for s in ("chat", "chat-turn", "fim", "template") if s in found]


# -- token ids ---------------------------------------------------------------------------------------------------


def completion_ids(tokenizer: Any, generation: Generation, *, fingerprint: str | None, append_eos: bool = True
                   ) -> tuple[list[int], list[float] | None]:
    """The attempt's ids: the recorded ones when they came from this tokenizer, else tokenized once here."""
    if generation.token_ids and fingerprint and generation.tokenizer_fingerprint == fingerprint:
        return list(generation.token_ids), generation.token_logprobs
    ids = encode(tokenizer, generation.completion, False)
    if append_eos and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids, None


def build_pair(tokenizer: Any, index: int, generation: Generation, feedback: list[Any], rendering: Rendering, *,
               fingerprint: str | None = None, target_ids: list[int] | None = None, anchors: bool = True
               ) -> Pair | None:
    """Student/teacher/completion ids for one record, or None when it has nothing to teach.

    `target_ids` replaces the completion (SFT trains on a revision or a human edit instead); `anchors` = False
    gives a passed record (an accept and nothing against it) no pair instead of an anchor."""
    text = aggregate(feedback, max_chars=rendering.max_feedback_chars)
    passed = is_accepted(feedback)
    if not text and not (passed and anchors) and target_ids is None:
        return None  # SDPO: no feedback → zero loss; skip the record instead of computing zeros
    if target_ids is not None:
        comp, old = list(target_ids), None
    else:
        comp, old = completion_ids(tokenizer, generation, fingerprint=fingerprint, append_eos=rendering.append_eos)
    budget = rendering.max_length - len(comp)
    if budget < 8 or not comp:
        log.warning("record %s skipped: its completion (%d tokens) does not fit max_length %d",
                    generation.id, len(comp), rendering.max_length)
        return None
    student = student_prompt_ids(tokenizer, generation)
    if not student:  # nothing predicts the first completion token
        log.warning("record %s skipped: its prompt renders to no tokens", generation.id)
        return None
    truncated = len(student) > budget
    student = _keep_tail(student, budget, tokenizer)
    if text:
        teacher, cut = _teacher_ids(tokenizer, generation, text, rendering, budget)
        truncated = truncated or cut
    else:
        teacher = list(student)
    if truncated:
        log.info("record %s truncated to fit max_length %d (feedback first, then oldest prompt text)",
                 generation.id, rendering.max_length)
    return Pair(index, student, teacher, comp, old, anchor=not text, truncated=truncated,
                adapter_version=generation.adapter_version)


def _teacher_ids(tokenizer: Any, generation: Generation, feedback: str, rendering: Rendering, budget: int
                 ) -> tuple[list[int], bool]:
    text, special = render_teacher(tokenizer, generation, feedback, rendering)
    ids = encode(tokenizer, text, special)
    cut = False
    chars = len(feedback)
    while len(ids) > budget and chars > _MIN_FEEDBACK_CHARS:
        chars = max(_MIN_FEEDBACK_CHARS, int(chars * min(0.75, budget / len(ids))))
        text, special = render_teacher(tokenizer, generation, truncate_text(feedback, chars), rendering)
        ids = encode(tokenizer, text, special)
        cut = True
    if len(ids) > budget:
        ids, cut = _keep_tail(ids, budget, tokenizer), True
    return ids, cut


def _keep_tail(ids: list[int], budget: int, tokenizer: Any) -> list[int]:
    """Drop the oldest tokens, keeping a leading BOS so the model still sees a sequence start."""
    if len(ids) <= budget:
        return ids
    bos = tokenizer.bos_token_id
    if bos is not None and ids and ids[0] == bos:
        return [bos, *ids[len(ids) - budget + 1:]]
    return ids[len(ids) - budget:]
