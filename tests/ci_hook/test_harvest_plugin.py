"""The pytest plugin on the cases of issue "Harvest on a real project": subtests stay distinct, a wrong value is
traced by coverage, the plugin and a JUnit file of the same run are one set of records, the summary counts
records added, and a human's edit inside a span keeps attribution exact."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from redline.ci_hook.ingest import ingest_files
from redline.config import load_config
from redline.ledger import record_generation
from redline.queue import open_store
from redline.records import Generation, Insertion, ModelRef, Prompt, Range
from tests.core.helpers import git as _git
from tests.core.helpers import queued_feedback as _feedback

pytest_plugins = ["pytester"]

BASE = ("-p", "no:hypothesispytest", "-p", "no:pytest-lsp", "-p", "no:asyncio", "-p", "no:anyio",
        "-p", "no:cacheprovider")
LEAN = (*BASE, "-p", "no:xdist")

GENERATED = '''\
def chunked(xs, n):
    out = []
    for i in range(0, len(xs), n):
        out.append(xs[i:i + n - 1])
    return out


def ratio(a, b):
    return a / b
'''

TESTS = '''\
import unittest

from gen import chunked, ratio


class ChunkedTests(unittest.TestCase):
    def test_even(self):
        self.assertEqual(chunked([1, 2, 3, 4], 2), [[1, 2], [3, 4]])

    def test_sizes(self):
        for n in (2, 3, 4):
            with self.subTest(n=n):
                self.assertEqual(sum(map(len, chunked(list(range(12)), n))), 12)


def test_ratio():
    assert ratio(1, 0) == 0
'''




@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pytester.makepyfile(gen=GENERATED, test_gen=TESTS)
    _git(pytester.path, "init", "-q")
    _git(pytester.path, "add", "-A")
    _git(pytester.path, "commit", "-q", "-m", "start")
    return pytester


def _record(root: Path, first: int, last: int) -> Generation:
    config = load_config(root)
    lines = (root / "gen.py").read_text().splitlines(keepends=True)
    gen = Generation(prompt_format="fim", prompt=Prompt(prefix="".join(lines[:first]), suffix=""),
                     completion="".join(lines[first:last + 1]), model=ModelRef("tiny"),
                     insertion=Insertion("gen.py", Range(first, last + 1), commit=_git(root, "rev-parse", "HEAD")))
    store = open_store(config)
    try:
        return record_generation(store, config, gen)
    finally:
        store.close()




def test_subtests_are_distinct_records(project: pytest.Pytester) -> None:
    """Regression: failing subtests with one message became one record without saying which subtest."""
    project.runpytest(*LEAN, "--redline")
    sizes = [fb for fb in _feedback(project.path) if fb.rule and fb.rule.endswith("test_sizes")]
    assert sorted(fb.meta.get("subtest") or "" for fb in sizes) == ["(n=2)", "(n=3)", "(n=4)"]


def test_wrong_value_is_traced_by_coverage(project: pytest.Pytester) -> None:
    """Regression: a wrong value leaves only test frames, so the failure was never attributed."""
    chunked = _record(project.path, 0, 4)
    ratio = _record(project.path, 7, 8)
    project.runpytest(*LEAN, "--redline")
    even = [fb for fb in _feedback(project.path) if fb.rule == "test_gen.py::ChunkedTests::test_even"]
    assert [fb.generation_id for fb in even] == [None]  # without tracing: only test frames
    result = project.runpytest(*LEAN, "--redline", "--redline-trace")
    traced = [fb for fb in _feedback(project.path)
              if fb.rule == "test_gen.py::ChunkedTests::test_even" and fb.generation_id]
    assert [(fb.generation_id, fb.meta["attribution"], fb.trust) for fb in traced] == [
        (chunked.id, "coverage", "low")]
    # test_even and the three subtests once more (now attributed); test_ratio was already queued
    assert "4 failures recorded" in result.stdout.str()
    [div] = [fb for fb in _feedback(project.path) if fb.rule == "test_gen.py::test_ratio"]
    assert div.generation_id == ratio.id and div.meta["attribution"] == "exact"  # a raising frame needs no trace


def test_plugin_and_junit_of_one_run_are_one_set_of_records(project: pytest.Pytester) -> None:
    """Regression: the plugin and a JUnit file of the same run stored every failure twice."""
    _record(project.path, 0, 8)
    junit = project.path / "junit.xml"
    project.runpytest(*LEAN, "--redline", f"--junitxml={junit}")
    assert len(_feedback(project.path)) == 5
    config = load_config(project.path)
    store = open_store(config)
    try:
        summary = ingest_files(store, config, [junit], hints=False)
    finally:
        store.close()
    assert summary.files[0].error is None and summary.files[0].parsed == 5
    added = [fb for fb in _feedback(project.path) if fb.source == "junit"]
    # JUnit writes a test's subtests as bare <failure> elements that do not say which subtest they are, so only
    # those cannot be matched to the plugin's (subtest-keyed) records; every other failure is one record
    assert sorted(fb.meta["test"] for fb in added) == ["test_sizes"] * 3


def test_summary_counts_records_added_not_reports(project: pytest.Pytester) -> None:
    """Regression: a re-run that added nothing said "85 failures recorded"."""
    first = project.runpytest(*LEAN, "--redline")
    first.stdout.fnmatch_lines(["redline: 5 failures recorded against 0 generations (5 unattributed)"])
    again = project.runpytest(*LEAN, "--redline")
    again.stdout.fnmatch_lines(
        ["redline: 0 failures recorded against 0 generations (5 unattributed; 5 already queued)"])


def test_human_line_inside_a_span_is_not_the_models(project: pytest.Pytester) -> None:
    gen = _record(project.path, 7, 8)
    source = (project.path / "gen.py").read_text()
    (project.path / "gen.py").write_text(source.replace("def ratio(a, b):\n", "def ratio(a, b):\n    a = a + 0\n"))
    (project.path / "test_human.py").write_text("from gen import ratio\n\n\ndef test_human():\n"
                                                "    assert ratio(None, 1)\n")
    project.runpytest(*LEAN, "--redline")
    by_test = {fb.rule: fb for fb in _feedback(project.path)}
    assert by_test["test_gen.py::test_ratio"].generation_id == gen.id  # the model's moved `return a / b`
    assert by_test["test_gen.py::test_ratio"].meta["attribution"] == "history"
    assert by_test["test_human.py::test_human"].generation_id is None  # raised on the human's `a = a + 0`


@pytest.mark.slow
def test_trace_under_xdist(project: pytest.Pytester) -> None:
    chunked = _record(project.path, 0, 4)
    project.runpytest_subprocess(*BASE, "-n", "2", "--redline", "--redline-trace")
    [even] = [fb for fb in _feedback(project.path) if fb.rule == "test_gen.py::ChunkedTests::test_even"]
    assert (even.generation_id, even.meta["attribution"]) == (chunked.id, "coverage")
