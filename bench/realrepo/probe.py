"""What SmolLM2-135M-Instruct does with hindsight in context, per rendering: the teacher's signal before training.

1. Base rates: the greedy first attempt at every task of the canonical repository (train, held-out, unchanged),
   scored by the checker: rule-following (no lint finding), unit tests, both.
2. Hindsight probe: on up to `--max-retry` failed first attempts at train tasks, one greedy retry per rendering
   (`hindsight.RENDERINGS`): the share of their violations fixed (a rule code gone from a retry that parses and
   has a body) and of retries whose tests pass / that pass every check.
3. Hint baseline: the held-out tasks with the repository's rules in the prompt (a comment block at the top of the
   file, or a system turn), beside the plain prompt and the bare chat scaffold.

    python -m bench.realrepo.probe                     # everything (about an hour on two busy cores)
    python -m bench.realrepo.probe --max-retry 20 --renderings chat chat+demo

Completions are cached in `--out`/generations.jsonl (by model, context and token cap), so a rerun only generates
what changed. Writes `--out`/probe.json (every attempt and retry) and probe.md (the tables).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.realrepo.checker import CheckResult, check
from bench.realrepo.evaluate import demonstration, max_new_tokens
from bench.realrepo.hindsight import HINTS, RENDERINGS, feedback_text, hint_context, render
from bench.realrepo.repos import Repo, make_repo

OUT = Path(__file__).resolve().parents[1] / "out" / "realrepo"


class Generator:
    """Greedy completions with an on-disk cache keyed by model, context and cap."""

    def __init__(self, model_path: Path, cache: Path, batch_size: int) -> None:
        from bench.realrepo.generate import load

        self.model, self.tokenizer = load(model_path)
        self.key = str(json.loads((model_path / "smollm2.json").read_text())["source"]["sha256"]
                       if (model_path / "smollm2.json").exists() else model_path)
        self.cache_path = cache
        self.batch_size = batch_size
        self.cache: dict[str, str] = {}
        if cache.exists():
            for line in cache.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                self.cache[row["key"]] = row["completion"]
        self.generated = 0

    def _key(self, context: str, cap: int) -> str:
        return hashlib.sha256(f"{self.key}\0{cap}\0{context}".encode()).hexdigest()

    def __call__(self, contexts: Sequence[str], cap: int) -> list[str]:
        from bench.realrepo.generate import generate

        keys = [self._key(c, cap) for c in contexts]
        todo = sorted({k: c for k, c in zip(keys, contexts, strict=True) if k not in self.cache}.items())
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            outs = generate(self.model, self.tokenizer, [c for _, c in chunk], max_new_tokens=cap,
                            batch_size=self.batch_size)
            with self.cache_path.open("a", encoding="utf-8") as fh:
                for (k, _), (text, _ids) in zip(chunk, outs, strict=True):
                    self.cache[k] = text
                    fh.write(json.dumps({"key": k, "completion": text}) + "\n")
            self.generated += len(chunk)
            print(f"  generated {self.generated} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
        return [self.cache[k] for k in keys]


def rates(results: Sequence[CheckResult]) -> dict[str, Any]:
    n = len(results)
    return {"n": n, "rules_followed": sum(not r.lint_codes for r in results),
            "tests_pass": sum(r.tests_passed for r in results), "all_pass": sum(r.passed for r in results)}


def substantive(code: str, result: CheckResult) -> bool:
    """A retry that parses and has a body (an empty or broken retry 'fixes' nothing)."""
    return bool(code.strip()) and not any("SyntaxError" in f.message for f in result.findings)


def score(first: Sequence[CheckResult], retries: Sequence[tuple[str, CheckResult]]) -> dict[str, Any]:
    violations = fixed = new = 0
    for f, (code, r) in zip(first, retries, strict=True):
        before, after = set(f.lint_codes), set(r.lint_codes)
        violations += len(before)
        if substantive(code, r):
            fixed += len(before - after)
            new += len(after - before)
    results = [r for _, r in retries]
    return {"n": len(results), "violations": violations, "fixed": fixed, "new_violations": new,
            "tests_pass": sum(r.tests_passed for r in results), "all_pass": sum(r.passed for r in results),
            "first_tests_pass": sum(r.tests_passed for r in first),
            "empty_or_broken": sum(not substantive(c, r) for c, r in retries)}


def pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f} %)" if n else "0/0"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from bench.smollm2 import build_or_load

    torch.set_num_threads(args.threads)
    repo: Repo = make_repo(0, 0)
    args.out.mkdir(parents=True, exist_ok=True)
    gen = Generator(build_or_load(), args.out / "generations.jsonl", args.batch_size)
    tok = gen.tokenizer
    every = [*repo.train_tasks, *repo.heldout_tasks, *repo.unchanged_tasks]
    cap = max_new_tokens(tok, every)
    sets = {"train (rules)": [t for t in repo.train_tasks if t.rules],
            "train (no rule)": [t for t in repo.train_tasks if not t.rules],
            "held-out (rules)": repo.heldout_tasks, "unchanged": repo.unchanged_tasks}
    first_code = dict(zip((t.id for t in every), gen([t.prompt for t in every], cap), strict=True))
    first = {t.id: check(repo, t, first_code[t.id]) for t in every}
    report: dict[str, Any] = {"repo": repo.describe(), "max_new_tokens": cap,
                              "base": {name: rates([first[t.id] for t in ts]) for name, ts in sets.items()},
                              "tasks": {t.id: {"first": first_code[t.id], "first_findings": [
                                  f"{f.rule or f.kind}: {f.message}" for f in first[t.id].findings]} for t in every}}
    failed = [t for t in sets["train (rules)"] if not first[t.id].passed]
    pool = random.Random(args.seed).sample(failed, min(args.max_retry, len(failed)))
    report["probe_pool"] = {"failed_train": len(failed), "retried": len(pool)}
    report["probe"] = {}
    from bench.realrepo.records import findings_feedback

    for how in args.renderings:
        contexts = []
        for t in pool:
            text = feedback_text(findings_feedback(first[t.id], t))
            contexts.append(render(tok, how, t, first_code[t.id], text,
                                   demo=demonstration(repo, t, first[t.id].lint_codes), correction=t.solution()))
        codes = gen(contexts, cap)
        results = [check(repo, t, c) for t, c in zip(pool, codes, strict=True)]
        report["probe"][how] = score([first[t.id] for t in pool], list(zip(codes, results, strict=True)))
        for t, c, r in zip(pool, codes, results, strict=True):
            report["tasks"][t.id][how] = {"code": c, "findings": [f"{f.rule or f.kind}: {f.message}"
                                                                  for f in r.findings]}
        print(how, json.dumps(report["probe"][how]), file=sys.stderr, flush=True)
    report["hints"] = {}
    held = repo.heldout_tasks
    for how in args.hints:
        codes = gen([hint_context(tok, how, t, repo.hints) for t in held], cap)
        results = [check(repo, t, c) for t, c in zip(held, codes, strict=True)]
        report["hints"][how] = rates(results)
        for t, c, r in zip(held, codes, results, strict=True):
            report["tasks"][t.id][how] = {"code": c, "findings": [f"{f.rule or f.kind}: {f.message}"
                                                                  for f in r.findings]}
        print(how, json.dumps(report["hints"][how]), file=sys.stderr, flush=True)
    return report


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# SmolLM2-135M-Instruct on {report['repo']}", "",
             f"Greedy, max_new_tokens {report['max_new_tokens']}, the completion cut at the function's end.", "",
             "## Base rates (first attempt, plain file prefix)", "",
             "| tasks | n | rules followed | tests pass | all checks pass |", "|---|---|---|---|---|"]
    for name, r in report["base"].items():
        lines.append(f"| {name} | {r['n']} | {pct(r['rules_followed'], r['n'])} | {pct(r['tests_pass'], r['n'])} | "
                     f"{pct(r['all_pass'], r['n'])} |")
    pool = report["probe_pool"]
    lines += ["", f"## Hindsight probe: one greedy retry of {pool['retried']} failed train attempts "
                  f"(of {pool['failed_train']} failed)", "",
              "| rendering | violations fixed | new violations | tests pass (first: …) | all checks pass | "
              "empty/broken retries |", "|---|---|---|---|---|---|"]
    for how, s in report["probe"].items():
        lines.append(f"| {how} | {pct(s['fixed'], s['violations'])} | {s['new_violations']} | "
                     f"{pct(s['tests_pass'], s['n'])} (first {s['first_tests_pass']}) | {pct(s['all_pass'], s['n'])}"
                     f" | {s['empty_or_broken']} |")
    lines += ["", "## Hint baseline: held-out tasks, the rules in the prompt", "",
              "| prompt | n | rules followed | tests pass | all checks pass |", "|---|---|---|---|---|"]
    for how, r in report["hints"].items():
        lines.append(f"| {how} | {r['n']} | {pct(r['rules_followed'], r['n'])} | {pct(r['tests_pass'], r['n'])} | "
                     f"{pct(r['all_pass'], r['n'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from bench.smollm2 import ModelMissing

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--max-retry", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--renderings", nargs="*", default=list(RENDERINGS), choices=RENDERINGS)
    parser.add_argument("--hints", nargs="*", default=[h for h in HINTS if h != "plain"], choices=HINTS)
    args = parser.parse_args(argv)
    try:
        report = run(args)
    except ModelMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    (args.out / "probe.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    table = markdown(report)
    (args.out / "probe.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
