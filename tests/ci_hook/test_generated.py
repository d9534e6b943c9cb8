"""Finding generated code: AI-commit trailers with git blame as a low-trust hint, never an attribution."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from redline.ci_hook.generated import BlameHints, agent_of_commit
from redline.ci_hook.ingest import ingest_files

CLAUDE = "Add safe_eval\n\nCo-Authored-By: Claude <noreply@anthropic.com>\n"


@pytest.mark.parametrize(("author", "message", "agent"), [
    ("Ann", CLAUDE, "claude"),
    ("Ann", "fix\n\nCo-authored-by: Copilot <175728472+Copilot@users.noreply.github.com>", "copilot"),
    ("Ann (aider)", "feat: add parser", "aider"),
    ("Ann", "fix\n\nco-authored-by: openai-codex <codex@openai.com>", "codex"),
    ("Ann", "fix\n\nCo-authored-by: Bob <bob@example.com>", None),
    ("Ann", "Mention Claude in prose only", None),
])
def test_agent_of_commit(author: str, message: str, agent: str | None) -> None:
    assert agent_of_commit(author, message) == agent


def _git(repo: Path, *args: str, author: str = "Dev") -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME=author, GIT_AUTHOR_EMAIL="dev@example.com", GIT_COMMITTER_NAME="Dev",
               GIT_COMMITTER_EMAIL="dev@example.com", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_SYSTEM=os.devnull)
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


@pytest.fixture
def git_repo(repo: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    shutil.rmtree(repo / ".git")
    calc = repo / "pkg" / "calc.py"
    text = calc.read_text()
    head, tail = text.split("def safe_eval", 1)
    calc.write_text(head)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "human start")
    calc.write_text(head + "def safe_eval" + tail)
    _git(repo, "commit", "-q", "-am", CLAUDE)
    return repo


def test_blame_hints_mark_lines_from_agent_commits(git_repo: Path) -> None:
    hints = BlameHints(git_repo)
    hint = hints.hint("pkg/calc.py", 16)
    assert hint is not None and hint["agent"] == "claude" and hint["trust"] == "low"
    assert hints.hint("pkg/calc.py", 0) is None
    assert hints.hint("no/such/file.py", 0) is None


def test_ingest_adds_hints_without_attributing(git_repo: Path, sample, store, config) -> None:
    ingest_files(store, config, [sample("ruff.json")])
    by_rule = {f.rule: f for f in store.feedback()}
    assert by_rule["S307"].generation_id is None
    assert by_rule["S307"].meta["generated_hint"]["agent"] == "claude"
    assert "generated_hint" not in by_rule["F401"].meta


def test_no_git_no_hints(repo: Path) -> None:
    hints = BlameHints(repo / "pkg")
    assert not hints.enabled and hints.hint("calc.py", 0) is None


def test_shallow_clone_boundary_is_not_evidence(git_repo: Path, tmp_path: Path) -> None:
    """Regression: in a depth-1 CI checkout git blame pins every line on the one (boundary) commit; if that commit
    had an agent trailer, every finding in the repo would have been marked as agent-written."""
    clone = tmp_path / "shallow"
    _git(tmp_path, "clone", "-q", "--depth", "1", f"file://{git_repo}", str(clone))
    assert BlameHints(clone).hint("pkg/calc.py", 16) is None
