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
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from redline.prompts import chat_text, encode, fim_text, message_dict, render_student, student_prompt_ids
from redline.records import Generation
from redline.trainer.feedback_text import aggregate, is_accepted, truncate_text

if TYPE_CHECKING:
    from redline.trainer.config import TrainConfig

log = logging.getLogger("redline.trainer")

REPROMPT_FEEDBACK = "The following is feedback from your unsuccessful earlier attempt:"
REPROMPT_SOLVE = "Correctly solve the original question."
DEFAULT_TEMPLATE = REPROMPT_FEEDBACK + "\n{feedback}\n" + REPROMPT_SOLVE + "\n\n{prompt}"

_COMMENT = {
    **dict.fromkeys(("py", "sh", "bash", "rb", "pl", "r", "yaml", "yml", "toml", "jl", "ex", "exs", "nim"), "#"),
    **dict.fromkeys(("js", "jsx", "ts", "tsx", "java", "c", "h", "cc", "cpp", "hpp", "cs", "go", "rs", "swift",
                     "kt", "kts", "scala", "php", "dart", "zig", "v", "sol"), "//"),
    **dict.fromkeys(("sql", "lua", "hs", "elm", "ada"), "--"),
    **dict.fromkeys(("lisp", "clj", "el", "scm"), ";;"),
}
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
    """The student's context plus the hindsight, per strategy (see module doc)."""
    strategy = resolve_strategy(tokenizer, generation, rendering)
    p = generation.prompt
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
        prefix = _with_comment_block(p.prefix or "", feedback, path)
        return fim_text(tokenizer, prefix, p.suffix or ""), True
    text, special = render_student(tokenizer, generation)
    template = rendering.template or DEFAULT_TEMPLATE
    return template.format(prompt=text, feedback=feedback, completion=generation.completion), special


def resolve_strategy(tokenizer: Any, generation: Generation, rendering: Rendering) -> str:
    """`auto` → chat for chat prompts with messages and a chat template, fim for fim prompts, else template.
    An explicit strategy the record cannot support falls back to template."""
    fmt, p = generation.prompt_format, generation.prompt
    can_chat = fmt == "chat" and bool(p.messages) and bool(getattr(tokenizer, "chat_template", None))
    hindsight = rendering.hindsight
    if hindsight == "chat" or (hindsight == "auto" and fmt == "chat"):
        return "chat" if can_chat else "template"
    if hindsight == "fim" or (hindsight == "auto" and fmt == "fim"):
        return "fim" if p.prefix is not None else "template"
    return "template"


def comment_prefix(path: str) -> str:
    return _COMMENT.get(PurePosixPath(path).suffix.lstrip(".").lower(), "#")


def _with_comment_block(prefix: str, feedback: str, path: str) -> str:
    """Insert the feedback as a comment block just above the cursor's line, at that line's indentation."""
    mark = comment_prefix(path)
    head, _, line = prefix.rpartition("\n")
    indent = line[: len(line) - len(line.lstrip())]
    body = ["Feedback on an earlier attempt at the code below:", *feedback.splitlines(), "Write it correctly."]
    block = "".join(f"{indent}{mark} {b}".rstrip() + "\n" for b in body)
    return (head + "\n" if prefix.count("\n") else "") + block + line


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
