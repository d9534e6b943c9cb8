"""Every writer works unchanged on a team queue: the real pytest plugin (and its writer process), `redline ci
ingest`, `redline import` and `redline proxy`, each run as a CI runner or an editor would, with only
`REDLINE_QUEUE_URL` set, against a real PostgreSQL server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from redline import ledger
from redline.config import load_config
from redline.queue import open_store
from redline.records import Generation, Insertion, ModelRef, Prompt, Range
from tests.team.conftest import PYTHON, python_env

CALC = "def add(a, b):\n    return a + c\n"  # a NameError inside the model-written code


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / ".git").mkdir()
    (root / "redline.toml").write_text('repo_id = "github.com/acme/proj"\n', encoding="utf-8")
    (root / "calc.py").write_text(CALC, encoding="utf-8")
    (root / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n",
                                       encoding="utf-8")
    return root


def _env(url: str, home: Path) -> dict[str, str]:
    return python_env(REDLINE_QUEUE_URL=url, REDLINE_HOME=str(home))


def test_pytest_plugin_ci_ingest_and_import_write_to_the_team_queue(tmp_path: Path, pg_url: str,
                                                                     monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = _repo(tmp_path)
    editor_home, ci_home = tmp_path / "editor-home", tmp_path / "ci-home"  # two machines: nothing local shared
    monkeypatch.setenv("REDLINE_QUEUE_URL", pg_url)
    monkeypatch.setenv("REDLINE_HOME", str(editor_home))
    config = load_config(root)
    store = open_store(config)
    gen = Generation(prompt_format="fim", prompt=Prompt(prefix="", suffix=""), completion=CALC,
                     model=ModelRef("coder"), insertion=Insertion("calc.py", Range(0, 2)))
    ledger.record_generation(store, config, gen)  # the editor's machine recorded the code

    run = subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--redline", "test_calc.py"],
                         cwd=root, env=_env(pg_url, ci_home), capture_output=True, text=True, timeout=300)
    assert "1 failed" in run.stdout, run.stdout + run.stderr
    sarif = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "ruff"}}, "results": [
        {"ruleId": "F841", "level": "error", "message": {"text": "Local variable `x` is assigned to but never used"},
         "locations": [{"physicalLocation": {"artifactLocation": {"uri": "calc.py"},
                                             "region": {"startLine": 2, "startColumn": 5}}}]}]}]}
    (root / "ruff.sarif").write_text(json.dumps(sarif), encoding="utf-8")
    ingest = subprocess.run([PYTHON, "-m", "redline", "ci", "ingest", "ruff.sarif"], cwd=root,
                            env=_env(pg_url, ci_home), capture_output=True, text=True, timeout=300)
    assert ingest.returncode == 0, ingest.stderr
    line = {"generation": None, "feedback": [{"kind": "review", "source": "github-review", "message": "use +",
                                              "generation_id": gen.id}]}
    (root / "review.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    imported = subprocess.run([PYTHON, "-m", "redline", "import", "review.jsonl"], cwd=root,
                              env=_env(pg_url, ci_home), capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr

    got = {f.source: f for f in store.feedback_for(gen.id)}
    assert set(got) == {"pytest", "ruff", "github-review"}  # every writer's record, attributed to the code
    assert all("@" in str(f.meta.get("written_by")) for f in got.values())
    status = subprocess.run([PYTHON, "-m", "redline", "status", "--json"], cwd=root, env=_env(pg_url, ci_home),
                            capture_output=True, text=True, timeout=120)
    assert json.loads(status.stdout)["feedback"] == 3 and json.loads(status.stdout)["queue"] == pg_url
    store.close()


def test_proxy_records_answers_in_the_team_queue(tmp_path: Path, pg_url: str) -> None:
    from tests.export.test_vllm import start_fake

    root = _repo(tmp_path)
    (tmp_path / "fake").mkdir()
    upstream = start_fake(tmp_path / "fake")
    fake = next(upstream)
    proc = subprocess.Popen([sys.executable, "-m", "redline", "proxy", "--upstream", fake.url, "--port", "0"],
                            cwd=root, env=_env(pg_url, tmp_path / "dev-home"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "redline proxy:" in line:
                url = line.split("redline proxy:", 1)[1].split()[0].rstrip("/")
        assert url, "the proxy did not start"
        answer = httpx.post(f"{url}/v1/completions", json={"model": "base-model", "prompt": "x", "max_tokens": 4},
                            timeout=60)
        assert answer.status_code == 200, answer.text
        gid = answer.headers["X-Redline-Generation"]
    finally:
        proc.terminate()
        proc.wait(30)
        upstream.close()
    with open_store(load_config(root, env={"REDLINE_QUEUE_URL": pg_url, "REDLINE_HOME": str(tmp_path)})) as store:
        assert store.get_generation(gid).completion == " = 1"  # type: ignore[union-attr]
