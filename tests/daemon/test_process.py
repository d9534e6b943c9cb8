"""The daemon as a process: one per home (the second names the first's pid), inbox bundles imported as they land
(a corrupt one set aside in failed/ with its reason), and the CLI around it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from redline.cli import cli
from redline.config import load_config
from redline.daemon import registry
from redline.daemon.main import AlreadyRunning, Daemon, running_pid, single_instance
from redline.queue import open_store
from tests.conftest import wait_for
from tests.core.helpers import make_feedback, make_generation
from tests.daemon.conftest import make_repo


def test_a_second_daemon_exits_naming_the_first_pid(redline_home: Path) -> None:
    assert running_pid(redline_home) is None
    with single_instance(redline_home):
        assert running_pid(redline_home) == os.getpid()
        with pytest.raises(AlreadyRunning, match=rf"pid {os.getpid()}"):
            with single_instance(redline_home):
                pass
        proc = subprocess.run([sys.executable, "-m", "redline", "daemon", "run"], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 1 and f"another redline daemon is running (pid {os.getpid()})" \
            in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        quiet = subprocess.run([sys.executable, "-m", "redline", "daemon", "run", "--if-not-running"],
                               capture_output=True, text=True, timeout=60)
        assert quiet.returncode == 0
    assert running_pid(redline_home) is None


def test_inbox_bundles_are_imported_and_a_corrupt_one_goes_to_failed(redline_home: Path, clock, probe,
                                                                     trainer, tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    config = load_config(root)
    d = Daemon(redline_home, clock=clock, probe=probe, trainer=trainer, control=None, watch=True)
    d.refresh(strict=True)
    try:
        inbox = config.inbox_dir
        g = make_generation(1)
        good = tmp_path / "good.jsonl"
        good.write_text(json.dumps({"generation": g.to_dict(), "feedback": [make_feedback(g.id).to_dict()]}) + "\n")
        good.replace(inbox / "good.jsonl")
        (tmp_path / "bad.jsonl").write_text('{"generation": {"completion": 1}}\n')
        (tmp_path / "bad.jsonl").replace(inbox / "bad.jsonl")
        wait_for("the inbox watcher to take both bundles", lambda: (inbox / "done" / "good.jsonl").exists()
                 and (inbox / "failed" / "bad.jsonl").exists(), alive={}, progress=lambda: sorted(os.listdir(inbox)),
                 poll_s=0.05)
        reason = (inbox / "failed" / "bad.jsonl.error.txt").read_text()
        assert "bad.jsonl" in reason and "line 1" in reason
        store = open_store(config)
        assert store.backlog()[0] == 1
        store.close()
        assert d.tick() is None  # the daemon goes on
    finally:
        d.close()


def test_cli_init_registers_and_status_kick_forget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   redline_home: Path) -> None:
    root = tmp_path / "r"
    (root / ".git").mkdir(parents=True)
    monkeypatch.chdir(root)
    runner = CliRunner()
    assert "registered" in runner.invoke(cli, ["init"]).output
    assert "registered" not in runner.invoke(cli, ["init"]).output  # once
    assert [r.root for r in registry.registered(redline_home)] == [str(root.resolve())]
    out = runner.invoke(cli, ["daemon", "status"]).output
    assert "not running" in out and "not seen by a daemon" in out and "0 new feedback" in out
    assert "kicked" in runner.invoke(cli, ["daemon", "kick", str(root)]).output
    missing = runner.invoke(cli, ["daemon", "kick", "/no/such/repo"])
    assert missing.exit_code != 0 and "not a registered repository" in str(missing.exception)
    assert "forgot" in runner.invoke(cli, ["daemon", "forget", str(root)]).output
    assert registry.registered(redline_home) == []


def test_install_dry_run_prints_the_files_and_changes_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOME", str(tmp_path))
    out = CliRunner().invoke(cli, ["daemon", "install", "--dry-run", "--kind", "systemd"]).output
    assert "[Service]" in out and "systemctl --user enable --now" in out
    assert not (tmp_path / ".config").exists()
    out = CliRunner().invoke(cli, ["daemon", "install", "--dry-run", "--kind", "launchd"]).output
    assert "<plist" in out and "dev.redline.daemon" in out


def test_dry_run_without_a_service_manager_prints_what_the_default_kind_installs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #28: `install --dry-run` on a machine with no systemd user session and no cron failed with 'no service
    manager found' instead of showing what it would install; a real install still fails with that one line. The
    dry run's lines come out whole (the console used to wrap them at 80 columns, cutting a unit's long lines)."""
    from redline.daemon import service

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(service.sys, "platform", "linux")
    monkeypatch.setattr(service.shutil, "which", lambda name: None)  # no systemctl, no crontab
    dry = CliRunner().invoke(cli, ["daemon", "install", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines()[0] == ("# no service manager found (systemd user session, launchd or cron): this is "
                                          "what `--kind systemd` would install")
    assert "[Service]" in dry.output and "systemctl --user enable --now" in dry.output
    assert not (tmp_path / ".config").exists()
    real = CliRunner().invoke(cli, ["daemon", "install"])
    assert real.exit_code != 0 and "no service manager found" in str(real.exception)
    assert not (tmp_path / ".config").exists()


def test_doctor_says_whether_the_daemon_runs_and_this_repo_is_registered(tmp_path: Path, redline_home: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_repo(tmp_path / "r")
    monkeypatch.chdir(root)
    from redline.cli import common

    # the console is made once per process (an xdist worker may have made it at 80 columns): widen it here
    monkeypatch.setattr(common.console, "_width", 250)
    out = CliRunner().invoke(cli, ["doctor"]).output
    assert "not running, this repo registered" in out
    with single_instance(redline_home):
        out = CliRunner().invoke(cli, ["doctor"]).output
    assert f"running (pid {os.getpid()}), this repo registered" in out
