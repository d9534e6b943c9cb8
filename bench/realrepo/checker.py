"""The checker: the repository's linter and its unit tests, run on an attempt the way CI would.

- lint (diagnostic / ruff): the repository's RL1xx rules over the whole file, reported in ruff's JSON shape
  (`rules.ruff_json`); a file that does not parse is one pytest collection error instead.
- tests (test_failure / pytest): the attempt's module really runs, in a child process (`harness.py`: isolated
  interpreter, its own working directory, environment reduced to TZ/PATH/HOME, a time and memory limit), beside
  the reference; the first failing case is reported as pytest would (message, detail, the test's id as `rule`).

`Finding.line` is 1-based in the completion (the world's convention); `row` is the file's row.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.realrepo.rules import lint, ruff_json
from bench.realrepo.tasks import Task
from bench.realrepo.util_source import util_source

if TYPE_CHECKING:
    from bench.realrepo.repos import Repo

HARNESS = Path(__file__).with_name("harness.py")
TIMEOUT_S = 10.0
MEMORY_BYTES = 1 << 30


@dataclass(frozen=True)
class Finding:
    kind: str  # test_failure | diagnostic
    source: str  # pytest | ruff
    message: str
    detail: str | None = None
    severity: str = "error"
    rule: str | None = None  # the lint code, or the test's id
    line: int | None = None  # 1-based line in the completion
    path: str | None = None
    row: int | None = None  # 1-based row in the file
    end_row: int | None = None
    col: int | None = None
    end_col: int | None = None


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    findings: tuple[Finding, ...] = ()
    #: the linter's report, as `ruff check --output-format json` would print it
    ruff: tuple[dict[str, Any], ...] = ()

    @property
    def lint_codes(self) -> tuple[str, ...]:
        return tuple(f.rule for f in self.findings if f.kind == "diagnostic" and f.rule)

    @property
    def tests_passed(self) -> bool:
        return not any(f.kind == "test_failure" for f in self.findings)

    @property
    def feedback_kind(self) -> str:
        return self.findings[0].kind if self.findings else "accept"

    @property
    def source(self) -> str:
        return self.findings[0].source if self.findings else "pytest"

    @property
    def message(self) -> str:
        return self.findings[0].message if self.findings else "all checks passed"

    @property
    def detail(self) -> str | None:
        return self.findings[0].detail if self.findings else None


def completion_line(task: Task, row: int | None) -> int | None:
    """The 1-based completion line of a file row (the completion starts on the prompt's last row, the docstring's)."""
    if row is None:
        return None
    line = row - task.prompt.count("\n")
    return line if line >= 1 else None


def check(repo: Repo, task: Task, code: str) -> CheckResult:
    """Lint and test `code`, the model's completion of `task.prompt`."""
    source = task.module_source(code)
    try:
        violations = lint(source, repo.names, repo.rules)
    except SyntaxError as exc:
        row = exc.lineno
        text = (exc.text or "").strip()
        f = Finding("test_failure", "pytest", f"ERROR collecting tests/test_{task.spec.module}.py: SyntaxError: "
                    f"{exc.msg}", detail=f"{task.path}:{row}: {text}" if text else None, rule=task.test_id,
                    line=completion_line(task, row), path=task.path, row=row)
        return CheckResult(False, (f,))
    rows = ruff_json(violations, task.path)
    lint_findings = [Finding("diagnostic", "ruff", v.message, rule=v.code, line=completion_line(task, v.row),
                             path=task.path, row=v.row, end_row=v.end_row, col=v.col, end_col=v.end_col)
                     for v in violations]
    test = run_tests(repo, task, source)
    findings = ([test] if test is not None else []) + lint_findings
    return CheckResult(not findings, tuple(findings), tuple(rows))


def run_tests(repo: Repo, task: Task, source: str) -> Finding | None:
    """The task's unit tests on the module `source`; None when they pass."""
    with tempfile.TemporaryDirectory(prefix="realrepo-") as work:
        job = {"work": work, "util": util_source(repo.names), "module": task.spec.module, "name": task.spec.name,
               "reference": task.module_source(task.solution()), "attempt": source,
               "cases": list(task.spec.cases), "compare": task.spec.compare, "test_id": task.test_id}
        try:
            proc = subprocess.run([sys.executable, "-I", "-S", str(HARNESS)], input=json.dumps(job), text=True,
                                  capture_output=True, timeout=TIMEOUT_S, cwd=work, env={"TZ": "UTC"},
                                  preexec_fn=_limits)
        except subprocess.TimeoutExpired:
            return Finding("test_failure", "pytest", f"Failed: Timeout (>{TIMEOUT_S:.1f}s) from pytest-timeout.",
                           rule=task.test_id, path=task.path)
    _, marker, tail = proc.stdout.rpartition("@@RESULT@@")
    if not marker:
        return Finding("test_failure", "pytest", f"the test process exited with code {proc.returncode}",
                       detail=proc.stderr.strip()[-400:] or None, rule=task.test_id, path=task.path)
    result = json.loads(tail)
    if "error" in result:
        raise RuntimeError(f"{task.id}: {result['error']}")
    if result["passed"]:
        return None
    fail = result["failure"]
    return Finding("test_failure", "pytest", fail["message"], detail=fail.get("detail"), rule=task.test_id,
                   line=completion_line(task, fail.get("row")), path=task.path, row=fail.get("row"))


def _limits() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (int(TIMEOUT_S), int(TIMEOUT_S) + 1))
