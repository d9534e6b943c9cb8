"""Greedy pass rates of a model (optionally with a LoRA adapter) on world 2's repositories.

- held-out: new tasks that use the repository's changed conventions (the target of learning)
- unchanged: tasks that touch no changed step (forgetting shows here)
- teacher ceiling: held-out tasks where a failed first attempt is retried once in the context Redline's `chat`
  teacher sees — the task, then a user turn `REPROMPT_FEEDBACK` + the checker's feedback + `REPROMPT_SOLVE` (the
  attempt itself is not shown); an attempt that passed first counts as passed
- retry ceiling: the same with the attempt shown as the assistant's turn before the feedback

Every context is the chat rendered with the tokenizer's template and its generation prompt, tokenized without
special tokens added (as `redline.prompts` does).

Usage: `python -m bench.world2.evaluate [--model bench/world2/model] [--adapter DIR] [--repos 3] [--n 64]`
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.world2.hindsight import render_feedback, teacher_messages
from bench.world2.repos import Repo, check, make_repos
from bench.world2.tasks import Task

_LOADED: dict[tuple[str, str | None], tuple[Any, Any]] = {}


def load(model_path: str | Path, adapter_dir: str | Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode, fp32; the adapter, if any, loaded with peft. Cached by path."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    key = (str(model_path), str(adapter_dir) if adapter_dir else None)
    if key not in _LOADED:
        tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        tokenizer.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32)
        if adapter_dir:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter_dir))
        model.eval()
        _LOADED.clear()  # one model at a time: these runs go repo by repo, adapter by adapter
        _LOADED[key] = (model, tokenizer)
    return _LOADED[key]


def chat_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def generate(model: Any, tokenizer: Any, contexts: Sequence[str], *, max_new_tokens: int, batch_size: int = 64,
             temperature: float = 0.0, seed: int = 0) -> list[tuple[str, list[int]]]:
    """(completion text, completion ids) per rendered context: left-padded batches, greedy unless `temperature`."""
    import torch

    torch.manual_seed(seed)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    out: list[tuple[str, list[int]]] = []
    for start in range(0, len(contexts), batch_size):
        chunk = list(contexts[start:start + batch_size])
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = ({"do_sample": True, "temperature": temperature, "top_k": 0} if temperature > 0
                    else {"do_sample": False})
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos,
                                 **sampling)
        for row in ids[:, enc["input_ids"].shape[1]:].tolist():
            if eos in row:
                row = row[: row.index(eos)]
            row = [t for t in row if t != pad]
            out.append((tokenizer.decode(row, skip_special_tokens=True).rstrip(), row))
    return out


def max_new_tokens(tokenizer: Any, repo: Repo, tasks: Sequence[Task]) -> int:
    """A tight cap: the longest reference solution, plus room for a few extra tokens."""
    longest = max(len(tokenizer(repo.solution(t), add_special_tokens=False)["input_ids"]) for t in tasks)
    return longest + 16


def attempts(model_path: str | Path, adapter_dir: str | Path | None, repo: Repo, tasks: Sequence[Task], *,
             temperature: float = 0.0, seed: int = 0) -> list[tuple[str, list[int]]]:
    model, tokenizer = load(model_path, adapter_dir)
    cap = max_new_tokens(tokenizer, repo, tasks)
    return generate(model, tokenizer, [chat_text(tokenizer, t.messages) for t in tasks], max_new_tokens=cap,
                    temperature=temperature, seed=seed)


def pass_rate(model_path: str | Path, adapter_dir: str | Path | None, repo: Repo, tasks: Sequence[Task],
              hindsight: bool = False) -> float:
    """Fraction of `tasks` whose greedy attempt passes the checker; with `hindsight`, failed attempts get one retry
    in Redline's chat-teacher context (the teacher ceiling)."""
    return sum(passes(model_path, adapter_dir, repo, tasks, hindsight=hindsight)) / len(tasks)


def passes(model_path: str | Path, adapter_dir: str | Path | None, repo: Repo, tasks: Sequence[Task], *,
           hindsight: bool = False, show_attempt: bool = False, with_first: bool = False) -> list[Any]:
    """Per task: passed (after the hindsight retry, if asked); with `with_first`, (first try, after retry).
    `show_attempt` puts the attempt in the retry's context as the assistant's turn."""
    first = [code for code, _ in attempts(model_path, adapter_dir, repo, tasks)]
    results = [check(repo, t, code) for t, code in zip(tasks, first, strict=True)]
    ok = [r.passed for r in results]
    if hindsight:
        ok = retried(model_path, adapter_dir, repo, tasks, first, results, show_attempt=show_attempt)
    return list(zip((r.passed for r in results), ok, strict=True)) if with_first else ok


def retried(model_path: str | Path, adapter_dir: str | Path | None, repo: Repo, tasks: Sequence[Task],
            first: Sequence[str], results: Sequence[Any], *, show_attempt: bool = False) -> list[bool]:
    """Passed after one retry of each failed attempt with its feedback in context (see module doc)."""
    ok = [r.passed for r in results]
    retry = [i for i, r in enumerate(results) if not r.passed]
    if not retry:
        return ok
    model, tokenizer = load(model_path, adapter_dir)
    contexts = [chat_text(tokenizer, teacher_messages(tasks[i].prompt, render_feedback(results[i].findings),
                                                      first[i] if show_attempt else None)) for i in retry]
    second = generate(model, tokenizer, contexts, max_new_tokens=max_new_tokens(tokenizer, repo, tasks))
    for i, (code, _) in zip(retry, second, strict=True):
        ok[i] = check(repo, tasks[i], code).passed
    return ok


def evaluate(model_path: str | Path, adapter_dir: str | Path | None, repo: Repo, n: int | None = None
             ) -> dict[str, Any]:
    """Held-out, unchanged, teacher-ceiling and retry-ceiling pass rates (on the first `n` tasks of each set)."""
    held, unchanged = repo.heldout_tasks[:n], repo.unchanged_tasks[:n]
    first = [code for code, _ in attempts(model_path, adapter_dir, repo, held)]
    results = [check(repo, t, code) for t, code in zip(held, first, strict=True)]
    teacher = retried(model_path, adapter_dir, repo, held, first, results)
    retry = retried(model_path, adapter_dir, repo, held, first, results, show_attempt=True)
    return {
        "n": len(held),
        "heldout": sum(r.passed for r in results) / len(held),
        "teacher_ceiling": sum(teacher) / len(held),
        "retry_ceiling": sum(retry) / len(held),
        "n_unchanged": len(unchanged),
        "unchanged": pass_rate(model_path, adapter_dir, repo, unchanged),
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description="pass rates of a model on world 2's repositories")
    parser.add_argument("--model", default=str(Path(__file__).parent / "model"))
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--repos", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=None, help="tasks per set (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for repo in make_repos(args.repos, args.seed):
        row = {"repo": repo.id, **evaluate(args.model, args.adapter, repo, args.n)}
        print(json.dumps(row), "#", repo.describe(), flush=True)
        rows.append(row)
    for key in ("heldout", "teacher_ceiling", "retry_ceiling", "unchanged"):
        print(f"mean {key}: {sum(r[key] for r in rows) / len(rows):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
