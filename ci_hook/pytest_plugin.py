"""Redline's pytest plugin: failing tests become feedback on the generations that wrote the failing code.

Off unless asked (`--redline`, ini `redline = true`, or `REDLINE=1`). Where the exception is at hand (each
xdist worker, or the single process) a report of a failure is annotated with its traceback frames and assertion
text; the controller alone collects them and hands each to a sidecar process (`redline.ci_hook.sidecar`, started at the
first failure) that attributes and queues it on another core while the tests run, so the end of the run waits
only for the last batch. Without the sidecar the controller writes them itself at the end. Redline never fails
or slows a run: anything going wrong on our side becomes one warning line and the run goes on.

This module is imported by every pytest run in an environment where Redline is installed, so it imports nothing
beyond pytest until the plugin is switched on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

#: the report attribute carrying our annotation from a worker to the controller (JSON-safe)
REPORT_ATTR = "redline"
#: frames kept per failure (innermost first); deep recursion would only bloat the report
MAX_FRAMES = 40
#: how long the end of the run may wait for the queue writer (the queue's own lock timeout is 30 s)
WRITER_TIMEOUT_S = 60
#: files `git blame` is asked about per run, at most, when `redline_blame` is on
MAX_BLAME_FILES = 50
_TRUE = ("1", "true", "yes", "on")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("redline", "Redline: record test failures as feedback on model-written code")
    group.addoption("--redline", action="store_true", dest="redline", default=None,
                    help="record failures in this repo's Redline queue (also: ini `redline = true`, REDLINE=1)")
    group.addoption("--no-redline", action="store_false", dest="redline", help="do not record failures")
    parser.addini("redline", type="bool", default=False, help="record failures in this repo's Redline queue")
    parser.addini("redline_blame", type="bool", default=False,
                  help="mark unattributed failures on lines an AI-trailer commit wrote (runs git blame)")
    group.addoption("--redline-trace", action="store_true", dest="redline_trace", default=None,
                    help="trace which model-written lines each test runs (coverage.py), so a failure on a wrong"
                         " value is attributed, at low trust, to the generations it executed")
    parser.addini("redline_trace", type="bool", default=False,
                  help="trace model-written lines each test runs (coverage.py); see --redline-trace")


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


def tracing(config: pytest.Config) -> bool:
    option = config.getoption("redline_trace", None)
    if option is not None:
        return bool(option)
    try:
        return bool(config.getini("redline_trace"))
    except ValueError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    if not enabled(config):
        return
    config.pluginmanager.register(Annotator(config if tracing(config) else None), "redline-annotator")
    if not hasattr(config, "workerinput"):  # the xdist controller, or a run without xdist
        config.pluginmanager.register(Recorder(config), "redline-recorder")


class Tracer:
    """Which lines of model-written code each test ran: coverage.py measuring only the files that hold spans,
    one dynamic context per test. Opt-in (`--redline-trace`): it costs what coverage costs."""

    def __init__(self, files: list[str]) -> None:
        import coverage

        self.cov = coverage.Coverage(data_file=None, include=files, config_file=False)
        self.cov.start()

    @classmethod
    def start(cls, config: pytest.Config) -> Tracer | None:
        """A tracer over the queue's span files, or None (no spans, coverage missing, or a tracer already on)."""
        if sys.gettrace() is not None:  # a debugger or pytest-cov already traces: two tracers break each other
            return None
        try:
            from redline.config import load_config
            from redline.queue import open_store

            redline_config = load_config(Path(str(config.rootpath)))
            store = open_store(redline_config)
            try:
                files = [str(redline_config.repo_root / p) for p in store.span_paths()]
            finally:
                store.close()
            return cls(files) if files else None
        except Exception:  # tracing is a bonus: without it failures are still recorded
            return None

    def begin(self, nodeid: str) -> None:
        self.cov.switch_context(nodeid)

    def executed(self, nodeid: str) -> dict[str, list[int]]:
        """1-based lines of span files the test `nodeid` ran, by absolute path."""
        import re

        data = self.cov.get_data()
        data.set_query_contexts([f"^{re.escape(nodeid)}$"])
        return {f: sorted(lines) for f in data.measured_files() if (lines := data.lines(f))}

    def stop(self) -> None:
        self.cov.stop()


