"""The plugin's writer process: failures in as JSON lines, one summary line out, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from redline.config import load_config
from redline.queue import open_store


def _sidecar(root: Path, stdin: bytes, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "redline.ci_hook.sidecar", str(root), "0"], input=stdin,
                          capture_output=True, env=env or dict(os.environ), check=False, timeout=120)


def _failure(nodeid: str, path: str, line: int) -> bytes:
    return json.dumps({"nodeid": nodeid, "when": "call", "location": [path, line, nodeid], "message": "boom",
                       "detail": "long report", "annotation": {"frames": [[path, line, "f"]]}}).encode() + b"\n"


def test_streamed_failures_are_queued_and_summarised(repo: Path, generation_at) -> None:
    gen = generation_at("pkg/calc.py", 3, 7)
    done = _sidecar(repo, _failure("t::a", str(repo / "pkg/calc.py"), 7) + _failure("t::b", "tests/x.py", 1))
    assert done.returncode == 0 and done.stderr == b""
    assert json.loads(done.stdout) == {"recorded": 2, "records": 2, "new": 2, "generations": 1, "unattributed": 1}
    store = open_store(load_config(repo))
    try:
        assert [f.rule for f in store.feedback_for(gen.id)] == ["t::a"]
    finally:
        store.close()


def test_no_failures_no_output(repo: Path) -> None:
    done = _sidecar(repo, b"")
    assert (done.returncode, done.stdout) == (0, b"")


def test_broken_queue_is_one_problem_line(repo: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    done = _sidecar(repo, _failure("t::a", "x.py", 1), env=dict(os.environ, REDLINE_HOME=str(blocker)))
    assert done.returncode == 0 and list(json.loads(done.stdout)) == ["problem"]


def test_garbage_line_is_a_problem_not_a_crash(repo: Path) -> None:
    done = _sidecar(repo, b"{not json\n")
    assert done.returncode == 0 and list(json.loads(done.stdout)) == ["problem"]
