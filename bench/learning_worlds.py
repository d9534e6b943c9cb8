"""Several worlds side by side on the trainer's defaults (issue #26 item 5): `python bench/learning.py --worlds ...`.

Every world is a package under `bench/` with the same API (`make_repos`, `build_or_load_model`, `make_records`,
`pass_rate(hindsight=...)`, `check`, and an `evaluate` module with `load` and `generate`). Nothing is set per world:
the trainer's `TrainConfig()` with only the seed, the hindsight chosen by the trainer's own probe (`auto`) from the
renderings the model and the records allow (world 0's template is declared by its model's tokenizer_config.json).

Per world and run: the base model's held-out pass rate, the adapter's, the teacher ceiling (the world's own retry
with its feedback: `pass_rate(hindsight=True)`) and the trainer's hindsight probe (its best strategy's fix share on
failed training records), held-out / ceiling, retention (adapter / base on tasks touching no changed convention),
the hint baseline (the base model with the repository's recurring feedback in the prompt, as `serve_hints` serves
it: `redline.hints.recurring` over the training records' feedback, `with_hints`), and what Redline decided: the
probe's "nothing to learn", the gate's verdict on records of train tasks the adapter did not see.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: the issue's bar, per world, on the defaults
BAR_CEILING_SHARE = 0.5
BAR_RETENTION = 0.98
#: records of unseen train tasks the gate judges on
GATE_RECORDS = 24


class WorldMissing(RuntimeError):
    """A world's package or model is not here; the message says which and how to get it."""


@dataclass
class WorldRun:
    world: str
    repo: str
    seed: int
    n: int
    base_heldout: float
    base_unchanged: float
    ceiling: float
    hint_heldout: float
    heldout: float
    unchanged: float
    n_heldout: int
    n_unchanged: int
    hints: list[str] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)
    probe_line: str = ""
    nothing_to_learn: str | None = None
    gate: str = "not run"
    gate_summary: str = ""
    records_passed: int = 0
    steps: int = 0
    hindsight: str = ""
    train_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def ratio(self) -> float:
        return self.heldout / self.ceiling if self.ceiling else float("nan")

    @property
    def retention(self) -> float:
        return self.unchanged / self.base_unchanged if self.base_unchanged else float("nan")

    @property
    def probe_best(self) -> float | None:
        rows = [r for r in self.probe.get("rows", []) if r.get("strategy") != "none" and r.get("judged")]
        return max((r["fixed"] / r["judged"] for r in rows), default=None)


def load_world(name: str) -> tuple[Any, Path]:
    """The world's package and its base model's directory, or WorldMissing."""
    try:
        world = importlib.import_module(f"bench.{name}")
        importlib.import_module(f"bench.{name}.evaluate")
    except ImportError as exc:
        raise WorldMissing(f"world {name!r}: no package bench/{name} here ({exc})") from None
    missing = getattr(world, "model_missing", None)
    why = missing() if missing is not None else None
    if why:
        raise WorldMissing(f"world {name!r}: {why}")
    try:
        model = world.build_or_load_model()
    except Exception as exc:
        raise WorldMissing(f"world {name!r}: its model is not here ({type(exc).__name__}: {exc})") from None
    return world, Path(model)


def _prompt_of(prompt_format: str, task: Any) -> Any:
    from redline.records import Message, Prompt

    if prompt_format == "chat":
        return Prompt(messages=[Message("user", task.prompt)])
    if prompt_format == "fim":
        return Prompt(prefix=task.prompt, suffix="")
    return Prompt(text=task.prompt)


def _context(tokenizer: Any, prompt_format: str, prompt: Any) -> str:
    if prompt_format == "chat":
        return tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in prompt.messages],
                                             tokenize=False, add_generation_prompt=True)
    return prompt.prefix if prompt_format == "fim" else prompt.text


def hinted_pass_rate(name: str, world: Any, model: Path, repo: Any, tasks: list[Any], prompt_format: str,
                     hints: list[Any]) -> float:
    """The base model's greedy pass rate with `hints` in each prompt, where `serve_hints` puts them, through the
    world's own generation (its stopping and length cap)."""
    from redline.hints import with_hints

    ev = importlib.import_module(f"bench.{name}.evaluate")
    lm, tokenizer = ev.load(model, None)
    contexts = [_context(tokenizer, prompt_format, with_hints(prompt_format, _prompt_of(prompt_format, t), hints,
                                                              getattr(t, "path", None))) for t in tasks]
    cap_args = (tokenizer, repo, tasks) if "repo" in inspect.signature(ev.max_new_tokens).parameters else (
        tokenizer, tasks)
    outs = ev.generate(lm, tokenizer, contexts, max_new_tokens=ev.max_new_tokens(*cap_args))
    return sum(world.check(repo, t, code).passed for t, (code, _) in zip(tasks, outs, strict=True)) / len(tasks)


