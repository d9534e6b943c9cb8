"""What every test shares: its own Redline home, the tiny world model, and two rules.

Lanes. `./dev.sh test` is the fast lane (`-m "not slow"`: unit tests of every room and real language-server
sessions, a few minutes); `./dev.sh test-all` and CI run everything. Mark a test `slow` when it trains, starts
`redline serve`, drives a real editor, or otherwise takes more than a second or two.

CI strictness. Under CI (`REDLINE_CI=1`, which `.ci/run` sets, or the `CI` variable CI services set) a test that
would be skipped because a real part is missing (`redline serve`, an editor, llama.cpp, systemd-analyze) fails
with the same reason, so CI cannot stay green without the real part ever running. On a developer's machine it is
a skip that says what to install. Three ways in: `skip_or_fail(reason)` in a test or fixture; the `real_part`
marker, which makes every skip of the tests it marks such a skip; and a test module that skips as it is imported
(`pytest.importorskip` at module level: a package is missing), which is always one.

Waiting. End-to-end tests wait with `wait_for`: as long as the processes live and something observable moves
(`descendants_cpu_s` for a child that shows nothing else), never against a fixed deadline a busy machine misses.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from subprocess import Popen
from typing import Any, NoReturn, TypeVar

import pytest

T = TypeVar("T")

#: CI runs every real part: a missing one fails instead of skipping
IN_CI = os.environ.get("REDLINE_CI") == "1" or os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: seconds an end-to-end wait may see nothing move before it fails (REDLINE_TEST_STALL_S changes it)
STALL_S = float(os.environ.get("REDLINE_TEST_STALL_S", "600"))


def skip_or_fail(reason: str) -> NoReturn:
    """Skip naming the missing real part; under CI, fail with the same reason."""
    if IN_CI:
        pytest.fail(_in_ci(reason), pytrace=False)
    pytest.skip(reason)


def _in_ci(reason: str) -> str:
    return f"{reason} (under CI a missing real part fails the run instead of skipping)"


def _skip_reason(longrepr: Any) -> str:
    """The reason of a skip report (pytest stores `(path, line, "Skipped: reason")`)."""
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """Under CI, a skip of a test marked `real_part` (a skipif, an importorskip, a skip) is a failure."""
    report: pytest.TestReport = yield
    if IN_CI and report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker("real_part"):
        report.outcome = "failed"
        report.longrepr = _in_ci(_skip_reason(report.longrepr))
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    """Under CI, a test module that skips as it is imported (a package it needs is missing) is an error."""
    report: pytest.CollectReport = yield
    if IN_CI and report.skipped and isinstance(collector, pytest.Module):
        report.outcome = "failed"
        report.longrepr = _in_ci(_skip_reason(report.longrepr))
    return report


def wait_for(what: str, done: Callable[[], T], *, alive: Mapping[str, Popen[Any]], progress: Callable[[], object],
             stall_s: float = STALL_S, poll_s: float = 0.5) -> T:
    """Poll `done()` until it returns something true, and return that.

    Waits as long as progress is being made: every process in `alive` (name → process) is running, and
    `progress()` — anything observable, such as the queue's counts, a status, a log's size — changed within the
    last `stall_s` seconds. Fails naming `what`, the process that exited or how long nothing moved, and the
    last progress seen.
    """
    last, moved = progress(), time.monotonic()
    while not (result := done()):
        for name, proc in alive.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited (code {proc.returncode}) while waiting for {what}; "
                            f"last progress: {last!r}", pytrace=False)
        now = progress()
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > stall_s:
            pytest.fail(f"nothing moved for {stall_s:.0f} s while waiting for {what}; last progress: {last!r}",
                        pytrace=False)
        time.sleep(poll_s)
    return result


def descendants_cpu_s(pid: int) -> float:
    """CPU seconds used so far by the live descendants of process `pid` (Linux `/proc`; 0.0 elsewhere).

    A progress signal for work that shows nothing for minutes, such as a training child that a loaded machine
    starves of CPU (the daemon runs it at nice 10): it moves while the child computes, not while it is stuck."""
    parents, used = {}, {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone since the listing
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, …; utime is field 14
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime (clock ticks)
    total, todo = 0, [pid]
    while todo:
        parent = todo.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        total += sum(used[child] for child in children)
        todo += children
    return total / os.sysconf("SC_CLK_TCK")


@pytest.fixture(autouse=True)
def redline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own Redline home, so no test touches the user's data dir."""
    home = tmp_path / "redline-home"
    monkeypatch.setenv("REDLINE_HOME", str(home))
    return home


@pytest.fixture
def world_model() -> Path:
    """The committed tiny model of bench/world (or REDLINE_DEMO_MODEL=DIR)."""
    from bench.world.pretrain import MODEL_DIR, verify

    override = os.environ.get("REDLINE_DEMO_MODEL")
    if override:
        return Path(override)
    if not verify(MODEL_DIR):
        skip_or_fail("the committed tiny model (bench/world/model) is missing; set REDLINE_DEMO_MODEL=DIR")
    return MODEL_DIR
