"""Remote CI: bundle feedback on the CI machine, carry it over, import it through the inbox (watchdog) or the CLI;
feedback found on CI is attributed on the developer's machine, where the spans live."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from redline.bundle import SUFFIX, write_bundle
from redline.ci_hook.ingest import ingest_files, parse_report
from redline.config import Config, load_config
from redline.inbox import InboxResult, InboxWatcher, import_pending
from redline.ledger import record_generation
from redline.queue import open_store
from redline.records import Generation, Insertion, ModelRef, Prompt, Range


def _machine(repo: Path, home: Path) -> Config:
    return load_config(repo, env={"REDLINE_HOME": str(home)})


def _generation(config: Config, path: str, first: int, last: int) -> Generation:
    lines = (config.repo_root / path).read_text().splitlines(keepends=True)
    gen = Generation(prompt_format="fim", prompt=Prompt(prefix="".join(lines[:first]), suffix=""),
                     completion="".join(lines[first:last + 1]), model=ModelRef("tiny"),
                     insertion=Insertion(path, Range(first, last + 1)))
    store = open_store(config)
    try:
        return record_generation(store, config, gen)
    finally:
        store.close()


def test_bundle_from_the_ci_queue_is_attributed_on_the_developers_machine(repo: Path, tmp_path: Path,
                                                                           sample) -> None:
    ci = _machine(repo, tmp_path / "ci-home")
    ci_store = open_store(ci)
    ingest_files(ci_store, ci, [sample("ruff.json"), sample("mypy.jsonl")], hints=False)
    bundle = tmp_path / f"artifact{SUFFIX}"
    assert write_bundle(bundle, store=ci_store) == 4
    ci_store.close()
    lines = [json.loads(line) for line in gzip.open(bundle, "rt", encoding="utf-8")]
    assert all(line["generation"] is None and len(line["feedback"]) == 1 for line in lines)

    dev = _machine(repo, tmp_path / "dev-home")
    gen = _generation(dev, "pkg/calc.py", 15, 16)
    from redline.transfer import import_jsonl

    dev_store = open_store(dev)
    try:
        result = import_jsonl(dev_store, dev, bundle)
        assert result.feedback == 4
        assert [f.rule for f in dev_store.feedback_for(gen.id)] == ["S307"]
    finally:
        dev_store.close()


def test_bundle_straight_from_reports(repo: Path, tmp_path: Path, sample) -> None:
    out = tmp_path / "out" / f"reports{SUFFIX}"
    found = parse_report(sample("junit-xunit1.xml"), repo)
    assert write_bundle(out, feedback=found) == 2
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no partial file left behind


def _drop(inbox: Path, name: str, data: bytes) -> Path:
    """Arrive the way a download does: written elsewhere, then renamed into the inbox."""
    inbox.mkdir(parents=True, exist_ok=True)
    tmp = inbox.parent / f".{name}.part"
    tmp.write_bytes(data)
    os.replace(tmp, inbox / name)
    return inbox / name


def _bundle_bytes(repo: Path, tmp_path: Path, sample, report: str) -> bytes:
    out = tmp_path / f"b-{report}{SUFFIX}"
    write_bundle(out, feedback=parse_report(sample(report), repo))
    return out.read_bytes()


def test_inbox_watcher_imports_bundles_and_sets_bad_ones_aside(repo: Path, tmp_path: Path, sample) -> None:
    dev = _machine(repo, tmp_path / "dev-home")
    seen: list[InboxResult] = []
    changed = threading.Condition()

    def on_result(result: InboxResult) -> None:
        with changed:
            seen.append(result)
            changed.notify_all()

    def wait_for(predicate) -> None:
        with changed:
            assert changed.wait_for(lambda: predicate(seen), timeout=30), seen

    watcher = InboxWatcher(dev, on_result=on_result)
    watcher.SETTLE_S = 0.0
    watcher.start()
    try:
        _drop(dev.inbox_dir, f"bad{SUFFIX}", b"\x1f\x8b not really gzip")
        wait_for(lambda s: any(r.failed for r in s))
        _drop(dev.inbox_dir, f"good{SUFFIX}", _bundle_bytes(repo, tmp_path, sample, "ruff.json"))
        wait_for(lambda s: any(r.imported for r in s))
    finally:
        watcher.stop()
    assert (dev.inbox_dir / "done" / f"good{SUFFIX}").exists()
    failed = dev.inbox_dir / "failed" / f"bad{SUFFIX}"
    assert failed.exists()
    error = failed.with_name(failed.name + ".error.txt").read_text()
    assert error.count("\n") == 1 and f"bad{SUFFIX}" in error
    store = open_store(dev)
    try:
        assert store.counts()["feedback"] == 2
    finally:
        store.close()


def test_a_bundle_still_arriving_is_retried_not_failed(repo: Path, tmp_path: Path, sample) -> None:
    dev = _machine(repo, tmp_path / "dev-home")
    dev.inbox_dir.mkdir(parents=True)
    half = _bundle_bytes(repo, tmp_path, sample, "ruff.json")
    (dev.inbox_dir / f"slow{SUFFIX}").write_bytes(half[: len(half) // 2])
    result = import_pending(dev, settle_s=60)
    assert result.deferred == [dev.inbox_dir / f"slow{SUFFIX}"] and not result.failed
    (dev.inbox_dir / f"slow{SUFFIX}").write_bytes(half)
    assert import_pending(dev, settle_s=60).imported == [dev.inbox_dir / f"slow{SUFFIX}"]


def _redline(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from redline.cli import main; main()", *args]
    env = dict(os.environ, REDLINE_HOME=str(home))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, check=False, timeout=120)


def test_cli_ingest_bundle_and_inbox(repo: Path, tmp_path: Path, sample) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<!DOCTYPE x [<!ENTITY a "aaaa">]><testsuite>&a;</testsuite>')
    done = _redline(["ci", "ingest", str(sample("ruff.sarif")), str(bomb), str(sample("github-comments.json"))],
                    repo, tmp_path / "ci")
    assert done.returncode == 1
    assert "ruff.sarif: sarif, 2 findings, 2 new" in done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("redline: error:")]
    assert len(errors) == 1 and str(bomb) in errors[0] and "forbidden" in errors[0]
    assert "2 review comments from untrusted authors" in done.stderr

    out = tmp_path / f"ci{SUFFIX}"
    done = _redline(["ci", "bundle", "-o", str(out)], repo, tmp_path / "ci")
    assert done.returncode == 0 and out.exists(), done.stderr

    dev = _machine(repo, tmp_path / "dev")
    _drop(dev.inbox_dir, out.name, out.read_bytes())
    done = _redline(["ci", "watch", "--once"], repo, tmp_path / "dev")
    assert done.returncode == 0 and f"imported {out.name}" in done.stdout, done.stderr
    store = open_store(dev)
    try:
        assert store.counts()["feedback"] == 5  # 2 ruff + 3 trusted review comments
    finally:
        store.close()
