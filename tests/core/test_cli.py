"""The `redline` command as a user runs it: a real subprocess in a scratch repository."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.helpers import make_feedback, make_generation

REDLINE = [sys.executable, "-m", "redline"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def run(repo: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*REDLINE, *args], cwd=repo, capture_output=True, text=True, timeout=120)
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    return proc


def test_init_import_status_show_export(repo: Path, tmp_path: Path) -> None:
    assert "Next steps" in run(repo, "init").stdout
    assert (repo / "redline.toml").exists()
    g = make_generation(1)
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"generation": g.to_dict(), "feedback": [make_feedback(g.id).to_dict()]}) + "\n")
    assert "1 generations, 1 feedback added" in run(repo, "import", str(data)).stdout
    status = json.loads(run(repo, "status", "--json").stdout)
    assert (status["generations"], status["feedback"], status["attributed"]) == (1, 1, 1)
    assert "test_failure" in run(repo, "status").stdout
    shown = run(repo, "show", g.id[:14]).stdout
    assert "write f1 ✓" in shown and "AssertionError" in shown
    out = tmp_path / "out.jsonl"
    run(repo, "export", "-o", str(out))
    assert json.loads(out.read_text())["generation"]["id"] == g.id


def test_errors_are_one_line_naming_file_and_fix(repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"generation": {"completion": 1}}\n')
    proc = run(repo, "import", str(bad), ok=False)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "line 1" in lines[0] and "docs/records.md" in lines[0]
    proc = run(repo, "show", "ffffffff", ok=False)
    assert proc.stderr.strip() == "redline: error: no generation with id 'ffffffff' — see `redline log` for ids"
    (repo / "redline.toml").write_text("heldout_fraction = 7\n")
    proc = run(repo, "status", ok=False)
    assert len(proc.stderr.strip().splitlines()) == 1 and "redline.toml" in proc.stderr


@pytest.mark.slow
def test_doctor_reports_each_check(repo: Path) -> None:
    out = run(repo, "doctor").stdout
    for name in ("python", "torch", "cuda", "model", "disk", "queue"):
        assert name in out


def test_harvesting_side_imports_without_torch() -> None:
    code = (
        "import sys, redline.cli, redline.queue, redline.ledger, redline.transfer, redline.scrub, "
        "redline.attribution, redline.ci_hook.pytest_plugin, redline.lsp_server; "
        "bad = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
