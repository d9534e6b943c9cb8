"""Findings on served code reach the generation that wrote it, with no language server in the loop (issue #26).

A real `redline serve` over the world's tiny code model answers a completion plugin's requests (the file's text
before the cursor and its path); each answer is written verbatim into its file between human-written code; real
ruff lints the tree; `redline ci ingest` takes its JSON report. Every finding on a line the model wrote is
attributed to that completion's generation, none on a line the human wrote, and the spans found are tracked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from redline.queue import open_store
from tests.serve.conftest import REDLINE, World, start, stop

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
HEAD = "import os\n\n\n"  # F401: an unused import the human wrote
TAIL = "\n\ndef check(value):\n    return value == None\n"  # E711: a comparison the human wrote


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, dict[str, tuple[str, int, int]]]:
    from bench.world import make_repos

    root = tmp_path_factory.mktemp("served")
    model = ROOT / "bench" / "world" / "model"
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "redline.toml").write_text(f'model = "{model}"\n', encoding="utf-8")
    world = World(repo, root / "home", model)
    proc = start(["serve", "--port", "0"], world, ready="redline serve:")
    info = json.loads((world.config.state_dir / "serve.json").read_text())
    where: dict[str, tuple[str, int, int]] = {}  # path → (generation id, first and last line the model wrote)
    try:
        for i, task in enumerate(make_repos(1)[0].train_tasks[:6]):
            path = f"src/task{i}.py"
            prefix = HEAD + task.prompt
            r = httpx.post(f"http://127.0.0.1:{info['port']}/v1/completions", timeout=120,
                           json={"prompt": prefix, "max_tokens": 96, "temperature": 0, "path": path})
            assert r.status_code == 200, r.text
            completion = r.json()["choices"][0]["text"]
            (repo / path).write_text(prefix + completion.rstrip("\n") + "\n" + TAIL, encoding="utf-8")
            first = prefix.count("\n")
            where[path] = (r.headers["X-Redline-Generation"], first, first + completion.rstrip("\n").count("\n"))
    finally:
        stop(proc)
    return world, where


def test_every_finding_on_served_code_is_attributed_and_none_on_the_humans(
        written: tuple[World, dict[str, tuple[str, int, int]]]) -> None:
    world, where = written
    report = world.repo / "ruff.json"
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "json",
                           "--select", "F401,F821,E711", "src"], cwd=world.repo, capture_output=True, text=True)
    report.write_text(lint.stdout, encoding="utf-8")
    rows = json.loads(lint.stdout)
    done = subprocess.run([*REDLINE, "ci", "ingest", str(report)], cwd=world.repo, env=world.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    store = open_store(world.config)
    try:
        recorded = list(store.feedback())
        spans = {p: store.spans_for_path(p) for p in where}
    finally:
        store.close()
    assert len(recorded) == len(rows)
    model_lines = human_lines = 0
    for fb in recorded:
        assert fb.path is not None and fb.range is not None
        gid, first, last = where[fb.path]
        if first <= fb.range.start_line <= last:
            model_lines += 1
            assert fb.generation_id == gid, (fb.path, fb.range, fb.message)
        else:
            human_lines += 1
            assert fb.generation_id is None, (fb.path, fb.range, fb.message)
    assert model_lines >= 3 and human_lines >= 2 * len(where)  # the world's API names are undefined here: F821
    for path, (gid, first, last) in where.items():
        assert [(s.generation_id, s.range.start_line, s.range.end_line - 1) for s in spans[path]] == \
            [(gid, first, last)]
