"""Record factories and small helpers shared by the tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from redline.records import Feedback, Generation, Insertion, Message, ModelRef, Prompt, Range


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed author and no user or system config; its stdout, stripped."""
    env = dict(os.environ, GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="d@example.com", GIT_COMMITTER_NAME="Dev",
               GIT_COMMITTER_EMAIL="d@example.com", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_SYSTEM=os.devnull)
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def queued_feedback(root: Path) -> list[Feedback]:
    """Every feedback record in the queue of the repository at `root`."""
    from redline.config import load_config
    from redline.queue import open_store

    store = open_store(load_config(root))
    try:
        return list(store.feedback())
    finally:
        store.close()


def make_generation(i: int = 0, *, path: str | None = None, start: int = 0, completion: str | None = None,
                    repo_id: str = "test/repo") -> Generation:
    text = completion if completion is not None else f"def f{i}(x):\n    return x + {i}\n"
    insertion = None
    if path is not None:
        insertion = Insertion(path=path, range=Range(start, start + text.count("\n")))
    return Generation(
        prompt_format="chat",
        prompt=Prompt(messages=[Message("system", "You write Python."), Message("user", f"write f{i} ✓")]),
        completion=text,
        model=ModelRef("tiny-llama", "r1"),
        repo_id=repo_id,
        sampling={"temperature": 0.2, "top_p": 0.95},
        token_ids=[1, 2, 3],
        token_logprobs=[-0.1, -0.2, -0.3],
        insertion=insertion,
        meta={"task": i},
    )


def make_feedback(generation_id: str | None, i: int = 0, **kw: object) -> Feedback:
    fields: dict[str, object] = {
        "kind": "test_failure", "source": "pytest", "message": f"AssertionError: f{i}(1) == {i + 2}",
        "detail": "Traceback (most recent call last):\n  ...", "generation_id": generation_id,
    }
    fields.update(kw)
    return Feedback(**fields)  # type: ignore[arg-type]


def stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """Terminate a server process the test started; kill it if it does not go within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
