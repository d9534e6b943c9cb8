"""Does feedback become a better model? Held-out pass rate against the number of feedback records, per method.

For each synthetic repository (bench/world) and seed, the tiny base model attempts N train tasks; the checker's
feedback on them is the training data. Each method trains an adapter from exactly those records on the
trainer's defaults (learning rate, batch, number of steps, the hindsight: nothing but the seed is set here; the
model declares its hindsight template in its tokenizer_config.json; `--train KEY=VALUE` overrides a setting for an
experiment), and is scored on *new* tasks of the same repository (structures never seen in training), on tasks
that touch only the repository's unchanged APIs (forgetting), against the teacher ceiling (the base model given its
own attempt and the feedback in context).

    python bench/learning.py                       # full: 3 repos x 2 seeds x N = 16, 64, 256
    python bench/learning.py --repos 1 --seeds 1 --ns 64 --methods self-distill   # one cell
    python bench/learning.py --methods self-distill --train use_passed_anchors=false --out /tmp/no-anchors
    python bench/learning.py --methods self-distill --train lr=1e-3 --train max_steps=40 --out /tmp/lr
    python bench/learning.py --ns 16 --methods self-distill --show-broken 4   # what forgetting looks like
    python bench/learning.py --methods self-distill --kept 1   # an editor's queue: also the code kept as written
    python bench/learning.py --worlds world,world2,realrepo --repos 1 --seeds 1 --ns 64   # worlds side by side

Writes bench/out/learning/results.json, table.md and learning.png (with `--worlds`: bench/out/learning-worlds/
results.json and table.md; see bench/learning_worlds.py).
"""

from __future__ import annotations

import argparse
import difflib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.world import Repo, build_or_load_model, check, make_records, make_repos  # noqa: E402
from bench.world import pass_rate as world_pass_rate  # noqa: E402
from bench.world.evaluate import passes as world_passes  # noqa: E402

METHODS = ("self-distill", "sft-revision", "scalar")
OUT = ROOT / "bench" / "out" / "learning"
OUT_WORLDS = ROOT / "bench" / "out" / "learning-worlds"


@dataclass
class Cell:
    repo: str
    seed: int
    n: int
    method: str
    heldout: float
    unchanged: float
    train_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def train_config(method: str, seed: int, args: argparse.Namespace) -> Any:
    """The trainer's defaults for every method; only the data differ (the world's model declares its hindsight
    template, as any model may); `--train` settings apply to every method alike (the variants' own, such as
    `teacher` or `scalar_k`, go to the method: `train_method`)."""
    from bench.methods import SETTINGS
    from redline.trainer.api import TrainConfig
    from redline.trainer.config import METHODS as PRODUCT

    trainer = {k: v for k, v in args.train or [] if k not in SETTINGS}
    return TrainConfig.from_dict({**trainer,
                                  "method": method if method in PRODUCT else "self-distill", "seed": seed})


def train_method(method: str, args: argparse.Namespace, repo: Repo | None = None) -> Any:
    """The method object that runs `method` with the `--train` settings of the bench's variants."""
    from bench.methods import SETTINGS, method_for

    checker = checker_for(repo) if repo is not None else (lambda example, text: False)
    return method_for(method, {k: v for k, v in args.train or [] if k in SETTINGS}, checker=checker)


def checker_for(repo: Repo):  # type: ignore[no-untyped-def]
    """Pass/fail for the `scalar` baseline: the same checker, reduced to one bit."""
    tasks = {t.id: t for t in repo.train_tasks}

    def passed(example: Any, text: str) -> bool:
        return check(repo, tasks[example.generation.meta["task_id"]], text).passed

    return passed


def run_cell(model: Path, repo: Repo, seed: int, n: int, method: str, records: list, work: Path,
             args: argparse.Namespace) -> Cell:
    from redline.trainer.api import TrainingExample, train
    from redline.trainer.errors import TrainError

    examples = [TrainingExample(g, fbs) for g, fbs in records]
    out = adapter_dir(work, repo, seed, n, method)
    start = time.perf_counter()
    try:
        result = train(model, examples, out, train_config(method, seed, args),
                       method=train_method(method, args, repo), progress=False)
    except TrainError as exc:  # e.g. `scalar` when no sample passed: nothing to train on, so the model is the base
        ok = world_passes(model, None, repo, repo.heldout_tasks)
        unchanged = world_pass_rate(model, None, repo, repo.unchanged_tasks)
        return Cell(repo.id, seed, n, method, sum(ok) / len(ok), unchanged, time.perf_counter() - start,
                    {"steps": 0, "pairs": 0, "tokens": 0, "untrained": exc.one_line(),
                     **split_by_shown(repo, records, ok)})
    seconds = time.perf_counter() - start
    ok = world_passes(model, out, repo, repo.heldout_tasks)
    unchanged = world_pass_rate(model, out, repo, repo.unchanged_tasks)
    return Cell(repo.id, seed, n, method, sum(ok) / len(ok), unchanged, seconds,
                {"steps": result.steps, "pairs": result.pairs, "tokens": result.tokens,
                 **split_by_shown(repo, records, ok)})


