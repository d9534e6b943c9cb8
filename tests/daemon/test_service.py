"""The service files: a systemd unit `systemd-analyze verify` accepts, a launchd plist that round-trips through
plistlib, crontab lines installed once; install and uninstall are idempotent."""

from __future__ import annotations

import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest

from redline.daemon import service
from tests.conftest import skip_or_fail


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        skip_or_fail("systemd-analyze is not installed (Debian package `systemd`)")
    p = service.plan("systemd", tmp_path / "home", user_home=tmp_path)
    (unit,) = p.files
    unit.path.parent.mkdir(parents=True)
    unit.path.write_text(unit.text, encoding="utf-8")
    proc = subprocess.run([exe, "verify", "--man=no", str(unit.path)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 and ("Failed to " in proc.stderr and "bus" in proc.stderr.lower()):
        pytest.skip(f"systemd-analyze cannot run in this container: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    assert "ExecStart=" in unit.text and "-m redline daemon run" in unit.text and "Restart=on-failure" in unit.text


def test_launchd_plist_round_trips(tmp_path: Path) -> None:
    p = service.plan("launchd", tmp_path / "home", user_home=tmp_path)
    (agent,) = p.files
    data = plistlib.loads(agent.text.encode())
    assert data["Label"] == service.LABEL and data["ProgramArguments"][-3:] == ["redline", "daemon", "run"]
    assert data["KeepAlive"] == {"SuccessfulExit": False} and data["RunAtLoad"] is True
    assert plistlib.loads(plistlib.dumps(data)) == data
    assert agent.path == tmp_path / "Library" / "LaunchAgents" / f"{service.LABEL}.plist"


class FakeSystem:
    """Records commands; keeps a crontab in memory."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.crontab: str | None = None

    def __call__(self, cmd: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        self.calls.append(cmd)
        if cmd == ["crontab", "-l"]:
            return subprocess.CompletedProcess(cmd, 0 if self.crontab is not None else 1, self.crontab or "", "")
        if cmd == ["crontab", "-"]:
            self.crontab = stdin
        return subprocess.CompletedProcess(cmd, 0, "", "")


def test_crontab_install_is_idempotent_and_keeps_other_lines(tmp_path: Path) -> None:
    system = FakeSystem()
    system.crontab = "0 3 * * * backup.sh\n"
    p = service.plan("cron", tmp_path / "home", user_home=tmp_path)
    assert service.install(p, system) == ["crontab: updated"]
    first = system.crontab
    assert service.install(p, system) == ["crontab: already installed"] and system.crontab == first
    assert first.count(service.CRON_MARK) == 2 and "backup.sh" in first and "--if-not-running" in first
    assert service.installed(p, system)
    service.uninstall(p, system)
    assert system.crontab == "0 3 * * * backup.sh\n" and not service.installed(p, system)


def test_systemd_install_writes_once_and_uninstall_removes(tmp_path: Path) -> None:
    system = FakeSystem()
    p = service.plan("systemd", tmp_path / "home", user_home=tmp_path)
    assert service.install(p, system)[0].startswith("wrote")
    assert service.install(p, system)[0].startswith("unchanged")
    assert ["systemctl", "--user", "enable", "--now", service.UNIT_NAME] in system.calls
    assert service.installed(p)
    service.uninstall(p, system)
    assert not p.files[0].path.exists() and ["systemctl", "--user", "disable", "--now", service.UNIT_NAME] in \
        system.calls
