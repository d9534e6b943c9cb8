"""One training in a child process: low priority, a time limit, and an outcome the daemon can always read.

The child (`python -m redline.daemon.child REPO_ROOT RESULT_FILE`) runs `run_training` and writes its
`RunReport` as JSON to RESULT_FILE. Whatever happens to it — an exception, an out-of-memory kill, SIGKILL, the
time limit — the parent gets a `ChildOutcome` with a one-line reason, and nothing is promoted unless the child
finished and its gate passed. On the time limit the child gets SIGTERM first (the run releases its claim and
leaves its checkpoint, so the next attempt resumes), then SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: lower CPU priority: the machine's owner comes first
NICE = 10
#: seconds between SIGTERM and SIGKILL when the time limit is reached
GRACE_S = 30.0
#: a daemon child's queue claims are named `redline-daemon-<random>`
CLAIM_PREFIX = "redline-daemon"


@dataclass(frozen=True)
class ChildOutcome:
    ok: bool
    promoted: bool
    version: str | None
    reason: str | None
    report: dict[str, Any] | None = None
    seconds: float = 0.0


def command(repo_root: Path, owner: str, result_file: Path, *, python: str = sys.executable) -> list[str]:
    """The child's command line, under `ionice -c 3` (idle I/O class) where that exists."""
    cmd = [python, "-m", "redline.daemon.child", str(repo_root), owner, str(result_file)]
    ionice = shutil.which("ionice")
    return [ionice, "-c", "3", *cmd] if ionice and sys.platform.startswith("linux") else cmd


def run_child(repo_root: Path, *, time_limit_s: float, env: dict[str, str] | None = None,
              cmd: list[str] | None = None, grace_s: float = GRACE_S, stop: threading.Event | None = None
              ) -> ChildOutcome:
    """Train `repo_root` in a child process and wait for it (at most `time_limit_s` + `grace_s`). `cmd` replaces
    the child's command line (tests); it gets its claim owner and the report file's path as its last arguments.
    When the child dies without a report, its claim is released here, so the next attempt trains on the same
    records and resumes from their checkpoint instead of waiting an hour for the claim to go stale."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="redline-child-") as tmp:
        result_file = Path(tmp) / "report.json"
        log_file = Path(tmp) / "stderr.txt"
        with log_file.open("wb") as err:
            owner = f"{CLAIM_PREFIX}-{uuid.uuid4().hex[:12]}"
            argv = [*cmd, owner, str(result_file)] if cmd else command(repo_root, owner, result_file)
            proc = subprocess.Popen(argv, cwd=repo_root, env=env,
                                    stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            _lower_priority(proc.pid)
            timed_out = _wait(proc, time_limit_s, grace_s, stop or threading.Event())
        seconds = time.monotonic() - started
        tail = _last_line(log_file)
        report = _read(result_file)
    if report is None:
        _release(repo_root, owner)
    if report is not None:  # the run finished and said how; what happened to the process afterwards is moot
        return ChildOutcome(True, bool(report.get("promoted")), report.get("version"), report.get("reason"),
                            report, seconds)
    if timed_out and stop is not None and stop.is_set():
        return ChildOutcome(False, False, None, "stopped with the daemon; the next attempt resumes from its "
                            "checkpoint", None, seconds)
    if timed_out:
        return ChildOutcome(False, False, None, f"stopped at the time limit ({time_limit_s / 60:.0f} min); the "
                            "next attempt resumes from its checkpoint", None, seconds)
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return ChildOutcome(False, False, None, f"training process killed by {name}{hint}", None, seconds)
    return ChildOutcome(False, False, None, f"training process failed (exit {proc.returncode}): "
                        f"{tail or 'no output'}", None, seconds)


def _release(repo_root: Path, owner: str) -> None:
    from redline.config import load_config
    from redline.errors import RedlineError
    from redline.queue import open_store

    try:
        store = open_store(load_config(repo_root))
    except RedlineError:
        return
    try:
        store.release_owner(owner)
    except RedlineError:
        pass
    finally:
        store.close()


def _lower_priority(pid: int) -> None:
    """Nice the child from here (not in `preexec_fn`, which is unsafe with the watcher threads running)."""
    if hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, pid, NICE)
        except OSError:
            pass


def _wait(proc: subprocess.Popen[bytes], limit_s: float, grace_s: float, stop: threading.Event) -> bool:
    """Wait for the child; True when it had to be stopped (time limit, or `stop` set by the daemon's shutdown)."""
    deadline = time.monotonic() + limit_s
    while proc.poll() is None:
        if stop.is_set() or time.monotonic() >= deadline:
            break
        try:
            proc.wait(timeout=min(1.0, max(0.01, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
    if proc.returncode is not None:
        return False
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return True


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main(argv: list[str]) -> int:
    """The child: one `run_training` on the repository at argv[0], claiming as argv[1]; the report goes to
    argv[2]."""
    from dataclasses import asdict

    from redline.config import load_config
    from redline.errors import RedlineError
    from redline.queue import open_store
    from redline.trainer.run import model_for, run_training, train_config_for

    root, owner, result_file = Path(argv[0]), argv[1], Path(argv[2])
    try:
        config = load_config(root)
        store = open_store(config)
        try:
            report = run_training(config, store, model=model_for(config), train_config=train_config_for(config),
                                  progress=False, claim_owner=owner)
        finally:
            store.close()
    except RedlineError as exc:
        sys.stderr.write(f"redline: error: {exc.one_line()}\n")
        return 1
    data = asdict(report)
    partial = result_file.with_name(result_file.name + ".partial")
    partial.write_text(json.dumps(data, default=str), encoding="utf-8")
    os.replace(partial, result_file)  # whole or absent: the parent never reads half a report
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
