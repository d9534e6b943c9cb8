"""How much does the Redline pytest plugin slow a test run?

Generates a project of model-written code (one recorded generation per function, as the language server would
record them) and a 2,000-test suite over it where 10% of the tests fail (half inside the generated code, half on
a wrong result), then times whole `pytest` runs without the plugin (`-p no:redline`) and with it (`--redline`),
interleaved in pairs (each arm first in every other pair). Goal: ≤ 1.03, read on the median of the per-pair
ratios: on a shared machine the same run varies by a third from one minute to the next, and the ratio of the
best times is printed beside it but hangs on one lucky run. CPU time (user + system of pytest and its
children, including the plugin's writer process, from `getrusage`) is printed too: it is what the plugin costs
in total, most of it on another core while the tests run.

`--edit-spans K` makes it a real git repository, records the spans at its commit and then has a human add a line
inside K of the generated functions (so attribution maps them through `git diff`); `--trace` adds
`--redline-trace` (coverage of the generated files per test) to the plugin's runs.

    python bench/pytest_overhead.py [--tests 2000] [--fail-rate 0.1] [--repeat 5] [--xdist N] [--edit-spans K]
                                    [--trace]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redline.config import load_config
from redline.ledger import record
from redline.queue import open_store
from redline.records import Generation, Insertion, ModelRef, Prompt, Range

PER_MODULE = 20
#: plugins installed in the dev venv that neither run needs; off in both so they do not dilute the ratio
LEAN = ["-p", "no:hypothesispytest", "-p", "no:pytest-lsp", "-p", "no:asyncio", "-p", "no:anyio",
        "-p", "no:cacheprovider"]


def function_source(i: int) -> str:
    return (
        f"def f{i}(x):\n"
        f"    total = 0\n"
        f"    for k in range(x % 7 + 3):\n"
        f"        total += k * {i % 13 + 1}\n"
        f"    if x < 0:\n"
        f"        return total // (x - x)\n"
        f"    return total\n"
    )


def expected(i: int, x: int) -> int:
    return sum(k * (i % 13 + 1) for k in range(x % 7 + 3))


def generate(root: Path, n_tests: int, fail_rate: float) -> int:
    """Write the project; returns the number of tests meant to fail."""
    (root / "gen").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "gen" / "__init__.py").write_text("")
    (root / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    every = round(1 / fail_rate) if fail_rate else 0
    failing = 0
    for m in range(0, n_tests, PER_MODULE):
        ids = range(m, min(m + PER_MODULE, n_tests))
        (root / "gen" / f"mod{m // PER_MODULE}.py").write_text("\n\n".join(function_source(i) for i in ids))
        lines = [f"from gen.mod{m // PER_MODULE} import " + ", ".join(f"f{i}" for i in ids), ""]
        for i in ids:
            fails = bool(every) and i % every == every - 1
            failing += fails
            if fails and (i // every) % 2:
                lines += [f"def test_{i}():", f"    assert f{i}(-1) == 0", ""]  # raises inside generated code
            elif fails:
                lines += [f"def test_{i}():", f"    assert f{i}({i}) == {expected(i, i) + 1}", ""]
            else:
                lines += [f"def test_{i}():", f"    assert f{i}({i}) == {expected(i, i)}", ""]
        (root / "tests" / f"test_mod{m // PER_MODULE}.py").write_text("\n".join(lines))
    return failing


def git_commit(root: Path) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="b@example.com", GIT_COMMITTER_NAME="Bench",
               GIT_COMMITTER_EMAIL="b@example.com", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_SYSTEM=os.devnull)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "model-written code"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def edit_spans(root: Path, n_tests: int, count: int) -> int:
    """The human adds a line inside `count` generated functions spread over the modules; returns how many."""
    ids = list(range(0, n_tests, max(1, n_tests // count)))[:count] if count else []
    for i in sorted(ids, reverse=True):
        path = root / "gen" / f"mod{i // PER_MODULE}.py"
        lines = path.read_text().splitlines(keepends=True)
        at = (i % PER_MODULE) * 9 + 2  # after `total = 0`
        lines.insert(at, "    total += 0  # a human's line\n")
        path.write_text("".join(lines))
    return len(ids)


def record_spans(root: Path, n_tests: int, commit: str | None = None) -> int:
    """One generation per generated function, with the span where it was inserted (at `commit`, when given)."""
    config = load_config(root)
    generations = []
    for m in range(0, n_tests, PER_MODULE):
        path = f"gen/mod{m // PER_MODULE}.py"
        for j, i in enumerate(range(m, min(m + PER_MODULE, n_tests))):
            start = j * 9  # 7 lines per function + 2 blank lines between
            gen = Generation(prompt_format="fim", prompt=Prompt(prefix=f"# {path}\n", suffix=""),
                             completion=function_source(i), model=ModelRef("bench-model"),
                             insertion=Insertion(path, Range(start, start + 7), commit=commit))
            generations.append(gen)
    store = open_store(config)
    try:
        record(store, config, generations=generations)
    finally:
        store.close()
    return len(generations)


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child processes, stdout) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        sys.exit(f"pytest failed to run ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--fail-rate", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--xdist", type=int, default=0, help="also pass -n N")
    parser.add_argument("--edit-spans", type=int, default=0, help="a human edits inside K generated functions")
    parser.add_argument("--trace", action="store_true", help="the plugin runs with --redline-trace")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="redline-bench-") as tmp:
        root = Path(tmp) / "project"
        home = Path(tmp) / "home"
        env = dict(os.environ, REDLINE_HOME=str(home))
        env.pop("REDLINE", None)
        os.environ["REDLINE_HOME"] = str(home)
        failing = generate(root, args.tests, args.fail_rate)
        n_gen = record_spans(root, args.tests, git_commit(root))
        edited = edit_spans(root, args.tests, args.edit_spans)
        db = load_config(root).db_path
        pristine = db.with_name("pristine.sqlite3")
        shutil.copy(db, pristine)

        base = [sys.executable, "-m", "pytest", "-q", *LEAN]
        if args.xdist:
            base += ["-n", str(args.xdist)]
        off, on = [*base, "-p", "no:redline"], [*base, "--redline", *(["--redline-trace"] if args.trace else [])]
        print(f"{args.tests} tests ({failing} failing) over {n_gen} recorded generations, {edited} edited by a human"
              f"{', traced' if args.trace else ''}; "
              f"{args.repeat} interleaved runs each{f', -n {args.xdist}' if args.xdist else ''}")
        timed(off, root, env)  # warm the file cache and bytecode
        runs: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
        summary = ""
        for k in range(args.repeat):
            for suffix in ("-wal", "-shm", ""):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            shutil.copy(pristine, db)  # every plugin run records into the same starting queue
            for arm in (("without", "with") if k % 2 == 0 else ("with", "without")):  # neither always goes second
                if arm == "without":
                    runs["without"].append(timed(off, root, env)[:2])
                    continue
                *measured, out = timed(on, root, env)
                runs["with"].append((measured[0], measured[1]))
                summary = next((line for line in out.splitlines() if line.startswith("redline:")), "(no summary)")
        for name, values in runs.items():
            wall, cpu = [v[0] for v in values], [v[1] for v in values]
            print(f"{name + ' plugin:':16} wall best {min(wall):.2f}s median {statistics.median(wall):.2f}s | "
                  f"cpu best {min(cpu):.2f}s median {statistics.median(cpu):.2f}s")
        print(f"plugin said:    {summary}")
        for i, kind in enumerate(("wall", "cpu")):
            best = min(v[i] for v in runs["with"]) / min(v[i] for v in runs["without"])
            paired = statistics.median(w[i] / o[i] for w, o in zip(runs["with"], runs["without"], strict=True))
            print(f"ratio {kind}: best/best {best:.3f}  median of pairs {paired:.3f}")


if __name__ == "__main__":
    main()
