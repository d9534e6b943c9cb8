"""`redline demo` (bench/demo.py): the sample repository's checks, and a small end-to-end run."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import pytest

from bench.demo import SampleChecks, human_code, write_redline_toml
from bench.world import HINDSIGHT_TEMPLATE, make_repos


def _sample(tmp_path: Path, code_of) -> tuple[SampleChecks, str, object]:  # type: ignore[no-untyped-def]
    repo = make_repos(1, 0)[0]
    task = next(t for t in repo.train_tasks if set(t.structure) & repo.changed)
    (tmp_path / "tasks").mkdir()
    rel = "tasks/t000.py"
    (tmp_path / rel).write_text(task.prompt + code_of(repo, task) + "\n", encoding="utf-8")
    (tmp_path / "world.json").write_text(json.dumps({"seed": 0, "index": 0, "files": {rel: task.id}}))
    return SampleChecks(tmp_path), rel, task


def _default_code(repo, task) -> str:  # type: ignore[no-untyped-def]
    """The task's solution under the default conventions: what the base model writes."""
    return task.solution({}).rstrip("\n")


def test_failing_check_is_raised_from_the_generated_line(tmp_path: Path) -> None:
    checks, rel, task = _sample(tmp_path, _default_code)
    failing = checks.failing(rel)
    cases = checks.cases()
    if not failing:
        assert cases == [(rel, None)]
        pytest.skip("this task's default code only draws lint/review findings")
    assert cases == [(rel, 0)] and checks.case_id(cases[0]) == Path(rel).stem  # one test per file, a stable id
    with pytest.raises(Exception) as info:
        checks.run_case(rel, 0)
    innermost = traceback.extract_tb(info.value.__traceback__)[-1]
    assert innermost.filename == str(tmp_path / rel)
    assert innermost.lineno == checks.file_line(rel, failing[0])
    first_code_line = task.prompt.count("\n") + 1
    assert first_code_line <= innermost.lineno <= first_code_line + _default_code(None, task).count("\n")
    assert failing[0].message.split(": ", 1)[-1].split("\n")[0] in str(info.value)


def test_passing_code_gives_one_passing_case_and_empty_reports(tmp_path: Path) -> None:
    checks, rel, _ = _sample(tmp_path, lambda repo, task: repo.solution(task).rstrip("\n"))
    assert checks.findings(rel) == ()
    assert checks.cases() == [(rel, None)]
    checks.run_case(rel, None)
    ruff, review, n_lint, n_review = checks.reports("reports")
    assert (n_lint, n_review) == (0, 0)
    assert json.loads(ruff.read_text()) == [] and json.loads(review.read_text()) == []


def test_reports_are_parsed_by_redline_ci_ingest(tmp_path: Path) -> None:
    from redline.ci_hook.ingest import github, ruff_json

    repo = make_repos(1, 0)[0]
    task = next(t for t in repo.train_tasks if set(t.structure) & repo.changed)
    checks, rel, _ = _sample(tmp_path, _default_code)
    ruff, review, n_lint, n_review = checks.reports(tmp_path / "reports")
    lint_fb = ruff_json.parse(ruff, tmp_path)
    review_fb = github.parse(review, tmp_path)
    assert len(lint_fb) == n_lint and len(review_fb) == n_review
    for fb in (*lint_fb, *review_fb):
        assert fb.path == rel and fb.range is not None
        assert fb.range.start_line >= task.prompt.count("\n")  # on the generated code, not the prompt comment


def test_redline_toml_round_trips_the_template(tmp_path: Path) -> None:
    from redline.config import load_config

    (tmp_path / ".git").mkdir()
    write_redline_toml(tmp_path / "redline.toml", Path("/m"), {"hindsight": "template",
                                                               "template": HINDSIGHT_TEMPLATE, "lr": 0.002})
    config = load_config(tmp_path)
    assert config.model == "/m" and config.heldout_fraction == 0
    assert config.train["template"] == HINDSIGHT_TEMPLATE and config.train["lr"] == 0.002


def test_human_code_is_the_repos_conventions() -> None:
    repo = make_repos(1, 0)[0]
    files = human_code(repo, repo.train_tasks[:3])
    assert sorted(files) == ["src/pipelines/p00.py", "src/pipelines/p01.py", "src/pipelines/p02.py"]
    for text in files.values():
        compile(text, "p.py", "exec")
    assert repo.solution(repo.train_tasks[0]).strip() in files["src/pipelines/p00.py"]


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path, redline_home: Path, world_model: Path) -> None:
    from rich.console import Console

    from bench.demo import run_demo

    model = world_model
    console = Console(file=sys.stderr, width=120)
    result = run_demo(tasks=8, seed=0, keep=tmp_path / "demo", max_steps=2, model=model, eval_tasks=8,
                      gate_tasks=4, console=console)
    by = {(r["kind"], r["source"]): r for r in result.counts["by_kind_source"]}
    pytest_rows = by.get(("test_failure", "pytest"))
    assert pytest_rows is not None and pytest_rows["attributed"] >= 1, result.counts
    assert result.counts["attributed"] == result.counts["feedback"]  # every finding lands on its generation
    assert result.counts["generations"] == 8 + 4
    # what nothing flagged was kept as written: every generation has feedback, an accept only where nothing else
    assert result.counts["generations_with_feedback"] == result.counts["generations"]
    assert result.version == "v0001"
    assert result.gate_passed in (True, False)
    assert result.report.is_file() and "data:image/png;base64," in result.report.read_text()
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert set(summary["before"]) == {"heldout", "unchanged", "teacher_ceiling"}
    # the demo keeps its queue inside the sample repository, never in the user's Redline home
    assert (result.sample / ".redline" / "queue.sqlite3").is_file()
    assert not list(redline_home.rglob("queue.sqlite3"))
