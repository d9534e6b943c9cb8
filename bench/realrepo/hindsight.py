"""Ways to show a model its hindsight (feedback, a demonstration, the correction) and the rules (hints).

Every context ends with the task's prompt — the file prefix, up to the cursor — so the model's next tokens are a
completion of the same function, where the trainer would splice the attempt's ids:

- `comment`: the feedback as a comment block just above the cursor, at its indentation (the trainer's `fim`
  strategy places it so);
- `prose`: SDPO's reprompt before the prefix (the trainer's default `template`);
- `chat`: a user turn with the attempt and the feedback, then the assistant turn opening with the prefix;
- `chat+demo`: `chat` plus a correct version of another task that follows the same rule (a human correction
  elsewhere in the queue);
- `chat+fix`: `chat` plus the human's correction of this very attempt.
Hints (the cheapest competitor): the repository's rules as a comment block at the top of the file, or as a system
turn.

Feedback text is the trainer's own (`redline.trainer.feedback_text.aggregate` over the records' feedback).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.realrepo.tasks import Task
from redline.records import Feedback
from redline.trainer.feedback_text import aggregate

REPROMPT_FEEDBACK = "The following is feedback from your unsuccessful earlier attempt:"
REPROMPT_SOLVE = "Correctly solve the original question."
RENDERINGS = ("comment", "prose", "chat", "chat+demo", "chat+fix")
HINTS = ("plain", "hint-comment", "chat-plain", "hint-chat")


def feedback_text(feedback: Sequence[Feedback]) -> str:
    return aggregate(feedback)


def function_text(task: Task, completion: str) -> str:
    """The function as written: `def` line, docstring, body."""
    return task.signature + completion.rstrip()


def comment_block(prefix: str, text: str, mark: str = "#") -> str:
    """`text` as a comment block just above the cursor's line, at that line's indentation."""
    head, _, line = prefix.rpartition("\n")
    indent = line[: len(line) - len(line.lstrip())]
    body = ["Feedback on an earlier attempt at the code below:", *text.splitlines(), "Write it correctly."]
    block = "".join(f"{indent}{mark} {b}".rstrip() + "\n" for b in body)
    return (head + "\n" if prefix.count("\n") else "") + block + line


def _fence(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


def user_turn(task: Task, attempt: str, feedback: str, *, demo: tuple[Task, str] | None = None,
              correction: str | None = None) -> str:
    parts = [f"This is my completion of `{task.spec.name}` in `{task.path}`:", _fence(task.prompt + attempt),
             f"The repository's checks reported:\n{feedback}"]
    if demo is not None:
        other, solution = demo
        parts.append("Elsewhere in this repository, a reviewer corrected similar code to:\n"
                     + _fence(function_text(other, solution)))
    if correction is not None:
        parts.append("The reviewer changed it to:\n" + _fence(function_text(task, correction)))
    parts.append("Write the function again so that it passes.")
    return "\n\n".join(parts)


def chat_prefix(tokenizer: Any, messages: list[dict[str, str]], prompt: str) -> str:
    """The chat rendered up to the assistant's turn, which opens with the file prefix."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prompt


def render(tokenizer: Any, how: str, task: Task, attempt: str, feedback: str, *,
           demo: tuple[Task, str] | None = None, correction: str | None = None) -> str:
    """The context for a retry of `task` after `attempt`, its hindsight rendered as `how` (one of RENDERINGS)."""
    if how == "comment":
        return comment_block(task.prompt, feedback)
    if how == "prose":
        return f"{REPROMPT_FEEDBACK}\n{feedback}\n{REPROMPT_SOLVE}\n\n{task.prompt}"
    if how == "chat":
        return chat_prefix(tokenizer, [{"role": "user", "content": user_turn(task, attempt, feedback)}], task.prompt)
    if how == "chat+demo":
        if demo is None:
            raise ValueError("chat+demo needs a demonstration")
        content = user_turn(task, attempt, feedback, demo=demo)
        return chat_prefix(tokenizer, [{"role": "user", "content": content}], task.prompt)
    if how == "chat+fix":
        if correction is None:
            raise ValueError("chat+fix needs the correction")
        content = user_turn(task, attempt, feedback, correction=correction)
        return chat_prefix(tokenizer, [{"role": "user", "content": content}], task.prompt)
    raise ValueError(f"unknown rendering {how!r}; expected one of {RENDERINGS}")


def hint_context(tokenizer: Any, how: str, task: Task, hints: Sequence[str]) -> str:
    """A first attempt with the rules in the prompt (`hint-comment`, `hint-chat`) or without (`plain`, and its
    chat scaffold `chat-plain`, to tell the scaffold's effect from the hint's)."""
    if how == "plain":
        return task.prompt
    if how == "hint-comment":
        return "# Rules of this repository:\n" + "".join(f"# - {h}\n" for h in hints) + task.prompt
    ask = f"Complete the function `{task.spec.name}` in `{task.path}`."
    if how == "chat-plain":
        return chat_prefix(tokenizer, [{"role": "user", "content": ask}], task.prompt)
    if how == "hint-chat":
        system = "You write code in this repository. Its rules:\n" + "\n".join(f"- {h}" for h in hints)
        return chat_prefix(tokenizer, [{"role": "system", "content": system}, {"role": "user", "content": ask}],
                           task.prompt)
    raise ValueError(f"unknown hint rendering {how!r}; expected one of {HINTS}")
