"""Greedy pass rates of SmolLM2 (optionally with a LoRA adapter) on a repository's tasks.

- held-out: new functions under the repository's rules (the target of learning)
- unchanged: functions that touch no rule (forgetting shows here)
- teacher ceiling: a failed first attempt retried once with its hindsight in context (`DEFAULT_RENDERING`)

Usage: `python -m bench.realrepo.evaluate [--adapter DIR] [--repos 1] [--n 16]`
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.realrepo.checker import CheckResult, check
from bench.realrepo.generate import generate, load
from bench.realrepo.hindsight import feedback_text, render
from bench.realrepo.repos import Repo, make_repos
from bench.realrepo.tasks import Task

#: the rendering the teacher ceiling uses (the probe's best that needs no correction: see README.md)
DEFAULT_RENDERING = "chat+demo"
MAX_NEW_TOKENS = 128


def max_new_tokens(tokenizer: Any, tasks: Sequence[Task]) -> int:
    """Room for the longest reference body and a third more, capped: naive bodies run a little longer than the
    references, and a greedy loop should not run for hundreds of tokens."""
    longest = max(len(tokenizer(t.solution(), add_special_tokens=False)["input_ids"]) for t in tasks)
    return min(MAX_NEW_TOKENS, longest + 32)


def attempts(model_path: str | Path, adapter_dir: str | Path | None, repo: Repo, tasks: Sequence[Task], *,
             temperature: float = 0.0, seed: int = 0, contexts: Sequence[str] | None = None
             ) -> list[tuple[str, list[int]]]:
    """The model's completions of `tasks` (of `contexts`, when given: one per task)."""
    model, tokenizer = load(model_path, adapter_dir)
    cap = max_new_tokens(tokenizer, tasks)
    return generate(model, tokenizer, list(contexts) if contexts is not None else [t.prompt for t in tasks],
                    max_new_tokens=cap, temperature=temperature, seed=seed)


def demonstration(repo: Repo, task: Task, codes: Sequence[str] = ()) -> tuple[Task, str] | None:
    """A correct version of another train task that follows a rule this attempt broke (`codes`, else the task's
    rules): what a queue holds as a human's correction elsewhere. Another family's task is preferred (the same
    family's is nearly this task's own correction), then the one covering most of the rules."""
    wanted = set(codes) or set(task.rules)
    pool = [t for t in repo.train_tasks if t.id != task.id and wanted & set(t.rules)]
    pool = [t for t in pool if t.spec.family != task.spec.family] or pool
    if not pool:
        return None
    best = max(len(wanted & set(t.rules)) for t in pool)
    pool = [t for t in pool if len(wanted & set(t.rules)) == best]
    pick = pool[sum(map(ord, task.id)) % len(pool)]
    return pick, pick.solution()


def retry_context(tokenizer: Any, repo: Repo, task: Task, attempt: str, result: CheckResult, how: str) -> str:
    from bench.realrepo.records import findings_feedback

    text = feedback_text(findings_feedback(result, task))
    return render(tokenizer, how, task, attempt, text, demo=demonstration(repo, task, result.lint_codes),
                  correction=task.solution())


def passes(model_path: str | Path, adapter_dir: str | Path | None, repo: Repo, tasks: Sequence[Task], *,
           hindsight: bool = False, rendering: str = DEFAULT_RENDERING, with_first: bool = False) -> list[Any]:
    """Per task: passed (after one hindsight retry, if asked); with `with_first`, (first try, after retry)."""
    first = [code for code, _ in attempts(model_path, adapter_dir, repo, tasks)]
    results = [check(repo, t, code) for t, code in zip(tasks, first, strict=True)]
    ok = [r.passed for r in results]
    if hindsight:
        retry = [i for i, r in enumerate(results) if not r.passed]
        if retry:
            _, tokenizer = load(model_path, adapter_dir)
            contexts = [retry_context(tokenizer, repo, tasks[i], first[i], results[i], rendering) for i in retry]
            second = attempts(model_path, adapter_dir, repo, [tasks[i] for i in retry], contexts=contexts)
            for i, (code, _) in zip(retry, second, strict=True):
                ok[i] = check(repo, tasks[i], code).passed
    return list(zip((r.passed for r in results), ok, strict=True)) if with_first else ok


def pass_rate(model_path: str | Path, adapter_dir: str | Path | None, repo: Repo, tasks: Sequence[Task],
              hindsight: bool = False, rendering: str = DEFAULT_RENDERING) -> float:
    """Fraction of `tasks` whose greedy attempt passes every check (lint and tests); with `hindsight`, failed
    attempts get one retry with their hindsight in context (the teacher ceiling)."""
    return sum(passes(model_path, adapter_dir, repo, tasks, hindsight=hindsight, rendering=rendering)) / len(tasks)


def evaluate(model_path: str | Path, adapter_dir: str | Path | None, repo: Repo, n: int | None = None
             ) -> dict[str, float]:
    held, unchanged = repo.heldout_tasks[:n], repo.unchanged_tasks[:n]
    first = passes(model_path, adapter_dir, repo, held, hindsight=True, with_first=True)
    return {
        "heldout": sum(f for f, _ in first) / len(held),
        "teacher_ceiling": sum(c for _, c in first) / len(held),
        "unchanged": pass_rate(model_path, adapter_dir, repo, unchanged),
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    from bench.smollm2 import ModelMissing, build_or_load

    parser = argparse.ArgumentParser(description="pass rates of SmolLM2 on the realistic repository")
    parser.add_argument("--model", default=None, help="model directory (default: the cached SmolLM2 build)")
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--repos", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=None, help="tasks per set (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        model = args.model or build_or_load()
    except ModelMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for repo in make_repos(args.repos, args.seed):
        print(json.dumps({"repo": repo.id, **evaluate(model, args.adapter, repo, args.n)}), "#", repo.describe(),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
