"""How long does attribution take after human edits, and is it right?

For each file size (lines) and number of edited spans, writes a git repository with one Python file of small
functions, records one span per chosen function at the commit (as a front-end that knows the commit does),
and times attributing a batch of findings to generations:

* `before`: the file as committed (no human edit);
* `after`: the human added 3 lines at the top of the file and one line inside each edited span.

Findings: one on the last line of each recorded span (the model's `return total`, moved by the human's lines)
and, after edits, one on each human line inside a span. Correct = attributed to the generation that wrote the
line, and not attributed when a human wrote it.

Engines, side by side in the same run:
* `engine`: `redline.attribution.Attributor` (one per batch: git diff per file, windowed fallback);
* `no-git`: the same engine when history cannot say (spans without a commit): its windowed content fallback;
* `baseline`: the engine this replaced (re-anchoring each span by text for every finding, with a whole-file
  difflib search when the text changed), copied below verbatim. It is given a time budget per cell; when it
  runs out, the cell prints `>budget` with how many findings it got through.

    python bench/attribution.py [--sizes 1000 5000 20000] [--edited 1 10] [--budget 60]

Goal (issue "Harvest on a real project"): ≤ 3 s for 5k lines with 10 edited spans, linear in file size.
"""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redline.attribution import Attributor, read_text
from redline.config import load_config
from redline.ledger import record
from redline.queue import open_store
from redline.queue.store import Store
from redline.records import Range, Span

FUNC_LINES = 9  # 7 lines of code + 2 blank lines
HUMAN = "        total += 0  # the human's line"