def gate_examples(world: Any, model: Path, repo: Any, records: list, n: int, seed: int) -> list[Any]:
    """Records of train tasks the training records do not hold: the gate's held-out queue."""
    from redline.trainer.api import TrainingExample

    used = {g.meta.get("task_id") for g, _ in records}
    rest = copy.copy(repo)
    rest.train_tasks = [t for t in repo.train_tasks if t.id not in used]
    k = min(n, len(rest.train_tasks))
    return [TrainingExample(g, f) for g, f in world.make_records(model, rest, k, seed=seed)] if k else []


def run_world(name: str, world: Any, model: Path, repo: Any, seed: int, n: int, work: Path,
              train: dict[str, Any], gate: bool) -> WorldRun:
    from redline.hints import hint_lines, recurring
    from redline.trainer.api import TrainConfig, TrainingExample
    from redline.trainer.api import train as train_adapter
    from redline.trainer.errors import NothingToLearn, TrainError
    from redline.trainer.feedback_text import is_accepted
    from redline.trainer.gate import evaluate_gate

    started = time.perf_counter()
    held, unchanged = repo.heldout_tasks, repo.unchanged_tasks
    base_held = world.pass_rate(model, None, repo, held)
    base_unch = world.pass_rate(model, None, repo, unchanged)
    ceiling = world.pass_rate(model, None, repo, held, hindsight=True)
    print(f"  {repo.id}: base held-out {base_held:.1%} (n={len(held)}), unchanged {base_unch:.1%} "
          f"(n={len(unchanged)}), teacher ceiling {ceiling:.1%}", flush=True)
    records = world.make_records(model, repo, n, seed=seed)
    prompt_format = records[0][0].prompt_format
    hints = recurring(f for _, fbs in records for f in fbs)
    hint_rate = hinted_pass_rate(name, world, model, repo, held, prompt_format, hints)
    print(f"  hint baseline {hint_rate:.1%} with {len(hints)} hint(s): " + " | ".join(h.text for h in hints),
          flush=True)
    run = WorldRun(name, repo.id, seed, n, base_held, base_unch, ceiling, hint_rate, base_held, base_unch,
                   len(held), len(unchanged), hints=hint_lines(hints),
                   records_passed=sum(is_accepted(f) for _, f in records))
    config = TrainConfig.from_dict({**train, "seed": seed})
    out = work / f"{name}-{repo.id}-{seed}-{n}"
    probes: list[Any] = []
    t0 = time.perf_counter()
    try:
        result = train_adapter(model, [TrainingExample(g, f) for g, f in records], out, config, progress=False,
                               on_probe=probes.append)
    except NothingToLearn as exc:
        run.nothing_to_learn = exc.one_line()
        run.gate = "not trained"
    except TrainError as exc:
        run.nothing_to_learn = exc.one_line()
        run.gate = "not trained"
    else:
        run.steps, run.hindsight = result.steps, str(result.metrics.get("hindsight_strategy", ""))
        run.heldout = world.pass_rate(model, out, repo, held)
        run.unchanged = world.pass_rate(model, out, repo, unchanged)
        print(f"  trained {run.steps} steps (hindsight {run.hindsight}): held-out {run.heldout:.1%}, unchanged "
              f"{run.unchanged:.1%}", flush=True)
        if gate:
            try:
                examples = gate_examples(world, model, repo, records, GATE_RECORDS, seed)
                texts = [repo.solution(t) for t in unchanged[:8]]
                report = evaluate_gate(model, out, examples, human_texts=texts, config=config)
                run.gate, run.gate_summary = report.verdict, report.summary()
            except Exception as exc:  # the measured numbers stand without the gate's verdict
                run.gate, run.gate_summary = "failed", f"the gate failed: {type(exc).__name__}: {exc}"
    run.train_seconds = time.perf_counter() - t0
    if probes:
        run.probe, run.probe_line = probes[0].to_dict(), probes[0].line()
    run.seconds = time.perf_counter() - started
    print(f"  {run.probe_line}", flush=True)
    print(f"  seed {seed} N={n}: held-out {base_held:.1%} → {run.heldout:.1%} (ceiling {ceiling:.1%}, "
          f"{run.ratio:.0%} of it), unchanged {base_unch:.1%} → {run.unchanged:.1%} (retention "
          f"{run.retention:.1%}), hints {hint_rate:.1%}; {run.steps} steps, hindsight {run.hindsight or '–'}; "
          f"{run.nothing_to_learn or 'gate: ' + (run.gate_summary or run.gate)} ({run.seconds:.0f} s)", flush=True)
    return run


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def verdict(runs: list[WorldRun]) -> str:
    """Does the world meet the issue's bar on the defaults? Where the ceiling is ~0, the bar is Redline saying so
    before training and promoting nothing."""
    ceiling = _mean([r.ceiling for r in runs])
    if ceiling < 0.05:
        said = all(r.nothing_to_learn for r in runs) and not any(r.gate == "promoted" for r in runs)
        return "ceiling ~0: " + ("said so, nothing promoted ✓" if said else "NOT said before training ✗")
    held, hint = _mean([r.heldout for r in runs]), _mean([r.hint_heldout for r in runs])
    checks = [("held-out ≥ 50 % of ceiling", held >= BAR_CEILING_SHARE * ceiling),
              ("retention ≥ 98 %", _mean([r.retention for r in runs]) >= BAR_RETENTION),
              ("ahead of hints", held > hint)]
    return ", ".join(f"{what} {'✓' if ok else '✗'}" for what, ok in checks)