def adapter_dir(work: Path, repo: Repo, seed: int, n: int, method: str) -> Path:
    return work / f"{repo.id}-{seed}-{n}-{method}"


def broken_unchanged(model: Path, adapter: Path, repo: Repo) -> list[tuple[str, list[str]]]:
    """Unchanged-API tasks the base model passes and the adapter fails: (the task's comment, the lines that
    differ between the two attempts, as `- base` / `+ adapter`). What forgetting looks like, case by case."""
    from bench.world.evaluate import attempts

    tasks = repo.unchanged_tasks
    before = [code for code, _ in attempts(model, None, repo, tasks)]
    after = [code for code, _ in attempts(model, adapter, repo, tasks)]
    out = []
    for task, b, a in zip(tasks, before, after, strict=True):
        if check(repo, task, b).passed and not check(repo, task, a).passed:
            diff = [line for line in difflib.ndiff(b.splitlines(), a.splitlines()) if line[:1] in "-+"]
            out.append((task.prompt.splitlines()[0], diff))
    return out


def split_by_shown(repo: Repo, records: list, ok: list[bool]) -> dict[str, list[int]]:
    """Held-out results in two groups: tasks whose changed APIs all appear in the training records' tasks, and
    tasks with a changed API that no record touched, so that only a change generalised beyond the data can solve
    them. [passed, tasks] per group."""
    shown = repo.changed & {api for g, _ in records for api in g.meta.get("structure", ())}
    split = {"heldout_shown": [0, 0], "heldout_unshown": [0, 0]}
    for task, passed in zip(repo.heldout_tasks, ok, strict=True):
        group = split["heldout_shown" if repo.changed & set(task.apis) <= shown else "heldout_unshown"]
        group[0] += int(passed)
        group[1] += 1
    return split


