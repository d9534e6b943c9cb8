"""`redline daemon install | uninstall`: run the daemon as a user service.

A systemd user unit on Linux (restarted on failure), a launchd agent on macOS (kept alive), or crontab lines
where neither exists (start at boot, and every 15 minutes if it is not running). Installing twice writes the same
files and changes nothing else; `dry_run` returns the files without touching the system.
"""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redline.errors import RedlineError

UNIT_NAME = "redline-daemon.service"
LABEL = "dev.redline.daemon"
CRON_MARK = "# redline-daemon"

Runner = Callable[[list[str], str | None], "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class ServiceFile:
    path: Path
    text: str


@dataclass(frozen=True)
class Plan:
    """What installing means here: the kind, the files to write, and the commands to run afterwards."""

    kind: str
    files: tuple[ServiceFile, ...]
    commands: tuple[tuple[str, ...], ...]
    uninstall: tuple[tuple[str, ...], ...]


def daemon_command(python: str = sys.executable) -> list[str]:
    return [python, "-m", "redline", "daemon", "run"]


def systemd_unit(command: list[str], env: dict[str, str]) -> str:
    lines = ["[Unit]", "Description=Redline: nightly local training of per-repository adapters",
             "After=default.target", "", "[Service]", "Type=simple",
             f"ExecStart={' '.join(_systemd_quote(c) for c in command)}",
             "Restart=on-failure", "RestartSec=30", "Nice=10", "IOSchedulingClass=idle"]
    lines += [f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in sorted(env.items())]
    lines += ["", "[Install]", "WantedBy=default.target", ""]
    return "\n".join(lines)


def launchd_plist(command: list[str], env: dict[str, str], log_dir: Path) -> bytes:
    data: dict[str, object] = {
        "Label": LABEL, "ProgramArguments": command, "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False}, "ProcessType": "Background", "Nice": 10, "LowPriorityIO": True,
        "StandardOutPath": str(log_dir / "daemon.stdout.log"), "StandardErrorPath": str(log_dir / "daemon.stderr.log"),
    }
    if env:
        data["EnvironmentVariables"] = dict(env)
    return plistlib.dumps(data)


def cron_lines(command: list[str], env: dict[str, str], log_file: Path) -> list[str]:
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    run = " ".join(shlex.quote(c) for c in [*command, "--if-not-running"]) + f" >> {shlex.quote(str(log_file))} 2>&1"
    run = f"{prefix} {run}" if prefix else run
    return [f"@reboot {run} {CRON_MARK}", f"*/15 * * * * {run} {CRON_MARK}"]


def default_kind() -> str:
    """The platform's own kind, whether or not it runs here: launchd on macOS, a systemd user unit elsewhere."""
    return "launchd" if sys.platform == "darwin" else "systemd"


def detect() -> str:
    """The kind this system runs: launchd, a systemd user session, else cron; raises when there is none."""
    if sys.platform == "darwin":
        return "launchd"
    if shutil.which("systemctl") and _systemd_user_running():
        return "systemd"
    if shutil.which("crontab"):
        return "cron"
    raise RedlineError("no service manager found (systemd user session, launchd or cron)",
                       fix="run `redline daemon` from your own session manager instead")


def plan(kind: str, home: Path, *, user_home: Path | None = None, python: str = sys.executable) -> Plan:
    """The files and commands for `kind` ("systemd", "launchd" or "cron"); `home` is the Redline home."""
    user_home = user_home or Path.home()
    command = daemon_command(python)
    env = {"REDLINE_HOME": str(home)} if os.environ.get("REDLINE_HOME") else {}
    if kind == "systemd":
        unit = user_home / ".config" / "systemd" / "user" / UNIT_NAME
        return Plan(kind, (ServiceFile(unit, systemd_unit(command, env)),),
                    (("systemctl", "--user", "daemon-reload"), ("systemctl", "--user", "enable", "--now", UNIT_NAME)),
                    (("systemctl", "--user", "disable", "--now", UNIT_NAME),))
    if kind == "launchd":
        agent = user_home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        target = f"gui/{os.getuid()}"
        return Plan(kind, (ServiceFile(agent, launchd_plist(command, env, home / "logs").decode()),),
                    (("launchctl", "bootout", f"{target}/{LABEL}"), ("launchctl", "bootstrap", target, str(agent))),
                    (("launchctl", "bootout", f"{target}/{LABEL}"),))
    if kind == "cron":
        lines = "\n".join(cron_lines(command, env, home / "logs" / "daemon.cron.log")) + "\n"
        return Plan(kind, (ServiceFile(Path("crontab"), lines),), (), ())
    raise RedlineError(f"unknown service kind {kind!r}", fix="use systemd, launchd or cron")


def install(p: Plan, run: Runner | None = None) -> list[str]:
    """Write the files and start the service; returns what was done, one line each."""
    run = run or _run
    done = []
    if p.kind == "cron":
        current = _crontab(run)
        kept = [ln for ln in current if CRON_MARK not in ln]
        new = kept + p.files[0].text.splitlines()
        if new != current:
            run(["crontab", "-"], "\n".join(new) + "\n")
        return ["crontab: " + ("updated" if new != current else "already installed")]
    for f in p.files:
        f.path.parent.mkdir(parents=True, exist_ok=True)
        same = f.path.is_file() and f.path.read_text(encoding="utf-8") == f.text
        if not same:
            f.path.write_text(f.text, encoding="utf-8")
        done.append(f"{'unchanged' if same else 'wrote'} {f.path}")
    for cmd in p.commands:
        proc = run(list(cmd), None)
        if proc.returncode != 0 and cmd[1] != "bootout":  # booting out an agent that is not loaded is fine
            raise RedlineError(f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()[:200]}",
                               fix="see docs/daemon.md to install the service by hand")
        done.append("ran " + " ".join(cmd))
    return done


def uninstall(p: Plan, run: Runner | None = None) -> list[str]:
    run = run or _run
    if p.kind == "cron":
        current = _crontab(run)
        kept = [ln for ln in current if CRON_MARK not in ln]
        if kept != current:
            run(["crontab", "-"], "\n".join(kept) + ("\n" if kept else ""))
        return ["crontab: " + ("removed" if kept != current else "not installed")]
    done = []
    for cmd in p.uninstall:
        run(list(cmd), None)
        done.append("ran " + " ".join(cmd))
    for f in p.files:
        if f.path.exists():
            f.path.unlink()
            done.append(f"removed {f.path}")
    if p.kind == "systemd":
        run(["systemctl", "--user", "daemon-reload"], None)
    return done


def installed(p: Plan, run: Runner | None = None) -> bool:
    if p.kind == "cron":
        return any(CRON_MARK in ln for ln in _crontab(run or _run))
    return all(f.path.is_file() for f in p.files)


def _crontab(run: Runner) -> list[str]:
    proc = run(["crontab", "-l"], None)
    return proc.stdout.splitlines() if proc.returncode == 0 else []  # no crontab yet: exit 1


def _run(cmd: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    """Run a service-manager command; `launchctl bootout` of an agent not loaded fails harmlessly."""
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RedlineError(f"`{' '.join(cmd)}` could not run ({exc})", fix="install the service by hand, see "
                           "docs/daemon.md") from None


def _systemd_user_running() -> bool:
    try:
        proc = subprocess.run(["systemctl", "--user", "is-system-running"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.stdout.strip() in ("running", "degraded", "starting", "initializing")


def _systemd_quote(word: str) -> str:
    if word and all(c.isalnum() or c in "/._-=:+,@" for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'