def function_source(i: int) -> list[str]:
    return [f"def f{i}(x):", "    total = 0", "    for k in range(x % 7 + 3):",
            f"        total += k * {i % 13 + 1}", "    if x < 0:", "        return total // (x - x)",
            "    return total", "", ""]


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="b@example.com", GIT_COMMITTER_NAME="Bench",
               GIT_COMMITTER_EMAIL="b@example.com", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_SYSTEM=os.devnull)
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def setup(root: Path, n_lines: int, n_spans: int) -> tuple[Store, list[int], str]:
    """Repo with `big.py` of about `n_lines` lines; spans on `n_spans` functions spread through it."""
    n_funcs = max(n_spans, n_lines // FUNC_LINES)
    lines = [line for i in range(n_funcs) for line in function_source(i)]
    root.mkdir(parents=True)
    (root / "big.py").write_text("\n".join(lines) + "\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "start")
    commit = _git(root, "rev-parse", "HEAD")
    chosen = [round((k + 0.5) * n_funcs / n_spans) for k in range(n_spans)]
    config = load_config(root)
    store = open_store(config)
    for i in chosen:
        start = i * FUNC_LINES
        record(store, config, spans=[Span(f"gen-{i}", "big.py", Range(start, start + 7),
                                          "\n".join(function_source(i)[:7]) + "\n", commit=commit)])
    return store, chosen, "\n".join(lines) + "\n"


def edit(root: Path, text: str, chosen: list[int]) -> list[tuple[int, str | None]]:
    """The human's edits; returns the findings (0-based line, the generation that wrote it or None)."""
    lines = text.splitlines()
    for i in sorted(chosen, reverse=True):
        lines.insert(i * FUNC_LINES + 4, HUMAN)  # inside the span, after `total += k * …`
    lines = ["import os", "import sys", "", *lines]
    (root / "big.py").write_text("\n".join(lines) + "\n")
    findings: list[tuple[int, str | None]] = []
    for line_no, line in enumerate(lines):
        if line == HUMAN:
            findings.append((line_no, None))
    for rank, i in enumerate(sorted(chosen)):
        # function i moved down by 3 + the human lines inserted in spans above it, then its own
        findings.append((3 + i * FUNC_LINES + rank + 1 + 6, f"gen-{i}"))
    return findings


def unedited_findings(chosen: list[int]) -> list[tuple[int, str | None]]:
    return [(i * FUNC_LINES + 6, f"gen-{i}") for i in chosen]


# --- the engine this replaced (redline/attribution.py before the history engine), verbatim -----------------------

FUZZY_MIN_RATIO = 0.75


def old_locate(span_text: str, file_text: str, hint_line: int) -> tuple[Range, str] | None:
    want = [line.rstrip() for line in span_text.splitlines()] or [""]
    lines = [line.rstrip() for line in file_text.splitlines()]
    n = len(want)
    if lines[hint_line:hint_line + n] == want:
        return Range(hint_line, hint_line + n), "exact"
    starts = [i for i in range(len(lines) - n + 1) if lines[i] == want[0] and lines[i:i + n] == want]
    if starts:
        best = min(starts, key=lambda i: abs(i - hint_line))
        return Range(best, best + n), "reanchored"
    if n == 0 or not lines:
        return None
    target = "\n".join(want)
    best_ratio, best_start = 0.0, -1
    for i in range(max(1, len(lines) - n + 1)):
        matcher = difflib.SequenceMatcher(None, target, "\n".join(lines[i:i + n]), autojunk=False)
        if matcher.real_quick_ratio() < FUZZY_MIN_RATIO or matcher.quick_ratio() < FUZZY_MIN_RATIO:
            continue
        ratio = matcher.ratio()
        if ratio > best_ratio or (ratio == best_ratio and abs(i - hint_line) < abs(best_start - hint_line)):
            best_ratio, best_start = ratio, i
    if best_ratio >= FUZZY_MIN_RATIO:
        return Range(best_start, min(best_start + n, len(lines))), "fuzzy"
    return None


def old_attribute(store: Store, path: str, line: int, file_text: str) -> str | None:
    best = None
    for span in store.spans_for_path(path):
        where = old_locate(span.text, file_text, span.range.start_line)
        if where is not None and where[0].overlaps_lines(line, line):
            if best is None or where[1] == "exact":
                best = span.generation_id
    return best


# --- timing -----------------------------------------------------------------------------------------------------


def run_engine(store: Store, root: Path, findings: list[tuple[int, str | None]], *,
               history: bool = True) -> tuple[float, int]:
    start = time.perf_counter()
    engine = Attributor(store, root, history=history)
    got = [(m[0].generation_id if (m := engine.attribute("big.py", line)) else None) for line, _ in findings]
    elapsed = time.perf_counter() - start
    return elapsed, sum(g == want for g, (_, want) in zip(got, findings, strict=True))


def run_baseline(store: Store, root: Path, findings: list[tuple[int, str | None]],
                 budget: float) -> tuple[float, int, int]:
    start = time.perf_counter()
    text = read_text(root / "big.py") or ""
    right = done = 0
    for line, want in findings:
        right += old_attribute(store, "big.py", line, text) == want
        done += 1
        if time.perf_counter() - start > budget:
            break
    return time.perf_counter() - start, right, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--edited", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds the baseline may take per cell")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()

    print(f"{'lines':>6} {'spans':>5} {'state':>6} {'findings':>8} | {'engine s':>8} {'right':>7} | "
          f"{'no-git s':>8} {'right':>7} | {'baseline s':>11} {'right':>7}")
    with tempfile.TemporaryDirectory(prefix="redline-bench-attr-") as tmp:
        os.environ["REDLINE_HOME"] = str(Path(tmp) / "home")
        for n_lines in args.sizes:
            for n_spans in args.edited:
                root = Path(tmp) / f"r{n_lines}-{n_spans}"
                store, chosen, text = setup(root, n_lines, n_spans)
                try:
                    for state in ("before", "after"):
                        findings = unedited_findings(chosen) if state == "before" else edit(root, text, chosen)
                        seconds, right = run_engine(store, root, findings)
                        cells = f"{seconds:8.3f} {right:>3}/{len(findings):<3}"
                        seconds, right = run_engine(store, root, findings, history=False)
                        cells += f" | {seconds:8.3f} {right:>3}/{len(findings):<3}"
                        base = "-"
                        if not args.no_baseline:
                            b_s, b_right, b_done = run_baseline(store, root, findings, args.budget)
                            base = (f"{b_s:11.3f} {b_right:>3}/{len(findings):<3}" if b_done == len(findings)
                                    else f"{'>' + format(args.budget, 'g'):>11} ({b_done}/{len(findings)} done)")
                        print(f"{n_lines:>6} {n_spans:>5} {state:>6} {len(findings):>8} | {cells} | {base}",
                              flush=True)
                finally:
                    store.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