class Annotator:
    """Runs where the test runs: adds frames and assertion text (and, when tracing, the model-written lines the
    test ran) to the report of each failure."""

    def __init__(self, trace_config: pytest.Config | None = None) -> None:
        #: set when tracing was asked for; the tracer starts with the first test, so an xdist controller (which
        #: runs none) never traces
        self._trace_config = trace_config
        self.tracer: Tracer | None = None
        self._skip = tuple({os.path.join(p, "") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})
        self._pytest_dirs = tuple(os.path.join(os.path.dirname(m.__file__ or ""), "")
                                  for m in (pytest, sys.modules.get("_pytest"), sys.modules.get("pluggy")) if m)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self._trace_config is not None:
            self.tracer, self._trace_config = Tracer.start(self._trace_config), None
        if self.tracer is not None:
            self.tracer.begin(item.nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if report.failed and call.excinfo is not None:
            try:
                annotation = self.annotate(call.excinfo)
                if self.tracer is not None:
                    annotation["executed"] = self.tracer.executed(item.nodeid)
                setattr(report, REPORT_ATTR, annotation)
            except Exception:  # never let an odd exception object break the user's run
                pass
        return report

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.tracer is not None:
            self.tracer.stop()

    def annotate(self, excinfo: pytest.ExceptionInfo[BaseException]) -> dict[str, Any]:
        """Project frames (absolute path, 0-based line, function), innermost first, from the raw traceback."""
        frames: list[list[Any]] = []
        tb: TracebackType | None = excinfo.tb
        while tb is not None:
            code = tb.tb_frame.f_code
            path = code.co_filename
            if not (path.startswith("<") or path.startswith(self._skip) or path.startswith(self._pytest_dirs)):
                frames.append([path, tb.tb_lineno - 1, code.co_name])
            tb = tb.tb_next
        frames.reverse()
        value = excinfo.value
        assertion = _safe_str(value) if isinstance(value, AssertionError) else None
        return {"frames": frames[:MAX_FRAMES], "assertion": assertion, "exc_type": type(value).__name__}


class Recorder:
    """Runs on the controller only: passes each failed report to the sidecar (or keeps it to write at the end)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rootpath = Path(str(config.rootpath))
        self.blame_files = MAX_BLAME_FILES if config.getini("redline_blame") else 0
        self.sidecar: Any = None
        self._started = False
        self._backlog = bytearray()
        self.failures: list[dict[str, Any]] = []
        self.recorded = 0
        self.known = 0
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
            failure = {
                "nodeid": report.nodeid,
                "when": getattr(report, "when", "collect"),
                "location": list(getattr(report, "location", None) or []),
                "message": _safe_str(getattr(crash, "message", "")) or report.head_line or report.nodeid,
                "detail": report.longreprtext,
                "annotation": getattr(report, REPORT_ATTR, None) or {},
                "subtest": _subtest(report),
            }
        except Exception as exc:
            self.problem = self.problem or f"could not read a failure report ({_safe_str(exc)})"
            return
        self.failures.append(failure)
        if not self._started:
            self._start_sidecar()
        if self.sidecar is not None:
            import json

            self._backlog += json.dumps(failure, default=str).encode() + b"\n"
            self._send()

    def _send(self) -> None:
        """Write what the pipe takes now (it is non-blocking: a busy sidecar never holds up a test)."""
        try:
            while self._backlog:
                sent = os.write(self.sidecar.stdin.fileno(), self._backlog)
                del self._backlog[:sent]
        except BlockingIOError:
            pass
        except (OSError, ValueError):  # it died: everything is written in-process at the end instead
            _stop(self.sidecar)
            self.sidecar = None

    def _start_sidecar(self) -> None:
        """Start the writer at the first failure, so a green run costs nothing at all."""
        import subprocess

        self._started = True
        try:
            self.sidecar = subprocess.Popen(sidecar_command(self.rootpath, self.blame_files), stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            os.set_blocking(self.sidecar.stdin.fileno(), False)
        except OSError:
            _stop(self.sidecar)
            self.sidecar = None  # written in-process at the end instead

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        proc, self.sidecar = self.sidecar, None
        if not self.failures:
            _stop(proc)
            return
        try:
            result = self._from_sidecar(proc) if proc is not None else None
            if result is None:
                from redline.ci_hook.sidecar import record

                result = record(self.rootpath, self.failures, blame_files=self.blame_files)
        except Exception as exc:  # a broken queue must never fail the run
            text = _safe_str(exc).strip()
            result = {"problem": text.splitlines()[0] if text else type(exc).__name__}
        if "problem" in result:
            self.problem = str(result["problem"])
        else:
            # records the queue did not hold before: a re-run of the same failures adds (and says) nothing new
            self.recorded, self.generations = int(result["new"]), int(result["generations"])
            self.unattributed = int(result["unattributed"])
            self.known = max(0, int(result["records"]) - self.recorded)
            self.skipped, self.spooled = int(result.get("skipped") or 0), result.get("spooled")

    def _from_sidecar(self, proc: Any) -> dict[str, Any] | None:
        """The sidecar's answer once it has written the last batch; None when it died without one."""
        import json
        import subprocess

        try:
            os.set_blocking(proc.stdin.fileno(), True)
            out, _ = proc.communicate(bytes(self._backlog) or None, timeout=WRITER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _stop(proc)
            return {"problem": f"the queue writer did not finish within {WRITER_TIMEOUT_S} s"}
        except OSError:
            _stop(proc)
            return None
        lines = out.decode("utf-8", "replace").strip().splitlines()
        try:
            result = json.loads(lines[-1]) if lines else None
        except ValueError:
            return None
        return result if isinstance(result, dict) else None

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        _stop(self.sidecar)
        self.sidecar = None

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.problem:
            what = "some failures" if self.recorded else "failures"
            terminalreporter.write_line(f"redline: warning: {what} not recorded: {self.problem}"
                                        " (the test run is unaffected)", yellow=True)
            if not self.recorded:
                return
        line = f"redline: {self.recorded} failures recorded against {self.generations} generations"
        notes = [f"{self.unattributed} unattributed"] * bool(self.unattributed)
        notes += [f"{self.known} already queued"] * bool(self.known)
        notes += [f"{getattr(self, 'skipped', 0)} skipped: could not be stored"] * bool(getattr(self, "skipped", 0))
        if notes:
            line += f" ({'; '.join(notes)})"
        terminalreporter.write_line(line)
        if getattr(self, "spooled", None):
            terminalreporter.write_line(f"redline: {self.spooled}", yellow=True)


def sidecar_command(rootpath: Path, blame_files: int) -> list[str]:
    return [sys.executable, "-m", "redline.ci_hook.sidecar", str(rootpath), str(blame_files)]


def _stop(proc: Any) -> None:
    """Kill the sidecar if it still runs and release its pipes; never raises."""
    if proc is None:
        return
    try:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    except OSError:
        pass
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:  # unflushed bytes to a dead process
            pass


def _subtest(report: Any) -> str | None:
    """A subtest's description (`[msg] (k=v)`), so ten failing subtests of one test are ten records."""
    context = getattr(report, "context", None)
    if context is None:
        return None
    msg, kwargs = getattr(context, "msg", None), getattr(context, "kwargs", None) or {}
    parts = [f"[{msg}]"] if msg is not None else []
    if kwargs:
        parts.append("(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")")
    return " ".join(parts) or "(<subtest>)"


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
