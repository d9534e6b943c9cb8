"""The end-to-end demo (`./dev.sh demo`, i.e. `python -m bench.demo`): feedback becoming a better model, end to end,
on this machine (CPU, a few minutes).

1. the tiny base model of `bench/world` (committed; pretrained here only if missing);
2. a throw-away sample repository (git, `redline.toml`, a test suite, a linter and a reviewer) for one world
   repository whose conventions differ from what the model learned;
3. the model writes one file per task (`tasks/t017.py`); every completion goes through Redline's recording path
   (`record_generation` with the insertion's path and range), exactly as an editor plugin or agent would;
4. the repository's own tools give the feedback, through Redline's real harvesting paths: `pytest --redline`
   (failures attributed through traceback frames) and `redline ci ingest` (a ruff JSON report and GitHub review
   comments written by the repository's lint and review scripts);
5. `redline train` (a subprocess in the sample repository: claims the queue, trains, runs the gate, registers);
6. before/after pass rates with the world checker: new tasks (structures never trained on), unchanged APIs
   (forgetting) and the teacher ceiling; a table here and `report.html` with a chart.

Nothing is injected behind Redline's back: the trainer sees exactly what the plugin and the ingest recorded.
The repository's checks are backed by the world's checker (`SampleChecks`, called by the sample repository's
`tests/test_tasks.py` and `tools/report.py`): a failing behaviour check is raised as the error it names, at the
line of generated code it names, so pytest's traceback ends in the generated file as a real failing test's would.
"""

from __future__ import annotations

import base64
import builtins
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: trainer settings written into the sample repository's redline.toml beside `max_steps` (general settings, not
#: world-specific; the learning rate is the trainer's default, chosen by the model's width)
TRAIN_SETTINGS: dict[str, Any] = {"batch_size": 8}
DEFAULT_TASKS = 56
DEFAULT_STEPS = 40
#: held-out (new-structure) world tasks recorded with split="heldout", so the gate has something to judge by
GATE_TASKS = 12
#: tasks per evaluation set (held-out, unchanged)
EVAL_TASKS = 48
#: reference solutions committed as the repository's existing, human-written code (the gate's perplexity check)
HUMAN_TASKS = 12

SAMPLE_README = """# sample repository (made by Redline's demo)

- `src/pipelines/`: the team's code, in this repository's conventions
- `tasks/*.py`: code the local model wrote (not committed); each was recorded by Redline where it landed
- `tests/test_tasks.py`: behaviour tests (`python -m pytest --redline` records the failures)
- `tools/report.py`: the linter and the reviewer (`python tools/report.py reports`, then `redline ci ingest`)
"""


@dataclass
class DemoResult:
    workdir: Path
    sample: Path
    report: Path
    counts: dict[str, Any]
    version: str | None
    gate_passed: bool | None
    before: dict[str, float]
    after: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"workdir": str(self.workdir), "sample": str(self.sample), "report": str(self.report),
                "counts": self.counts, "version": self.version, "gate_passed": self.gate_passed,
                "before": self.before, "after": self.after, "timings": self.timings}


# -- the sample repository's checks ---------------------------------------------------------------------------------

