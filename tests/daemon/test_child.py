"""A training child that crashes, is SIGKILLed or runs past its time limit: the daemon gets a reason, nothing is
promoted, and the daemon itself keeps going."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from redline.config import load_config
from redline.daemon.child import ChildOutcome, run_child
from redline.daemon.main import Daemon
from redline.queue import open_store
from tests.daemon.conftest import add_feedback, make_repo
from tests.daemon.test_daemon import status


def child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_crash_is_a_failure_with_the_last_error_line(tmp_path: Path) -> None:
    out = run_child(tmp_path, time_limit_s=30, cmd=child("import sys; sys.stderr.write('boom: no model\\n'); "
                                                          "sys.exit(3)"))
    assert not out.ok and not out.promoted and "exit 3" in out.reason and "boom: no model" in out.reason


def test_sigkill_is_reported_as_a_kill(tmp_path: Path) -> None:
    out = run_child(tmp_path, time_limit_s=30, cmd=child("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    assert not out.ok and "SIGKILL" in out.reason and "out of memory" in out.reason


def test_the_time_limit_stops_the_child_with_sigterm_then_sigkill(tmp_path: Path) -> None:
    started = time.monotonic()
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    out = run_child(tmp_path, time_limit_s=0.5, grace_s=0.5, cmd=child(stubborn))
    assert not out.ok and "time limit" in out.reason and time.monotonic() - started < 10


def test_a_clean_exit_without_a_report_is_a_failure(tmp_path: Path) -> None:
    out = run_child(tmp_path, time_limit_s=30, cmd=child("pass"))
    assert not out.ok and "exit 0" in out.reason


def test_stopping_the_daemon_stops_the_child(tmp_path: Path) -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    out = run_child(tmp_path, time_limit_s=60, grace_s=5, cmd=child("import time; time.sleep(60)"), stop=stop)
    assert not out.ok and "stopped with the daemon" in out.reason


def test_the_daemon_survives_each_way_a_child_dies(redline_home: Path, clock, probe, tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", "train_time_limit_minutes = 0.1\n")
    add_feedback(root, 40)
    deaths = iter([child("import sys; sys.exit(1)"), child("import os; os.kill(os.getpid(), 9)"),
                   child("import time; time.sleep(60)")])
    reasons = []

    def trainer(config, stop) -> ChildOutcome:  # type: ignore[no-untyped-def]
        return run_child(config.repo_root, time_limit_s=config.train_time_limit_minutes * 60, grace_s=0.5,
                         cmd=next(deaths), stop=stop)

    d = Daemon(redline_home, clock=clock, probe=probe, trainer=trainer, control=None, watch=False)
    for _ in range(3):
        clock.now = clock.now.replace(hour=clock.now.hour + 1)  # past the back-off, still in the window
        assert d.tick() == str(root.resolve())
        st = status(root)
        assert st.last.result == "failed" and st.adapter.version is None and st.daemon.state == "backoff"
        reasons.append(st.last.reason)
    assert "exit 1" in reasons[0] and "SIGKILL" in reasons[1] and "time limit" in reasons[2]
    assert d.repos[str(root.resolve())].failures == 3


def test_a_child_that_wrote_its_report_counts_as_finished_even_if_stopped_after(tmp_path: Path) -> None:
    """Found end to end: a daemon stopped while its child was exiting overwrote "promoted" with "failed"."""
    written = tmp_path / "written"
    writes_then_hangs = ("import json, sys, time; open(sys.argv[-1], 'w').write(json.dumps({'promoted': True, "
                         "'version': 'v0001', 'reason': None})); open(" + repr(str(written)) + ", 'w').close(); "
                         "time.sleep(60)")
    stop = threading.Event()

    def stop_once_written() -> None:  # not after a fixed time: on a busy machine the child may not have started
        while not written.exists():
            time.sleep(0.05)
        stop.set()

    threading.Thread(target=stop_once_written, daemon=True).start()
    cmd = [sys.executable, "-c", writes_then_hangs]
    out = run_child(tmp_path, time_limit_s=60, grace_s=5, stop=stop, cmd=cmd)
    assert out.ok and out.promoted and out.version == "v0001"


def test_a_killed_child_s_claim_is_released_for_the_next_attempt(tmp_path: Path) -> None:
    """Without this, records claimed by a SIGKILLed child stayed claimed for an hour (the stale-claim time)."""
    root = make_repo(tmp_path / "r")
    add_feedback(root, 5)
    claims_then_dies = ("import os, sys; from redline.config import load_config; from redline.queue import "
                        "open_store; s = open_store(load_config('.')); s.claim(sys.argv[-2]); s.close(); "
                        "os.kill(os.getpid(), 9)")
    out = run_child(root, time_limit_s=60, cmd=child(claims_then_dies))
    assert "SIGKILL" in out.reason
    store = open_store(load_config(root))
    assert store.backlog()[0] == 5  # all of it claimable again
    store.close()