def resummarise(out: Path) -> str:
    """Rebuild table.md and the plot from results.json (e.g. after a run was stopped part-way)."""
    data = json.loads((out / "results.json").read_text())
    cells = [Cell(**c) for c in data["cells"]]
    ns = sorted({c.n for c in cells})
    methods = list(dict.fromkeys(c.method for c in cells))
    table = summarise(data["baseline"], cells, ns, methods)
    (out / "table.md").write_text(table + "\n")
    plot(data["baseline"], cells, ns, methods, out / "learning.png")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--ns", default="16,64,256")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--train", action="append", type=_setting, metavar="KEY=VALUE",
                        help="override a trainer default for every method, as a JSON value (e.g. lr=1e-3, "
                             "alpha=1, use_passed_anchors=false); repeatable. Unset: the trainer's defaults")
    parser.add_argument("--world-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help=f"default {OUT} ({OUT_WORLDS} with --worlds)")
    parser.add_argument("--worlds", default="", metavar="A,B",
                        help="run these worlds (packages under bench/: world, world2, realrepo) side by side on the "
                             "trainer's defaults (self-distill; held-out, ceiling, probe, retention, hint baseline, "
                             "gate); a world whose package or model is missing is skipped with a message")
    parser.add_argument("--no-gate", action="store_true", help="with --worlds: skip the gate")
    parser.add_argument("--tasks", type=int, default=None, metavar="K",
                        help="with --worlds: score on the first K held-out and K unchanged tasks (default: all)")
    parser.add_argument("--model", type=Path, help="base model directory (default: the committed tiny model)")
    parser.add_argument("--summarise", action="store_true", help="only rebuild table and plot from results.json")
    parser.add_argument("--kept", type=float, default=0.0, metavar="R",
                        help="add R x N records of code kept as written (the model's passing attempts on other "
                             "train tasks, with the language server's `accept`), as an editor's queue holds")
    parser.add_argument("--show-broken", type=int, default=0, metavar="K",
                        help="after each run, print up to K unchanged-API tasks the base passed and the adapter "
                             "fails, as the lines that differ")
    args = parser.parse_args(argv)
    if args.worlds:
        from bench.learning_worlds import main as worlds_main

        args.out = args.out or OUT_WORLDS
        return worlds_main(args)
    args.out = args.out or OUT
    if args.summarise:
        print(resummarise(args.out))
        return 0
    import torch

    torch.set_num_threads(2)
    ns = [int(x) for x in args.ns.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    from redline.errors import RedlineError
    from redline.trainer.feedback_text import is_accepted

    for method in methods:  # a bad method or --train setting fails now, in one line, not after the first cell
        try:
            train_config(method, 0, args)
            train_method(method, args)
        except RedlineError as exc:
            parser.error(exc.one_line())
    started = time.perf_counter()
    model = args.model or build_or_load_model()
    repos = make_repos(args.repos, seed=args.world_seed)
    args.out.mkdir(parents=True, exist_ok=True)
    baseline: dict[str, dict[str, float]] = {}
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for repo in repos:
            base = {
                "heldout": world_pass_rate(model, None, repo, repo.heldout_tasks),
                "unchanged": world_pass_rate(model, None, repo, repo.unchanged_tasks),
                "ceiling": world_pass_rate(model, None, repo, repo.heldout_tasks, hindsight=True),
            }
            baseline[repo.id] = base
            print(f"{repo.id}: base held-out {base['heldout']:.1%}, unchanged {base['unchanged']:.1%}, "
                  f"teacher ceiling {base['ceiling']:.1%}", flush=True)
            for seed in range(args.seeds):
                for n in ns:
                    records = make_records(model, repo, n, seed=seed, kept=round(args.kept * n))
                    kept = sum(bool(g.meta.get("kept")) for g, _ in records)
                    passed = sum(is_accepted(fbs) for _, fbs in records) - kept  # accepted as is
                    for method in methods:
                        cell = run_cell(model, repo, seed, n, method, records, work, args)
                        cells.append(cell)
                        print(f"  seed {seed} N={n:<4} {method:13} held-out {cell.heldout:6.1%}  "
                              f"unchanged {cell.unchanged:6.1%}  ({cell.train_seconds:.0f}s, "
                              f"{cell.info['steps']} steps; {passed} of {n} records passed"
                              f"{f', {kept} kept' if kept else ''})", flush=True)
                        if args.show_broken and not cell.info.get("untrained"):
                            broken = broken_unchanged(model, adapter_dir(work, repo, seed, n, method), repo)
                            print(f"    {len(broken)} unchanged-API task(s) the base passed now fail", flush=True)
                            for comment, diff in broken[:args.show_broken]:
                                print(f"      {comment}\n" + "".join(f"        {d}\n" for d in diff), end="")
                        write_outputs(args, baseline, cells, ns, methods, final=False, started=started)
    table = write_outputs(args, baseline, cells, ns, methods, final=True, started=started)
    print("\n" + table)
    print(f"\n{len(cells)} trainings in {time.perf_counter() - started:.0f} s")
    print(f"\nwrote {args.out / 'results.json'}, {args.out / 'table.md'}, {args.out / 'learning.png'}")
    return 0


def write_outputs(args: argparse.Namespace, baseline: dict[str, dict[str, float]], cells: list[Cell],
                  ns: list[int], methods: list[str], *, final: bool, started: float) -> str:
    """Results after every cell, so a long run that is stopped still leaves what it measured."""
    results = {"complete": final, "elapsed_s": round(time.perf_counter() - started, 1),
               "args": {k: str(v) for k, v in vars(args).items()}, "baseline": baseline,
               "cells": [c.__dict__ for c in cells]}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = summarise(baseline, cells, ns, methods)
    (args.out / "table.md").write_text(table + "\n")
    plot(baseline, cells, ns, methods, args.out / "learning.png")
    return table


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def summarise(baseline: dict[str, dict[str, float]], cells: list[Cell], ns: list[int], methods: list[str]) -> str:
    """Markdown: mean over repos and seeds of held-out and unchanged-API pass rate, per N and method."""
    base_held = _mean([b["heldout"] for b in baseline.values()])
    base_unch = _mean([b["unchanged"] for b in baseline.values()])
    ceiling = _mean([b["ceiling"] for b in baseline.values()])
    lines = [f"{len(cells)} training runs over {len(baseline)} repo(s); each cell is the mean of its runs (×k when "
             f"k > 1). Base model: held-out {base_held:.1%}, unchanged APIs {base_unch:.1%}; "
             f"teacher ceiling {ceiling:.1%}.",
             "",
             "| method | " + " | ".join(f"N={n} held-out | N={n} unchanged" for n in ns) + " |",
             "|---|" + "---|---|" * len(ns),
             "| none (base model) | " + " | ".join(f"{base_held:.1%} | {base_unch:.1%}" for _ in ns) + " |"]
    for m in methods:
        row = []
        for n in ns:
            sel = [c for c in cells if c.method == m and c.n == n]
            runs = f" ×{len(sel)}" if len(sel) > 1 else ("" if sel else " (not run)")
            row.append(f"{_mean([c.heldout for c in sel]):.1%}{runs} | {_mean([c.unchanged for c in sel]):.1%}")
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    lines.append("| teacher ceiling | " + " | ".join(f"{ceiling:.1%} | –" for _ in ns) + " |")
    lines += paired(baseline, cells, ns, methods)
    lines += by_shown(cells, ns, methods)
    untrained = [c for c in cells if c.info.get("untrained")]
    if untrained:
        where = ", ".join(f"{c.method} {c.repo} seed {c.seed} N={c.n}" for c in untrained)
        lines += ["", f"{len(untrained)} run(s) had nothing to train on and count as the base model: {where}."]
    return "\n".join(lines)


def paired(baseline: dict[str, dict[str, float]], cells: list[Cell], ns: list[int], methods: list[str]
           ) -> list[str]:
    """Markdown: the first method against each other one, and each method's unchanged-API pass rate against the
    base's, paired by run (repository, seed, N) with a 95 % bootstrap interval over runs. Runs differ by several
    points; the interval says which gaps between two means are more than that spread."""
    from redline.trainer.gate import bootstrap_interval

    def cell(diffs: list[float]) -> str:  # pass-rate differences, shown in points
        if not diffs:
            return "–"
        low, high = bootstrap_interval(diffs, tail=0.025)
        return f"{_mean(diffs) * 100:+.1f} pts [{low * 100:+.1f}, {high * 100:+.1f}]"

    runs = {(c.repo, c.seed, c.n, c.method): c for c in cells}
    first, others = methods[0], methods[1:]
    head = [f"{first} − {m}, held-out" for m in others] + [f"{m}, unchanged APIs vs base" for m in methods]
    lines = ["", "Paired by run (repository, seed, N): mean difference and 95 % bootstrap interval over runs; "
                 "unchanged APIs as each run's change in pass rate from its repository's base model "
                 "(points).", "",
             "| N | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for n in ns:
        row = [cell([runs[(c.repo, c.seed, n, first)].heldout - c.heldout for c in cells
                     if c.method == m and c.n == n and (c.repo, c.seed, n, first) in runs])
               for m in others]
        row += [cell([c.unchanged - baseline[c.repo]["unchanged"] for c in cells if c.method == m and c.n == n])
                for m in methods]
        lines.append(f"| {n} | " + " | ".join(row) + " |")
    return lines


def by_shown(cells: list[Cell], ns: list[int], methods: list[str]) -> list[str]:
    """Markdown: held-out pass rate on tasks whose changed APIs the training records all touched, and on tasks
    with a changed API that none of them touched (pooled over runs; tasks in brackets)."""
    def rate(sel: list[Cell], key: str) -> str:
        passed, total = (sum(c.info.get(key, [0, 0])[i] for c in sel) for i in (0, 1))
        return f"{passed / total:.1%} ({total})" if total else "–"

    lines = ["", "New tasks split by what the records showed: every changed API the task uses appears in some "
                 "training record (shown), or one does not (unshown: only a change generalised beyond the "
                 "records solves it). Pooled over runs, tasks in brackets.", "",
             "| method | " + " | ".join(f"N={n} shown | N={n} unshown" for n in ns) + " |",
             "|---|" + "---|---|" * len(ns)]
    for m in methods:
        sel = {n: [c for c in cells if c.method == m and c.n == n] for n in ns}
        lines.append(f"| {m} | " + " | ".join(f"{rate(sel[n], 'heldout_shown')} | {rate(sel[n], 'heldout_unshown')}"
                                               for n in ns) + " |")
    return lines


def plot(baseline: dict[str, dict[str, float]], cells: list[Cell], ns: list[int], methods: list[str],
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    for m in methods:
        ys = [_mean([c.heldout for c in cells if c.method == m and c.n == n]) for n in ns]
        ax.plot(ns, ys, marker="o", label=m)
    ax.axhline(_mean([b["heldout"] for b in baseline.values()]), color="grey", linestyle=":", label="no training")
    ax.axhline(_mean([b["ceiling"] for b in baseline.values()]), color="black", linestyle="--",
               label="teacher ceiling")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_ylim(0, 1)
    ax.set_xlabel("feedback records (N)")
    ax.set_ylabel("held-out pass rate (new tasks)")
    ax.set_title("Redline: feedback → better model (tiny model, CPU)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
