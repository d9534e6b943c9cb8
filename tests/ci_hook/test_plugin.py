"""The pytest plugin, driven by pytester: off unless asked, attribution frame by frame, xdist, the entry point,
and a broken queue that costs one warning line and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from redline.config import load_config
from redline.ledger import record_generation
from redline.queue import open_store
from redline.records import Generation, Insertion, ModelRef, Prompt, Range
from tests.core.helpers import queued_feedback as _feedback

pytest_plugins = ["pytester"]

#: plugins this venv installs that the runs below do not need (hypothesis and lsprotocol take seconds to import)
LEAN = ("-p", "no:hypothesispytest", "-p", "no:pytest-lsp", "-p", "no:asyncio", "-p", "no:anyio",
        "-p", "no:cacheprovider")

GENERATED = '''\
def slugify(text):
    return text.lower().replace(" ", "_")


def ratio(a, b):
    return a / b
'''

TESTS = '''\
from gen import ratio, slugify


def test_slug():
    assert slugify("Hello World") == "hello-world"


def test_ratio():
    assert ratio(1, 0) == 0


def test_passes():
    assert slugify("a") == "a"


def test_plain_failure():
    assert 1 + 1 == 3
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / ".git").mkdir()
    pytester.makepyfile(gen=GENERATED, test_gen=TESTS)
    return pytester


def _record_span(root: Path, path: str, first: int, last: int) -> Generation:
    config = load_config(root)
    lines = (root / path).read_text().splitlines(keepends=True)
    gen = Generation(prompt_format="fim", prompt=Prompt(prefix="".join(lines[:first]), suffix=""),
                     completion="".join(lines[first:last + 1]), model=ModelRef("tiny"),
                     insertion=Insertion(path, Range(first, last + 1)))
    store = open_store(config)
    try:
        return record_generation(store, config, gen)
    finally:
        store.close()




def test_does_nothing_unless_asked(project: pytest.Pytester, redline_home: Path) -> None:
    result = project.runpytest(*LEAN)
    result.assert_outcomes(passed=1, failed=3)
    assert "redline:" not in result.stdout.str()
    assert not redline_home.exists()


def test_attributes_failures_to_the_generation_that_wrote_the_code(project: pytest.Pytester) -> None:
    gen = _record_span(project.path, "gen.py", 0, 5)
    result = project.runpytest(*LEAN, "--redline")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(["redline: 3 failures recorded against 1 generations (2 unattributed)"])
    by_test = {fb.rule: fb for fb in _feedback(project.path)}
    # slugify returned before the assert failed: it is not in the traceback, so nothing points at it
    slug = by_test["test_gen.py::test_slug"]
    assert slug.kind == "test_failure" and slug.source == "pytest" and slug.generation_id is None
    assert slug.meta["assertion"].startswith("assert 'hello_world' == 'hello-world'")
    ratio = by_test["test_gen.py::test_ratio"]
    assert ratio.generation_id == gen.id and ratio.path == "gen.py" and ratio.range == Range(5, 6)
    assert ratio.message.startswith("ZeroDivisionError")
    assert ratio.meta["frames"][0] == ["gen.py", 5] and ratio.meta["exc_type"] == "ZeroDivisionError"
    assert "def ratio" in (ratio.detail or "")
    plain = by_test["test_gen.py::test_plain_failure"]
    assert plain.generation_id is None and plain.path == "test_gen.py" and plain.range == Range(16, 17)
    assert plain.meta["assertion"].startswith("assert (1 + 1) == 3")


def test_outer_frames_and_model_written_tests(project: pytest.Pytester) -> None:
    test_gen = _record_span(project.path, "test_gen.py", 15, 16)  # the model wrote test_plain_failure
    result = project.runpytest(*LEAN, "--redline")
    result.stdout.fnmatch_lines(["redline: 3 failures recorded against 1 generations (2 unattributed)"])
    [attributed] = [fb for fb in _feedback(project.path) if fb.generation_id]
    assert attributed.generation_id == test_gen.id and attributed.rule == "test_gen.py::test_plain_failure"


def test_reruns_do_not_duplicate(project: pytest.Pytester) -> None:
    project.runpytest(*LEAN, "--redline")
    project.runpytest(*LEAN, "--redline")
    assert len(_feedback(project.path)) == 3


@pytest.mark.parametrize(("how", "on"), [
    ({"ini": "[pytest]\nredline = true\n"}, True),
    ({"env": "1"}, True),
    ({"env": "0", "ini": "[pytest]\nredline = true\n"}, False),
    ({"env": "1", "args": ["--no-redline"]}, False),
])
def test_switches(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: dict, on: bool) -> None:
    if "ini" in how:
        project.makeini(how["ini"])
    if "env" in how:
        monkeypatch.setenv("REDLINE", how["env"])
    result = project.runpytest(*LEAN, *how.get("args", []))
    assert ("redline: 3 failures recorded" in result.stdout.str()) is on


def test_collection_errors_are_recorded(pytester: pytest.Pytester) -> None:
    (pytester.path / ".git").mkdir()
    pytester.makepyfile(test_broken="import nowhere_to_be_found\n")
    result = pytester.runpytest(*LEAN, "--redline")
    result.stdout.fnmatch_lines(["redline: 1 failures recorded against 0 generations (1 unattributed)"])
    [fb] = _feedback(pytester.path)
    assert fb.rule == "test_broken.py" and "nowhere_to_be_found" in (fb.detail or "")


def test_broken_queue_is_one_warning_and_the_run_goes_on(project: pytest.Pytester,
                                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("REDLINE_HOME", str(blocker))
    result = project.runpytest(*LEAN, "--redline")
    result.assert_outcomes(passed=1, failed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    warnings = [line for line in result.stdout.lines if line.startswith("redline:")]
    assert len(warnings) == 1 and "not recorded" in warnings[0] and "unaffected" in warnings[0]


def test_broken_queue_keeps_a_green_run_green(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    (pytester.path / ".git").mkdir()
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("REDLINE_HOME", str(blocker))
    assert pytester.runpytest(*LEAN, "--redline").ret == pytest.ExitCode.OK


def test_unserialisable_exception_does_not_break_the_run(pytester: pytest.Pytester) -> None:
    (pytester.path / ".git").mkdir()
    pytester.makepyfile(test_odd='''
class Odd(Exception):
    def __str__(self):
        raise RuntimeError("no")

def test_odd():
    raise Odd()
''')
    result = pytester.runpytest(*LEAN, "--redline")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["redline: 1 failures recorded against 0 generations (1 unattributed)"])


@pytest.mark.slow
def test_xdist_workers_annotate_and_the_controller_writes(project: pytest.Pytester) -> None:
    gen = _record_span(project.path, "gen.py", 0, 5)
    result = project.runpytest_subprocess(*LEAN, "-n", "2", "--redline")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(["redline: 3 failures recorded against 1 generations (2 unattributed)"])
    assert sum("failures recorded" in line for line in result.stdout.lines) == 1
    by_test = {fb.rule: fb for fb in _feedback(project.path)}
    ratio = by_test["test_gen.py::test_ratio"]
    assert ratio.generation_id == gen.id and ratio.meta["frames"][0] == ["gen.py", 5]
    assert by_test["test_gen.py::test_slug"].meta["assertion"].startswith("assert 'hello_world' == 'hello-world'")


def test_loads_through_the_entry_point(project: pytest.Pytester) -> None:
    assert "PYTEST_PLUGINS" not in os.environ
    help_text = project.runpytest_subprocess(*LEAN, "--help").stdout.str()
    assert "--redline" in help_text and "--no-redline" in help_text
    result = project.runpytest_subprocess(*LEAN, "--redline", "-p", "no:xdist")
    result.stdout.fnmatch_lines(["redline: 3 failures recorded against 0 generations (3 unattributed)"])
    assert len(_feedback(project.path)) == 3


def test_plugin_module_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys, redline.ci_hook.pytest_plugin; heavy = {'torch', 'redline.queue', 'sqlite3', 'rich'}"
            " & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", [["/nonexistent/redline-writer"], ["{python}", "-c", "pass"]],
                         ids=["cannot-start", "dies-without-answer"])
def test_writes_in_process_when_the_sidecar_is_unavailable(project: pytest.Pytester,
                                                           monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    import sys

    import redline.ci_hook.pytest_plugin as plugin

    argv = [sys.executable if part == "{python}" else part for part in command]
    monkeypatch.setattr(plugin, "sidecar_command", lambda rootpath, blame_files: argv)
    gen = _record_span(project.path, "gen.py", 0, 5)
    result = project.runpytest(*LEAN, "--redline")
    result.stdout.fnmatch_lines(["redline: 3 failures recorded against 1 generations (2 unattributed)"])
    assert [fb.rule for fb in _feedback(project.path) if fb.generation_id == gen.id] == ["test_gen.py::test_ratio"]


def test_a_green_run_starts_no_writer(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    import sys

    import redline.ci_hook.pytest_plugin as plugin

    marker = tmp_path / "writer-started"
    argv = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    monkeypatch.setattr(plugin, "sidecar_command", lambda rootpath, blame_files: argv)
    (pytester.path / ".git").mkdir()
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")
    result = pytester.runpytest(*LEAN, "--redline")
    result.stdout.fnmatch_lines(["redline: 0 failures recorded against 0 generations"])
    assert not marker.exists()


def test_a_recorded_failure_can_be_rerun_on_a_new_answer(project: pytest.Pytester) -> None:
    """The node rerun on a scratch copy with an answer spliced in (what the gate and the probe do): the fixed
    function passes it, the recorded one fails it again, and the user's tree is left as it was."""
    from redline.evidence import Judge, recheck_of

    gen = _record_span(project.path, "gen.py", 0, 5)
    project.runpytest(*LEAN, "--redline").assert_outcomes(passed=1, failed=3)
    ratio = next(fb for fb in _feedback(project.path) if fb.rule == "test_gen.py::test_ratio")
    recipe = recheck_of(ratio)
    assert recipe is not None and recipe.reads == "exit" and recipe.argv[-1] == "test_gen.py::test_ratio"
    fixed = GENERATED.replace("return a / b", "return a / b if b else 0")
    current = (project.path / "gen.py").read_text()
    with Judge(project.path, timeout_s=120) as judge:
        assert judge.verdict(gen, [ratio], fixed, file_text=current).clean is True
        assert judge.verdict(gen, [ratio], GENERATED.replace("a / b", "a * b + 1"), file_text=current).clean is False
    assert (project.path / "gen.py").read_text() == current
