"""`redline ci run`: diagnostics from compilers and checkers, output and exit code passed through untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from redline.ci_hook.run import parse_diagnostics, source_for
from redline.config import load_config
from redline.queue import open_store
from redline.records import Range

OUTPUT = """\
src/a.c: In function 'main':
src/a.c:3:12: error: 'x' undeclared (first use in this function)
    3 |     return x;
      |            ^
src/a.c:3:12: note: each undeclared identifier is reported only once for each function it appears in
src/b.c:10:1: warning: control reaches end of non-void function [-Wreturn-type]
\x1b[1msrc/c.cpp:7:5: \x1b[0m\x1b[0;1;31merror: \x1b[0m\x1b[1muse of undeclared identifier 'y'\x1b[0m
src/main.rs:2:5: error[E0425]: cannot find value `z` in this scope
pkg/m.py:12: error: Incompatible return value type (got "str", expected "int")  [return-value]
pkg/m.py:14:9: error: Name "q" is not defined  [name-defined]
pkg/m.py:15: note: See https://mypy.rtfd.io/en/stable/_refs.html#code-name-defined
web/app.ts(12,5): error TS2322: Type 'string' is not assignable to type 'number'.
web/app.ts:20:3 - error TS2304: Cannot find name 'foo'.
../../elsewhere/x.c:1:1: error: outside
/usr/include/stdio.h:3:1: error: system header
Found 2 errors in 1 file (checked 3 source files)
"""


def test_parse_diagnostics_of_each_tool(tmp_path: Path) -> None:
    parsed = parse_diagnostics(OUTPUT, source="build", cwd=tmp_path, repo_root=tmp_path)
    got = [(f.path, f.range, f.severity, f.rule, f.message) for f in parsed.feedback]
    assert got == [
        ("src/a.c", Range(2, 3, 11), "error", None, "'x' undeclared (first use in this function)"),
        ("src/b.c", Range(9, 10, 0), "warning", "-Wreturn-type", "control reaches end of non-void function"),
        ("src/c.cpp", Range(6, 7, 4), "error", None, "use of undeclared identifier 'y'"),
        ("src/main.rs", Range(1, 2, 4), "error", "E0425", "cannot find value `z` in this scope"),
        ("pkg/m.py", Range(11, 12), "error", "return-value",
         'Incompatible return value type (got "str", expected "int")'),
        ("pkg/m.py", Range(13, 14, 8), "error", "name-defined", 'Name "q" is not defined'),
        ("web/app.ts", Range(11, 12, 4), "error", "TS2322", "Type 'string' is not assignable to type 'number'."),
        ("web/app.ts", Range(19, 20, 2), "error", "TS2304", "Cannot find name 'foo'."),
    ]
    assert "reported only once" in (parsed.feedback[0].detail or "")
    assert "See https://mypy" in (parsed.feedback[5].detail or "")
    assert parsed.outside_repo == 2


@pytest.mark.parametrize(("cmd", "source"), [
    (["gcc", "-c", "a.c"], "gcc"), (["python", "-m", "mypy", "pkg"], "mypy"), (["npx", "tsc", "--noEmit"], "tsc"),
    (["/usr/bin/cargo", "build"], "cargo"),
])
def test_source_for(cmd: list[str], source: str) -> None:
    assert source_for(cmd) == source


SCRIPT = r"""
import sys
sys.stdout.write("compiling\n")
sys.stdout.buffer.write(b"raw \xff bytes\n")
sys.stderr.write("pkg/m.py:3:1: error: broken thing\n")
sys.exit(3)
"""


def _redline(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-c", "from redline.cli import main; main()", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, env=dict(os.environ), check=False, timeout=120)


def test_ci_run_passes_output_and_exit_code_through(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("a\nb\nc\n")
    done = _redline(["ci", "run", "--", sys.executable, "-c", SCRIPT], tmp_path)
    assert done.returncode == 3
    assert done.stdout == b"compiling\nraw \xff bytes\n"
    assert done.stderr.startswith(b"pkg/m.py:3:1: error: broken thing\n")
    assert b"redline: 1 diagnostics recorded" in done.stderr
    store = open_store(load_config(tmp_path))
    [fb] = list(store.feedback())
    store.close()
    assert (fb.path, fb.range, fb.source) == ("pkg/m.py", Range(2, 3, 0), "python")


def test_ci_run_with_a_broken_queue_still_returns_the_commands_code(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env = dict(os.environ, REDLINE_HOME=str(blocker))
    cmd = [sys.executable, "-c", "from redline.cli import main; main()", "ci", "run", "--", sys.executable, "-c",
           "import sys; print('x.py:1:1: error: e'); sys.exit(5)"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, env=env, check=False, timeout=120)
    assert done.returncode == 5 and done.stdout == b"x.py:1:1: error: e\n"
    assert done.stderr.count(b"redline: warning") == 1


def test_ci_run_missing_command(tmp_path: Path) -> None:
    done = _redline(["ci", "run", "--", "no-such-command-anywhere"], tmp_path)
    assert done.returncode == 127 and b"command not found" in done.stderr
