"""World 2's checker as a command, so Redline can rerun it on a new answer the way it reruns a user's linter.

    python bench/world2/recheck.py world2-0-1 world2-0-1/train/17 < handlers.py

reads the answer (a chat answer is the whole module) on stdin and prints the checker's findings in ruff's JSON
format (`code` = the rule, or the finding's kind for rule-less failures and reviews; no location: each finding is
about the answer). `recipe(repo, task)` is the `redline.evidence.Recheck` the world's records carry; it runs this
file by its path, so it works from any directory (an imported queue's repository, the gate's).
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


def recipe(repo: Any, task: Any) -> Any:
    from redline.evidence import Recheck

    return Recheck((sys.executable, str(HERE), repo.id, task.id), "ruff-json", "world2 checker", stdin=True)


@cache
def _repo(repo_id: str) -> Any:
    from bench.world2.repos import make_repo

    _, seed, index = repo_id.split("-")
    return make_repo(int(index), int(seed))


def findings(repo_id: str, task_id: str, text: str) -> list[dict[str, object]]:
    from bench.world2.repos import check

    repo = _repo(repo_id)
    task = next(t for t in (*repo.train_tasks, *repo.heldout_tasks, *repo.unchanged_tasks) if t.id == task_id)
    return [{"code": f.rule or f.kind, "message": f.message, "location": None}
            for f in check(repo, task, text).findings]


def main(argv: list[str] | None = None) -> int:
    repo_id, task_id = (argv or sys.argv[1:])[:2]
    print(json.dumps(findings(repo_id, task_id, sys.stdin.read())))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[2]))
    raise SystemExit(main())
