"""Redline's pytest plugin: failing tests become feedback on the generations that wrote the failing code.

Off unless asked (`--redline`, ini `redline = true`, or `REDLINE=1`). Where the exception is at hand (each
xdist worker, or the single process) a report of a failure is annotated with its traceback frames and assertion
text; the controller alone collects reports and writes them to the queue once, at session end. Redline never
fails or slows a run: anything going wrong on our side becomes one warning line and the run goes on.

This module is imported by every pytest run in an environment where Redline is installed, so it imports nothing
beyond pytest until the plugin is switched on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

#: the report attribute carrying our annotation from a worker to the controller (JSON-safe)
REPORT_ATTR = "redline"
#: frames kept per failure (innermost first); deep recursion would only bloat the report
MAX_FRAMES = 40
#: files `git blame` is asked about at session end, at most
MAX_BLAME_FILES = 50
_TRUE = ("1", "true", "yes", "on")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("redline", "Redline: record test failures as feedback on model-written code")
    group.addoption("--redline", action="store_true", dest="redline", default=None,
                    help="record failures in this repo's Redline queue (also: ini `redline = true`, REDLINE=1)")
    group.addoption("--no-redline", action="store_false", dest="redline", help="do not record failures")
    parser.addini("redline", type="bool", default=False, help="record failures in this repo's Redline queue")


def enabled(config: pytest.Config) -> bool:
    option = config.getoption("redline", None)
    if option is not None:
        return bool(option)
    env = os.environ.get("REDLINE")
    if env is not None and env.strip():
        return env.strip().lower() in _TRUE
    try:
        return bool(config.getini("redline"))
    except ValueError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    if not enabled(config):
        return
    config.pluginmanager.register(Annotator(), "redline-annotator")
    if not hasattr(config, "workerinput"):  # the xdist controller, or a run without xdist
        config.pluginmanager.register(Recorder(config), "redline-recorder")


class Annotator:
    """Runs where the test runs: adds frames and assertion text to the report of each failure."""

    def __init__(self) -> None:
        self._skip = tuple({os.path.join(p, "") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})
        self._pytest_dirs = tuple(os.path.join(os.path.dirname(m.__file__ or ""), "")
                                  for m in (pytest, sys.modules.get("_pytest"), sys.modules.get("pluggy")) if m)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if report.failed and call.excinfo is not None:
            try:
                setattr(report, REPORT_ATTR, self.annotate(call.excinfo))
            except Exception:  # never let an odd exception object break the user's run
                pass
        return report

    def annotate(self, excinfo: pytest.ExceptionInfo[BaseException]) -> dict[str, Any]:
        frames: list[list[Any]] = []
        for entry in reversed(excinfo.traceback):
            path = str(entry.path)
            if not path or path.startswith("<") or path.startswith(self._skip) or path.startswith(self._pytest_dirs):
                continue
            frames.append([path, int(entry.lineno), str(entry.name)])
            if len(frames) >= MAX_FRAMES:
                break
        value = excinfo.value
        assertion = _safe_str(value) if isinstance(value, AssertionError) else None
        return {"frames": frames, "assertion": assertion, "exc_type": type(value).__name__}


class Recorder:
    """Runs on the controller only: gathers failed reports and writes them in one transaction at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.failures: list[dict[str, Any]] = []
        self.recorded = 0
        self.new = 0
        self.generations = 0
        self.unattributed = 0
        self.problem: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self._keep(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._keep(report)

    def _keep(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        try:
            crash = getattr(report.longrepr, "reprcrash", None)
            self.failures.append({
                "nodeid": report.nodeid,
                "when": getattr(report, "when", "collect"),
                "location": list(getattr(report, "location", None) or []),
                "message": _safe_str(getattr(crash, "message", "")) or report.head_line or report.nodeid,
                "detail": report.longreprtext,
                "annotation": getattr(report, REPORT_ATTR, None) or {},
            })
        except Exception as exc:
            self.problem = self.problem or f"could not read a failure report ({_safe_str(exc)})"

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.failures:
            return
        try:
            self._write(Path(str(self.config.rootpath)))
        except Exception as exc:  # a broken queue must never fail the run
            self.problem = _safe_str(exc).splitlines()[0] if _safe_str(exc) else type(exc).__name__

    def _write(self, rootpath: Path) -> None:
        from ci_hook.failures import failures_to_feedback
        from redline.config import load_config
        from redline.ledger import record_feedback
        from redline.queue import open_store

        config = load_config(rootpath)
        store = open_store(config)
        try:
            feedback, texts = failures_to_feedback(store, config.repo_root, rootpath, self.failures,
                                                   max_blame_files=MAX_BLAME_FILES)
            added = record_feedback(store, config, feedback, file_texts=texts)
        finally:
            store.close()
        self.recorded = len(feedback)
        self.new = added.feedback
        attributed = {fb.generation_id for fb in feedback if fb.generation_id}
        self.generations = len(attributed)
        self.unattributed = sum(1 for fb in feedback if not fb.generation_id)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.problem:
            terminalreporter.write_line(f"redline: warning: failures not recorded: {self.problem}"
                                        " (the test run is unaffected)", yellow=True)
            return
        line = f"redline: {self.recorded} failures recorded against {self.generations} generations"
        if self.unattributed:
            line += f" ({self.unattributed} unattributed)"
        terminalreporter.write_line(line)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
