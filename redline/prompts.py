"""The prompt exactly as the model saw it, rendered to text and token ids.

One rendering for everything that needs the student's context: `redline serve` (what the model is asked), the
proxy (what it records) and the trainer (the student sequence). Duck-typed on a Hugging Face tokenizer, so it
imports without torch.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from redline.records import Generation, Prompt

#: FIM sentinels per model family, in prefix-suffix-middle order
FIM_TOKENS = (
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    ("<|fim▁begin|>", "<|fim▁hole|>", "<|fim▁end|>"),
    ("<PRE>", "<SUF>", "<MID>"),
)


def prompt_format(prompt: Generation | Prompt | str) -> str:
    if isinstance(prompt, Generation):
        return prompt.prompt_format
    if isinstance(prompt, str) or (prompt.messages is None and prompt.prefix is None):
        return "raw"
    return "chat" if prompt.messages else "fim"


def render_student(tokenizer: Any, prompt: Generation | Prompt | str) -> tuple[str, bool]:
    """(text, add_special_tokens): the prompt exactly as the model saw it when it wrote the attempt."""
    fmt = prompt_format(prompt)
    p = prompt.prompt if isinstance(prompt, Generation) else prompt
    if isinstance(p, str):
        return p, True
    if fmt == "chat":
        if p.messages and getattr(tokenizer, "chat_template", None):
            return chat_text(tokenizer, [message_dict(m) for m in p.messages]), False
        if p.text is not None:
            return p.text, False
        return "\n".join(f"{m.role}: {m.content}" for m in p.messages or []) + "\nassistant: ", True
    if fmt == "fim":
        return fim_text(tokenizer, p.prefix or "", p.suffix or ""), True
    return p.text or "", True


def chat_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def fim_text(tokenizer: Any, prefix: str, suffix: str) -> str:
    tokens = fim_tokens(tokenizer)
    if tokens is None:  # no FIM support: the model continued the prefix
        return prefix
    pre, suf, mid = tokens
    return f"{pre}{prefix}{suf}{suffix}{mid}"


def fim_tokens(tokenizer: Any) -> tuple[str, str, str] | None:
    vocab = tokenizer.get_vocab()
    return next((t for t in FIM_TOKENS if all(x in vocab for x in t)), None)


def message_dict(m: Any) -> dict[str, str]:
    return {"role": m.role, "content": m.content}


def encode(tokenizer: Any, text: str, add_special_tokens: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def student_prompt_ids(tokenizer: Any, prompt: Generation | Prompt | str) -> list[int]:
    text, special = render_student(tokenizer, prompt)
    return encode(tokenizer, text, special)


_COMMENT = {
    **dict.fromkeys(("py", "sh", "bash", "rb", "pl", "r", "yaml", "yml", "toml", "jl", "ex", "exs", "nim"), "#"),
    **dict.fromkeys(("js", "jsx", "ts", "tsx", "java", "c", "h", "cc", "cpp", "hpp", "cs", "go", "rs", "swift",
                     "kt", "kts", "scala", "php", "dart", "zig", "v", "sol"), "//"),
    **dict.fromkeys(("sql", "lua", "hs", "elm", "ada"), "--"),
    **dict.fromkeys(("lisp", "clj", "el", "scm"), ";;"),
}


def comment_prefix(path: str | None) -> str:
    """The line-comment marker of a file's language, by its extension (`#` when unknown)."""
    return _COMMENT.get(PurePosixPath(path or "").suffix.lstrip(".").lower(), "#")


def comment_block(prefix: str, lines: list[str], path: str | None) -> str:
    """`prefix` with `lines` as a comment block just above the cursor's line, at that line's indentation: where a
    code model reads a note about the code it is about to write."""
    mark = comment_prefix(path)
    head, _, line = prefix.rpartition("\n")
    indent = line[: len(line) - len(line.lstrip())]
    block = "".join(f"{indent}{mark} {b}".rstrip() + "\n" for b in lines)
    return (head + "\n" if prefix.count("\n") else "") + block + line