class SampleChecks:
    """The sample repository's behaviour tests, linter and reviewer, backed by the world's checker (which knows the
    repository's conventions). The sample repository's `tests/test_tasks.py` and `tools/report.py` call this.

    A failing behaviour check is raised as the error it names (`NameError: …`, `TypeError: …`, `AssertionError`),
    from the line of the task file it names — so pytest's traceback ends in the generated code, as a real failing
    test's does. `reports(DIR)` writes the linter's findings as ruff JSON and the reviewer's as GitHub review
    comments, for `redline ci ingest`.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.world = json.loads((self.root / "world.json").read_text(encoding="utf-8"))
        self._repo: Any = None
        self._found: dict[str, Any] = {}

    def repo(self) -> Any:
        if self._repo is None:
            from bench.world import make_repos

            self._repo = make_repos(self.world["index"] + 1, self.world["seed"])[self.world["index"]]
        return self._repo

    def attempt(self, rel: str) -> tuple[Any, str, int]:
        """(task, code, 1-based file line of the code's first line) for one task file."""
        r = self.repo()
        task_id = self.world["files"][rel]
        task = next(t for t in (*r.train_tasks, *r.heldout_tasks, *r.unchanged_tasks) if t.id == task_id)
        text = (self.root / rel).read_text(encoding="utf-8")
        if not text.startswith(task.prompt):  # the prompt comment was edited: check the whole file
            return task, text.rstrip("\n"), 1
        return task, text[len(task.prompt):].rstrip("\n"), task.prompt.count("\n") + 1

    def findings(self, rel: str) -> tuple[Any, ...]:
        if rel not in self._found:
            from bench.world import check

            task, code, _ = self.attempt(rel)
            self._found[rel] = check(self.repo(), task, code).findings
        return self._found[rel]

    def file_line(self, rel: str, finding: Any) -> int:
        """The task file's line a finding points at; one without a line (a wrong result) → the code's last line."""
        _, code, first = self.attempt(rel)
        n = max(1, len(code.split("\n")))
        return first + min(max(finding.line or n, 1), n) - 1

    def failing(self, rel: str) -> list[Any]:
        return [f for f in self.findings(rel) if f.kind == "test_failure"]

    def cases(self) -> list[tuple[str, int | None]]:
        """(file, k) per failing behaviour check k of each task file; (file, None) for a file whose checks pass."""
        out: list[tuple[str, int | None]] = []
        for rel in sorted(self.world["files"]):
            out += [(rel, k) for k in range(len(self.failing(rel)))] or [(rel, None)]
        return out

    @staticmethod
    def case_id(case: tuple[str, int | None]) -> str:
        return f"{Path(case[0]).stem}-{'ok' if case[1] is None else case[1]}"

    def run_case(self, rel: str, k: int | None) -> None:
        if k is None:
            return
        f = self.failing(rel)[k]
        name, sep, rest = f.message.partition(": ")
        cls = getattr(builtins, name, None)
        if not (sep and isinstance(cls, type) and issubclass(cls, Exception)):
            cls, rest = AssertionError, f.message
        exc = cls(rest + ("\n" + f.detail if f.detail else ""))
        line = self.file_line(rel, f)
        # raised from the task file's own line: the traceback's innermost frame is the generated code
        exec(compile("\n" * (line - 1) + "raise exc", str(self.root / rel), "exec"), {"exc": exc})

    def reports(self, out_dir: str | Path) -> tuple[Path, Path, int, int]:
        out = Path(out_dir)
        if not out.is_absolute():
            out = self.root / out
        out.mkdir(parents=True, exist_ok=True)
        lint: list[dict[str, Any]] = []
        review: list[dict[str, Any]] = []
        for rel in sorted(self.world["files"]):
            lines = (self.root / rel).read_text(encoding="utf-8").split("\n")
            for f in self.findings(rel):
                line = self.file_line(rel, f)
                if f.kind == "diagnostic":
                    lint.append({"code": f.rule, "message": f.message, "filename": str(self.root / rel), "fix": None,
                                 "location": {"row": line, "column": 1},
                                 "end_location": {"row": line, "column": len(lines[line - 1]) + 1}})
                elif f.kind == "review":
                    review.append({"path": rel, "line": line, "side": "RIGHT", "body": f.message,
                                   "author_association": "MEMBER", "user": {"login": "reviewer"}})
        ruff, gh = out / "ruff.json", out / "review-comments.json"
        ruff.write_text(json.dumps(lint, indent=1), encoding="utf-8")
        gh.write_text(json.dumps(review, indent=1), encoding="utf-8")
        return ruff, gh, len(lint), len(review)


TEST_TASKS = '''"""Behaviour tests: one case per check of each task file (the checks: bench/demo.py, SampleChecks)."""

from pathlib import Path

from bench.demo import SampleChecks

CHECKS = SampleChecks(Path(__file__).resolve().parents[1])


def pytest_generate_tests(metafunc):
    cases = CHECKS.cases()
    metafunc.parametrize("case", cases, ids=[CHECKS.case_id(c) for c in cases])


def test_behaviour(case):
    CHECKS.run_case(*case)
'''

REPORT_TOOL = '''"""Lint and review: `python tools/report.py reports` writes reports/ruff.json and
reports/review-comments.json (for `redline ci ingest`)."""

import sys
from pathlib import Path

from bench.demo import SampleChecks

ruff, review, n_lint, n_review = SampleChecks(Path(__file__).resolve().parents[1]).reports(sys.argv[1])
print(f"{n_lint} lint findings -> {ruff.name}, {n_review} review comments -> {review.name}")
'''


def human_code(repo: Any, tasks: list[Any]) -> dict[str, str]:
    """The repository's existing, human-written code: one pipeline module per reference solution, in this
    repository's conventions (each module's entry point is `task`, the form the model writes)."""
    return {f"src/pipelines/p{i:02d}.py": t.prompt + repo.solution(t).rstrip("\n") + "\n" for i, t in enumerate(tasks)}


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def write_redline_toml(path: Path, model: Path, settings: dict[str, Any]) -> None:
    # the queue and adapters live inside the sample repository: a demo never touches the user's own Redline state,
    # and every run starts from an empty queue
    lines = [f"model = {_toml_str(str(model))}", "heldout_fraction = 0", 'state_dir = ".redline"', "", "[train]"]
    for key, value in settings.items():
        lines.append(f"{key} = {_toml_str(value) if isinstance(value, str) else json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.invalid",
           "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.invalid"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def _redline(cwd: Path, *args: str, capture: bool = False, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "redline", *args], cwd=cwd, env=env or _env(), text=True,
                          capture_output=capture, check=False)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the sample repository's harness imports bench.world from this checkout
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("REDLINE", None)
    return env


# -- the demo ------------------------------------------------------------------------------------------------------

def run_demo(*, tasks: int = DEFAULT_TASKS, seed: int = 0, keep: str | Path | None = None,
             max_steps: int | None = DEFAULT_STEPS, model: str | Path | None = None, eval_tasks: int = EVAL_TASKS,
             gate_tasks: int = GATE_TASKS, console: Any = None, threads: int | None = None) -> DemoResult:
    from rich.console import Console

    console = console or Console()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    if threads:
        import torch

        torch.set_num_threads(threads)

    def step(n: int, text: str) -> None:
        console.print(f"\n[bold cyan][{n}/6][/] [bold]{text}[/]")

    def done(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 1)

    # 1. the model
    step(1, "the tiny base model")
    t0 = time.perf_counter()
    from bench.world import HINDSIGHT_TEMPLATE, build_or_load_model, make_repos

    model_path = Path(model) if model else build_or_load_model()
    console.print(f"    {model_path}")
    done("model", t0)

    # 2. the sample repository
    step(2, "a sample repository whose conventions the model does not know")
    t0 = time.perf_counter()
    if keep:
        workdir = Path(keep).resolve()
        if workdir.exists() and any(workdir.iterdir()):
            raise SystemExit(f"demo: --keep {workdir} exists and is not empty; pass a new directory")
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="redline-demo-"))
    sample = workdir / "sample-repo"
    (sample / "tasks").mkdir(parents=True)
    (sample / "tests").mkdir()
    repo = make_repos(1, seed)[0]
    console.print(f"    {sample}")
    console.print(f"    conventions: {repo.describe().split(': ', 1)[1]}")
    n_train = min(tasks, len(repo.train_tasks))
    train_tasks = random.Random(f"demo:{seed}").sample(repo.train_tasks, n_train)
    gate = repo.heldout_tasks[:gate_tasks]
    # the gate's sample of the team's own code is src/ (the tests and tools are harness code the model never writes)
    settings = {"hindsight": "template", "template": HINDSIGHT_TEMPLATE, "gate_human_code": ["src/"],
                **TRAIN_SETTINGS}
    if max_steps:
        settings["max_steps"] = max_steps
    write_redline_toml(sample / "redline.toml", model_path, settings)
    (sample / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n", encoding="utf-8")
    (sample / "tests" / "test_tasks.py").write_text(TEST_TASKS, encoding="utf-8")
    (sample / "tools").mkdir()
    (sample / "tools" / "report.py").write_text(REPORT_TOOL, encoding="utf-8")
    (sample / "src" / "pipelines").mkdir(parents=True)
    taken = {t.id for t in train_tasks}
    spare = [t for t in repo.train_tasks if t.id not in taken][-HUMAN_TASKS:]
    for rel, text in human_code(repo, spare).items():
        (sample / rel).write_text(text, encoding="utf-8")
    (sample / ".gitignore").write_text("reports/\n__pycache__/\n.redline/\n", encoding="utf-8")
    (sample / "README.md").write_text(SAMPLE_README, encoding="utf-8")
    files = {f"tasks/t{i:03d}.py": t for i, t in enumerate(train_tasks)}
    files.update({f"tasks/h{i:03d}.py": t for i, t in enumerate(gate)})
    (sample / "world.json").write_text(json.dumps(
        {"seed": seed, "index": 0, "files": {rel: t.id for rel, t in files.items()}}, indent=1), encoding="utf-8")
    _git(sample, "init", "-q")
    _git(sample, "add", "-A")
    _git(sample, "commit", "-q", "-m", "sample repository: checks and tests")
    done("sample_repo", t0)

    # 3. the model writes code; Redline records every completion where it lands
    step(3, f"the model writes {n_train} task files (+{len(gate)} held out for the gate); Redline records each")
    t0 = time.perf_counter()
    written = _write_and_record(console, sample, model_path, repo, files, gate_ids={t.id for t in gate})
    done("generate", t0)

    # 4. harvest: pytest --redline, then the linter's and the reviewer's reports through `redline ci ingest`
    step(4, "feedback through Redline's harvesting paths: pytest --redline, redline ci ingest")
    t0 = time.perf_counter()
    env = _env()
    proc = subprocess.run([sys.executable, "-m", "pytest", "--redline", "-q", "-p", "no:cacheprovider",
                           "--tb=line", "-o", "console_output_style=classic"],
                          cwd=sample, env=env, text=True, capture_output=True, check=False)
    tail = [ln for ln in proc.stdout.splitlines() if ln.startswith(("redline:", "=")) or " failed" in ln]
    for ln in tail[-3:]:
        console.print(f"    pytest: {ln.strip('= ')}")
    lint = subprocess.run([sys.executable, "tools/report.py", "reports"], cwd=sample, env=env, text=True,
                          capture_output=True, check=False)
    if lint.returncode:
        raise RuntimeError(f"the sample repository's lint/review script failed:\n{lint.stderr}")
    console.print(f"    {lint.stdout.strip()}")
    for fmt, report_file in (("ruff", "reports/ruff.json"), ("github", "reports/review-comments.json")):
        ingest = _redline(sample, "ci", "ingest", "--no-hints", "--format", fmt, report_file, capture=True)
        for ln in (ingest.stdout + ingest.stderr).strip().splitlines()[-2:]:
            console.print(f"    redline ci ingest: {ln}")
    kept = _keep_unflagged(sample)
    console.print(f"    kept as written: {kept} files nothing flagged get an accept (what the language server "
                  "records after ten minutes in an editor)")
    status = _redline(sample, "status", "--json", capture=True)
    counts = json.loads(status.stdout)
    _print_counts(console, counts)
    done("harvest", t0)

    # 5. train through `redline train` (claims the queue, trains, gate, registry)
    step(5, "redline train: self-distillation into a LoRA adapter, then the gate")
    t0 = time.perf_counter()
    train = _redline(sample, "train")
    if train.returncode:
        raise RuntimeError(f"`redline train` failed (exit {train.returncode}); see its output above")
    from redline.adapters import AdapterRegistry
    from redline.config import load_config

    config = load_config(sample)
    registry = AdapterRegistry(config.adapters_dir)
    versions = registry.versions()
    version = versions[-1] if versions else None
    gate_report = (registry.meta(version).get("gate") or {}) if version else {}
    gate_passed = gate_report.get("passed")
    adapter_dir = registry.path(version) if version else None
    done("train", t0)

    # 6. before / after with the world checker
    step(6, "before / after: pass rates with the world checker")
    t0 = time.perf_counter()
    held = repo.heldout_tasks[gate_tasks:gate_tasks + eval_tasks]
    unchanged = repo.unchanged_tasks[:eval_tasks]
    before = _evaluate(console, model_path, None, repo, held, unchanged, "base model")
    after = _evaluate(console, model_path, adapter_dir, repo, held, unchanged, f"base + adapter {version}")
    done("evaluate", t0)
    timings["total"] = round(time.perf_counter() - t_start, 1)

    _print_results(console, before, after, version, gate_passed, len(held), len(unchanged))
    report = workdir / "report.html"
    result = DemoResult(workdir, sample, report, _counts_summary(counts), version, gate_passed, before, after,
                        timings)
    write_report(report, result, repo.describe(), n_train, written, len(held), len(unchanged), settings)
    (workdir / "summary.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    console.print(f"\n[bold]report:[/] {report}")
    console.print(f"[dim]timings (s): {timings}[/]")
    if not keep:
        console.print(f"[dim]the demo directory is {workdir} (pass --keep DIR to choose where it goes)[/]")
    return result


def _write_and_record(console: Any, sample: Path, model_path: Path, repo: Any, files: dict[str, Any], *,
                      gate_ids: set[str]) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bench.world.evaluate import generate, load, max_new_tokens
    from bench.world.pretrain import WEIGHTS, sha256_file
    from redline.config import load_config
    from redline.ledger import record_generation
    from redline.queue import open_store
    from redline.records import Generation, Insertion, ModelRef, Prompt, Range

    config = load_config(sample)
    model, tokenizer = load(model_path)
    items = list(files.items())
    cap = max_new_tokens(tokenizer, repo, [t for _, t in items])
    weights = model_path / WEIGHTS
    ref = ModelRef(id="redline-world-tiny" if model_path.name == "model" else model_path.name,
                   revision=sha256_file(weights)[:12] if weights.exists() else None)
    store = open_store(config)
    batch = 32
    try:
        with Progress(TextColumn("    {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as bar:
            job = bar.add_task("generating + recording", total=len(items))
            for start in range(0, len(items), batch):
                chunk = items[start:start + batch]
                outs = generate(model, tokenizer, [t.prompt for _, t in chunk], max_new_tokens=cap)
                for (rel, task), (code, ids) in zip(chunk, outs, strict=True):
                    first = task.prompt.count("\n")  # 0-based line where the completion starts
                    n_lines = code.count("\n") + 1
                    gen = Generation(prompt_format="raw", prompt=Prompt(text=task.prompt), completion=code,
                                     model=ref, origin="agent", token_ids=ids,
                                     split="heldout" if task.id in gate_ids else None,
                                     sampling={"temperature": 0.0, "max_new_tokens": cap},
                                     insertion=Insertion(rel, Range(first, first + n_lines - 1, 0,
                                                                    len(code.split("\n")[-1]))),
                                     meta={"task_id": task.id, "demo": True})
                    (sample / rel).write_text(task.prompt + code + "\n", encoding="utf-8")
                    record_generation(store, config, gen)
                    bar.advance(job)
    finally:
        store.close()
    return len(items)


def _keep_unflagged(sample: Path) -> int:
    """`accept` for each generation nothing flagged: the developer kept that code as written. In an editor the
    language server records it (docs/editors.md); the demo has no editor, so it records the same through the core
    ledger, under its own source. Returns how many."""
    from redline.config import load_config
    from redline.ledger import record
    from redline.queue import open_store
    from redline.records import Feedback

    config = load_config(sample)
    store = open_store(config)
    try:
        kept = [Feedback(kind="accept", source="demo.kept", severity="info", generation_id=g.id,
                         message="kept as written, saved, no problem found")
                for g in store.generations(with_feedback=False)]
        return record(store, config, feedback=kept).feedback
    finally:
        store.close()


def _counts_summary(counts: dict[str, Any]) -> dict[str, Any]:
    keys = ("generations", "generations_with_feedback", "feedback", "attributed", "spans", "by_kind_source")
    return {k: counts.get(k) for k in keys}


def _print_counts(console: Any, counts: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(f"    redline status: {counts['generations']} generations, "
                  f"{counts['generations_with_feedback']} with feedback; {counts['feedback']} feedback records, "
                  f"[bold]{counts['attributed']} attributed[/], {counts['feedback'] - counts['attributed']} not")
    table = Table("kind", "source", "records", "attributed", title="feedback in the queue", title_justify="left")
    for row in counts["by_kind_source"]:
        table.add_row(row["kind"], row["source"], str(row["count"]), str(row["attributed"]))
    console.print(table)


def _evaluate(console: Any, model_path: Path, adapter: Path | None, repo: Any, held: list[Any],
              unchanged: list[Any], label: str) -> dict[str, float]:
    from bench.world.evaluate import pass_rate, passes

    with console.status(f"    {label}: new tasks, teacher ceiling, unchanged APIs …"):
        first = passes(model_path, adapter, repo, held, hindsight=True, with_first=True)
        out = {"heldout": sum(f for f, _ in first) / len(held),
               "teacher_ceiling": sum(c for _, c in first) / len(held),
               "unchanged": pass_rate(model_path, adapter, repo, unchanged)}
    console.print(f"    {label}: new tasks {out['heldout']:.2f}, unchanged {out['unchanged']:.2f}, "
                  f"with feedback in context {out['teacher_ceiling']:.2f}")
    return out


ROWS = (("heldout", "new tasks (held-out structures)"), ("unchanged", "unchanged APIs (forgetting)"),
        ("teacher_ceiling", "teacher ceiling (one retry with feedback)"))


def _print_results(console: Any, before: dict[str, float], after: dict[str, float], version: str | None,
                   gate_passed: bool | None, n_held: int, n_unchanged: int) -> None:
    from rich.table import Table

    table = Table("greedy pass rate", "before (base)", f"after (+{version})", "change",
                  title=f"before / after ({n_held} new tasks, {n_unchanged} unchanged-API tasks)",
                  title_justify="left")
    for key, label in ROWS:
        d = after[key] - before[key]
        color = "green" if d > 0 else "red" if d < 0 else "white"
        table.add_row(label, f"{before[key]:.2f}", f"{after[key]:.2f}", f"[{color}]{d:+.2f}[/]")
    console.print(table)
    gate = {True: "passed (promoted)", False: "refused (kept, not promoted)", None: "not run"}[gate_passed]
    console.print(f"    gate: {gate}")
    d = after["heldout"] - before["heldout"]
    if d > 0:
        console.print(f"    [bold green]the adapter solves {d:+.0%} more new tasks[/] "
                      f"(ceiling with feedback in context: {before['teacher_ceiling']:.0%})")
    else:
        console.print("    [bold yellow]no improvement on new tasks in this run[/] — try more --tasks or --max-steps")


def _chart_png(before: dict[str, float], after: dict[str, float]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["new tasks", "unchanged APIs"]
    keys = ["heldout", "unchanged"]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    xs = range(len(keys))
    ax.bar([x - 0.2 for x in xs], [before[k] for k in keys], 0.4, label="before (base model)", color="#999")
    ax.bar([x + 0.2 for x in xs], [after[k] for k in keys], 0.4, label="after (base + adapter)", color="#c0392b")
    ax.axhline(before["teacher_ceiling"], color="#2c3e50", ls="--", lw=1,
               label="teacher ceiling (base, feedback in context)")
    ax.set_xticks(list(xs), labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("greedy pass rate")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_report(path: Path, r: DemoResult, conventions: str, n_train: int, written: int, n_held: int,
                 n_unchanged: int, settings: dict[str, Any]) -> Path:
    from html import escape

    png = base64.b64encode(_chart_png(r.before, r.after)).decode()
    rows = "".join(f"<tr><td>{escape(label)}</td><td>{r.before[k]:.2f}</td><td>{r.after[k]:.2f}</td>"
                   f"<td>{r.after[k] - r.before[k]:+.2f}</td></tr>" for k, label in ROWS)
    kinds = "".join(f"<tr><td>{escape(row['kind'])}</td><td>{escape(row['source'])}</td><td>{row['count']}</td>"
                    f"<td>{row['attributed']}</td></tr>" for row in r.counts.get("by_kind_source") or [])
    shown = {k: v for k, v in settings.items() if k != "template"}
    gate = {True: "passed (promoted)", False: "refused (kept, not promoted)", None: "not run"}[r.gate_passed]
    html = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Redline demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:52em;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.3em .7em;text-align:right}}
td:first-child,th:first-child{{text-align:left}}code{{background:#f4f4f4;padding:0 .2em}}</style></head><body>
<h1>Redline demo: feedback → a better model</h1>
<p>Sample repository <code>{escape(str(r.sample))}</code>; conventions: {escape(conventions)}.</p>
<p>The base model wrote {written} task files ({n_train} for training). Their feedback went through
<code>pytest --redline</code> and <code>redline ci ingest</code>; <code>redline train</code> distilled it into
adapter <b>{escape(str(r.version))}</b>; gate: {escape(gate)}.</p>
<h2>Pass rates (world checker, greedy)</h2>
<img alt="pass rates before and after" src="data:image/png;base64,{png}">
<table><tr><th>greedy pass rate</th><th>before</th><th>after</th><th>change</th></tr>{rows}</table>
<p>{n_held} new tasks (API combinations never trained on), {n_unchanged} tasks on unchanged APIs.</p>
<h2>Feedback in the queue</h2>
<p>{r.counts.get('feedback')} feedback records, {r.counts.get('attributed')} attributed to
{r.counts.get('generations_with_feedback')} of {r.counts.get('generations')} generations.</p>
<table><tr><th>kind</th><th>source</th><th>records</th><th>attributed</th></tr>{kinds}</table>
<h2>Settings and timings</h2>
<p>train: <code>{escape(json.dumps(shown))}</code></p>
<p>seconds: <code>{escape(json.dumps(r.timings))}</code></p>
</body></html>
"""
    path.write_text(html, encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Redline's end-to-end demo")
    parser.add_argument("--tasks", type=int, default=DEFAULT_TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default=None)
    parser.add_argument("--max-steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    run_demo(tasks=args.tasks, seed=args.seed, keep=args.keep, max_steps=args.max_steps, model=args.model)
    return 0


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    sys.exit(main())


__all__ = ["DemoResult", "run_demo"]