def summarise(runs: list[WorldRun], skipped: dict[str, str]) -> str:
    def pct(x: float | None) -> str:
        return "–" if x is None or x != x else f"{x:.1%}"

    lines = ["| world | runs (repo × seed), N | held-out base → adapter | teacher ceiling | probe best (fixed/judged"
             " share) | held-out / ceiling | unchanged base → adapter (retention) | hint baseline | Redline said |"
             " bar |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r.world for r in runs):
        sel = [r for r in runs if r.world == name]
        best = [b for r in sel if (b := r.probe_best) is not None]
        said = "; ".join(dict.fromkeys(
            ("nothing to learn" if r.nothing_to_learn else f"gate {r.gate}") + (f", {r.steps} steps" if r.steps
                                                                                else "") for r in sel))
        ns = ",".join(str(n) for n in sorted({r.n for r in sel}))
        lines.append(
            f"| {name} | {len(sel)}, N={ns} (held-out n={sel[0].n_heldout}, unchanged n={sel[0].n_unchanged}) | "
            f"{pct(_mean([r.base_heldout for r in sel]))} → {pct(_mean([r.heldout for r in sel]))} | "
            f"{pct(_mean([r.ceiling for r in sel]))} | {pct(_mean(best)) if best else '–'} | "
            f"{pct(_mean([r.ratio for r in sel]))} | {pct(_mean([r.base_unchanged for r in sel]))} → "
            f"{pct(_mean([r.unchanged for r in sel]))} ({pct(_mean([r.retention for r in sel]))}) | "
            f"{pct(_mean([r.hint_heldout for r in sel]))} | {said} | {verdict(sel)} |")
    for name, why in skipped.items():
        lines.append(f"| {name} | skipped: {why} | | | | | | | | |")
    probes = [f"- {r.world} {r.repo} seed {r.seed}: {r.probe_line}" for r in runs if r.probe_line]
    gates = [f"- {r.world} {r.repo} seed {r.seed}: {r.gate_summary}" for r in runs if r.gate_summary]
    untrained = [f"- {r.world} {r.repo} seed {r.seed}: {r.nothing_to_learn}" for r in runs if r.nothing_to_learn]
    hints = [f"- {r.world} {r.repo}: " + " / ".join(r.hints[1:]) for r in runs if r.hints]
    for title, block in (("Hindsight probe (before training)", probes), ("Gate", gates),
                         ("Not trained", untrained), ("Hints served", hints)):
        if block:
            lines += ["", f"{title}:", *block]
    return "\n".join(lines)


def main(args: Any) -> int:
    import torch

    torch.set_num_threads(2)
    started = time.perf_counter()
    ns = [int(x) for x in args.ns.split(",")]
    train = {k: v for k, v in args.train or []}
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    runs: list[WorldRun] = []
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in [w for w in args.worlds.split(",") if w]:
            try:
                world, model = load_world(name)
            except WorldMissing as exc:
                print(f"skipping {exc}", flush=True)
                skipped[name] = str(exc)
                continue
            print(f"{name}: model {model}", flush=True)
            for repo in world.make_repos(args.repos, seed=args.world_seed)[:args.repos]:
                if getattr(args, "tasks", None):  # a fixed smaller split: the first K of each set
                    repo.heldout_tasks, repo.unchanged_tasks = (repo.heldout_tasks[:args.tasks],
                                                                repo.unchanged_tasks[:args.tasks])
                for seed in range(args.seeds):
                    for n in ns:
                        if n > len(repo.train_tasks):
                            print(f"  {repo.id}: N={n} exceeds its {len(repo.train_tasks)} train tasks; skipped")
                            continue
                        runs.append(run_world(name, world, model, repo, seed, n, Path(tmp), train, not args.no_gate))
                        write(out, args, runs, skipped, started, final=False)
    table = write(out, args, runs, skipped, started, final=True)
    print("\n" + table)
    print(f"\nwrote {out / 'results.json'}, {out / 'table.md'} ({time.perf_counter() - started:.0f} s)")
    return 0


def write(out: Path, args: Any, runs: list[WorldRun], skipped: dict[str, str], started: float, *,
          final: bool) -> str:
    table = summarise(runs, skipped)
    results = {"complete": final, "elapsed_s": round(time.perf_counter() - started, 1),
               "args": {k: str(v) for k, v in vars(args).items()}, "skipped": skipped,
               "runs": [{**asdict(r), "ratio": r.ratio, "retention": r.retention} for r in runs]}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "table.md").write_text(table + "\n")
    return table
