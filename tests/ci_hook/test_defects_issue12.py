"""Issue #12, harvest side: each test names the defect it pins and uses the issue's reproduction as input (the
pytest plugin and its sidecar, `ci ingest`, the inbox, read caps, foreign paths in reports)."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redline.ci_hook.ingest import ingest_files, parse_report
from redline.ci_hook.ingest.common import IngestOptions, read_text
from redline.config import load_config
from redline.errors import RecordError
from redline.inbox import InboxWatcher, import_pending, process_inbox
from redline.queue import open_store
from tests.core.helpers import make_feedback, make_generation

pytest_plugins = ["pytester"]
LEAN = ("-p", "no:hypothesispytest", "-p", "no:pytest-lsp", "-p", "no:asyncio", "-p", "no:anyio",
        "-p", "no:cacheprovider")
REDLINE = [sys.executable, "-m", "redline"]
AKIA = "AKIAIOSFODNN7EXAMPLE"


def _feedback_bodies(root: Path) -> list[dict]:
    store = open_store(load_config(root))
    try:
        return [f.to_dict() for f in store.feedback()] + [
            f.to_dict() for g in store.generations() for f in store.feedback_for(g.id)]
    finally:
        store.close()


# -- 1. `key = "AKIA…"; assert key == "x"` under `pytest --redline` stored the key ----------------------------


def test_defect_1_pytest_assertion_meta_is_scrubbed(pytester: pytest.Pytester) -> None:
    (pytester.path / ".git").mkdir()
    pytester.makepyfile(test_key=f'def test_key():\n    key = "{AKIA}"\n    assert key == "x"\n')
    result = pytester.runpytest(*LEAN, "--redline")
    result.assert_outcomes(failed=1)
    bodies = _feedback_bodies(pytester.path)
    assert len(bodies) == 1 and bodies[0]["meta"].get("assertion")
    assert AKIA not in json.dumps(bodies)


# -- 7. one odd failure lost the whole run ---------------------------------------------------------------------


def test_defect_7_a_failure_with_a_lone_surrogate_is_skipped_the_rest_land(pytester: pytest.Pytester) -> None:
    (pytester.path / ".git").mkdir()
    tests = "".join(f"def test_{i}():\n    assert {i} == -1\n\n" for i in range(20))
    tests += 'def test_odd():\n    raise ValueError("bad \\ud800 text")\n'
    pytester.makepyfile(test_many=tests)
    result = pytester.runpytest(*LEAN, "--redline")
    result.assert_outcomes(failed=21)
    result.stdout.fnmatch_lines(["redline: 20 failures recorded*1 skipped: could not be stored*"])
    assert len(_feedback_bodies(pytester.path)) == 20


# -- 9. a locked queue slowed the run to 33 s --------------------------------------------------------------------


def test_defect_9_locked_queue_spools_fast_and_merges_on_next_open(pytester: pytest.Pytester) -> None:
    (pytester.path / ".git").mkdir()
    pytester.makepyfile(test_few="".join(f"def test_{i}():\n    assert {i} == -1\n\n" for i in range(3)))
    config = load_config(pytester.path)
    open_store(config).close()
    blocker = sqlite3.connect(config.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock for the whole run
    try:
        start = time.monotonic()
        result = pytester.runpytest(*LEAN, "--redline")
        took = time.monotonic() - start
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    result.assert_outcomes(failed=3)
    assert took < 15, took  # the sidecar waits LOCK_WAIT_S once, not the 30 s busy timeout per batch
    result.stdout.fnmatch_lines([f"*another process holds a write lock on {config.db_path}*spooled*"])
    assert list((config.state_dir / "spool").glob("*.jsonl"))
    assert len(_feedback_bodies(pytester.path)) == 3  # merged by that open
    assert not list((config.state_dir / "spool").glob("*.jsonl"))


# -- 4. `ci ingest bad.sarif ok.xml` stopped at the first file ----------------------------------------------------


def _sarif(uri: str, text: str = "boom") -> dict:
    return {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "lint"}}, "results": [
        {"ruleId": "X1", "level": "error", "message": {"text": text},
         "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": 1}}}]}]}]}


def test_defect_4_ingest_goes_on_past_a_bad_report(repo: Path, tmp_path: Path, sample) -> None:
    bad = tmp_path / "bad.sarif"
    bad.write_text(json.dumps(_sarif("pkg/calc.py", "lone \ud800 surrogate")))  # json escapes it as \ud800
    ok = sample("junit-xunit1.xml")
    proc = subprocess.run([*REDLINE, "ci", "ingest", "--no-hints", str(bad), str(ok)], cwd=repo,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("redline: error:")]
    assert len(errors) == 1 and "bad.sarif" in errors[0] and "surrogate" in errors[0]
    assert f"{ok}: junit" in proc.stdout
    assert len(_feedback_bodies(repo)) == 2


# -- 5. one bad bundle blocked the inbox ---------------------------------------------------------------------


def _bundle(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", errors="surrogatepass") as out:
        out.write("".join(line + "\n" for line in lines))
    return path


def test_defect_5_watch_once_sets_a_bad_bundle_aside_and_imports_the_good(repo: Path) -> None:
    config = load_config(repo)
    g = make_generation(1)
    good = json.dumps({"generation": g.to_dict(), "feedback": [make_feedback(g.id).to_dict()]})
    _bundle(config.inbox_dir / "a-bad.jsonl.gz", ['{"generation": ' + "[" * 200_000])
    _bundle(config.inbox_dir / "b-good.jsonl.gz", [good])
    proc = subprocess.run([*REDLINE, "ci", "watch", "--once"], cwd=repo, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "imported b-good.jsonl.gz" in proc.stdout
    reason = (config.inbox_dir / "failed" / "a-bad.jsonl.gz.error.txt").read_text()
    assert "a-bad.jsonl.gz" in reason and "line 1" in reason
    assert (config.inbox_dir / "done" / "b-good.jsonl.gz").exists()
    assert not list(config.inbox_dir.glob("*.gz"))


def test_defect_5_any_exception_fails_only_its_bundle_and_the_watcher_lives(repo: Path) -> None:
    config = load_config(repo)
    bundle = _bundle(config.inbox_dir / "x.jsonl.gz", ["{}"])
    os.utime(bundle, (time.time() - 60, time.time() - 60))  # settled: not a copy still arriving

    def exploding(path: Path) -> None:
        raise MemoryError("decompressing")

    watcher = InboxWatcher(config, importer=exploding)
    watcher.start()
    try:
        assert watcher.alive
        result = watcher.scan()
        assert watcher.alive
    finally:
        watcher.stop()
    reason = (config.inbox_dir / "failed" / "x.jsonl.gz.error.txt").read_text()
    assert "MemoryError: decompressing" in reason and result.imported == []


def test_defect_5_process_inbox_uses_the_callers_store(repo: Path) -> None:
    config = load_config(repo)
    g = make_generation(2)
    _bundle(config.inbox_dir / "one.jsonl.gz",
            [json.dumps({"generation": g.to_dict(), "feedback": [make_feedback(g.id).to_dict()]})])
    store = open_store(config)
    result = process_inbox(store, config)
    assert [p.name for p in result.imported] == ["one.jsonl.gz"] and store.get_generation(g.id) is not None
    store.close()
    assert import_pending(config).imported == []


# -- 10. size caps counted on bytes read --------------------------------------------------------------------------


def test_defect_10_dev_zero_link_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDLINE_CI_MAX_BYTES", str(1 << 20))
    link = tmp_path / "report.sarif"
    link.symlink_to("/dev/zero")
    with pytest.raises(RecordError, match="over the 1 MiB limit"):
        read_text(link)


def test_defect_10_stdin_is_capped(repo: Path) -> None:
    env = {**os.environ, "REDLINE_CI_MAX_BYTES": str(1 << 20)}
    proc = subprocess.run([*REDLINE, "ci", "ingest", "--format", "sarif", "/dev/stdin"], cwd=repo,
                          input=b"{" * (4 << 20), capture_output=True, env=env, timeout=120)
    assert proc.returncode == 1 and b"over the 1 MiB limit" in proc.stderr and b"Traceback" not in proc.stderr


# -- 13. foreign paths in reports -------------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["C:/Windows/win.ini", "\\\\server\\share\\x.py", "//server/share/x.py"])
def test_defect_13_sarif_windows_and_unc_paths_are_not_repo_paths(repo: Path, tmp_path: Path, uri: str) -> None:
    report = tmp_path / "r.sarif"
    report.write_text(json.dumps(_sarif(uri)))
    opts = IngestOptions()
    assert parse_report(report, repo, "sarif", opts) == []
    assert opts.outside_repo == 1


def test_defect_13_junit_file_outside_the_repo_is_counted(repo: Path, tmp_path: Path, store) -> None:
    report = tmp_path / "j.xml"
    report.write_text('<testsuite><testcase classname="t" name="x" file="/etc/passwd" line="1">'
                      '<failure message="boom">boom</failure></testcase></testsuite>')
    summary = ingest_files(store, load_config(repo), [report], hints=False)
    assert summary.opts.outside_repo == 1 and summary.files[0].parsed == 0
