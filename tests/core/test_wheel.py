"""The built wheel claims no generic import name: installed into a fresh venv inside a directory that holds the
user's own `trainer/` and `bench/` packages, `redline`, `pytest --redline` and `import trainer` each get the right
module (issue: "names that cannot collide")."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("redline-*.whl")
    return whl


def test_wheel_ships_only_redline(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("redline-")}
    assert tops == {"redline"}, tops
    for room in ("trainer", "lsp_server", "ci_hook"):
        assert any(n.startswith(f"redline/{room}/") for n in names), room
    assert not [n for n in names if n.endswith(".safetensors")], "the demo's weights are not product code"


def test_user_packages_named_trainer_and_bench_keep_their_names(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    # the wheel itself, no dependencies: those come from this environment through a .pth line, so the test needs
    # no network; the wheel's `redline` sits first on the fresh venv's path
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   timeout=300)
    target = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    (Path(target) / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    user = tmp_path / "userrepo"
    for pkg in ("trainer", "bench"):
        (user / pkg).mkdir(parents=True)
        (user / pkg / "__init__.py").write_text(f"WHO = 'user {pkg}'\n")
    (user / "test_user.py").write_text("import trainer\n\ndef test_it():\n    assert trainer.WHO == 'user trainer'\n")
    subprocess.run(["git", "init", "-q", str(user)], check=True)
    env = {**os.environ, "REDLINE_HOME": str(tmp_path / "home"), "PYTHONPATH": ""}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(py), *args], cwd=user, env=env, capture_output=True, text=True, timeout=300)

    where = run("-c", "import redline, redline.trainer, trainer, bench; "
                      "print(redline.__file__); print(redline.trainer.__file__); print(trainer.WHO, bench.WHO)")
    assert where.returncode == 0, where.stderr
    lines = where.stdout.splitlines()
    assert lines[0].startswith(target) and lines[1].startswith(target), lines
    assert lines[2] == "user trainer user bench"

    cli = subprocess.run([str(venv / "bin" / "redline"), "--help"], cwd=user, env=env, capture_output=True,
                         text=True, timeout=300)
    assert cli.returncode == 0 and "train" in cli.stdout, cli.stderr

    tests = run("-m", "pytest", "--redline", "-q", "-p", "no:cacheprovider", "test_user.py")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout
    plugins = run("-c", "import importlib.metadata as m; "
                        "print([e.value for e in m.entry_points(group='pytest11') if e.name == 'redline'])")
    assert "redline.ci_hook.pytest_plugin" in plugins.stdout
