"""The repository's checks as one command, so Redline can rerun them on a new answer (`redline.evidence.Recheck`).

    python bench/realrepo/recheck.py realrepo-0-0 realrepo-0-0/train/count_orders < app/inventory.py

reads the task's file (its prompt followed by an answer) on stdin, runs the repository's linter and the task's unit
tests (`checker.check`) and prints the findings in ruff's JSON format: the linter's own rows (with their file
locations), and a failing test as a row whose `code` is the test's id and whose location is the failing line, or
none (about the whole file). `recipe(repo, task)` is the recipe the repository's records carry; it runs this file
by its path, so it works from any directory (an imported queue's repository, the trainer's probe, the gate).
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
TOOL = "realrepo checks"


def recipe(repo: Any, task: Any) -> Any:
    from redline.evidence import Recheck

    return Recheck((sys.executable, str(HERE), repo.id, task.id), "ruff-json", TOOL, stdin=True)


@cache
def _repo(repo_id: str) -> Any:
    from bench.realrepo.repos import make_repo

    name, seed, index = repo_id.rsplit("-", 2)
    if name != "realrepo":
        raise ValueError(f"not a realrepo repository id: {repo_id!r}")
    return make_repo(int(index), int(seed))


def findings(repo_id: str, task_id: str, text: str) -> list[dict[str, Any]]:
    """The checks' findings on `text` (the task's file: its prompt and an answer), as ruff JSON rows."""
    from bench.realrepo.checker import check

    repo = _repo(repo_id)
    task = repo.task(task_id)
    answer = text[len(task.prompt):] if text.startswith(task.prompt) else text
    result = check(repo, task, answer)
    rows: list[dict[str, Any]] = list(result.ruff)
    for f in result.findings:
        if f.kind == "test_failure":
            location = {"row": f.row, "column": f.col or 1} if f.row is not None else None
            rows.append({"code": f.rule, "message": f.message, "filename": task.path, "location": location,
                         "end_location": location, "fix": None})
    return rows


def main(argv: list[str] | None = None) -> int:
    repo_id, task_id = (argv if argv is not None else sys.argv[1:])[:2]
    print(json.dumps(findings(repo_id, task_id, sys.stdin.read())))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[2]))
    raise SystemExit(main())
