"""Re-checking an answer with the evidence that drew the red line: real ruff and pytest processes on a scratch copy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from redline.evidence import Judge, Recheck, criterion_of, place_answer, with_recheck
from redline.records import Feedback, Generation, ModelRef, Prompt

RUFF = Recheck((sys.executable, "-m", "ruff", "check", "--output-format", "json", "--no-cache", "{file}"),
               "ruff-json", "ruff")
PREFIX = "import logging\n\nlog = logging.getLogger(__name__)\n\n\ndef greet(name):\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[tool.ruff.lint]\nselect = ["T201", "F"]\n')
    (tmp_path / "app.py").write_text(PREFIX + '    print("hi", name)\n')
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_calc.py").write_text("from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def raw(prefix: str, completion: str, path: str) -> Generation:
    return Generation(prompt_format="raw", prompt=Prompt(text=prefix), completion=completion, model=ModelRef("m"),
                      meta={"path": path})


def test_a_ruff_finding_is_rerun_on_the_answer_in_a_scratch_copy(repo: Path) -> None:
    gen = raw(PREFIX, '    print("hi", name)\n', "app.py")
    fb = [with_recheck(Feedback(kind="diagnostic", source="ruff", message="`print` found", rule="T201",
                                path="app.py"), RUFF)]
    before = (repo / "app.py").read_text()
    with Judge(repo) as judge:
        fixed = judge.verdict(gen, fb, '    log.info("hi %s", name)\n')
        again = judge.verdict(gen, fb, '    print("hello", name)\n')
        broken = judge.verdict(gen, fb, "    return (\n")
        same = judge.verdict(gen, fb, gen.completion)
    assert fixed.clean is True and fixed.how == "ruff rerun"
    assert again.clean is False and again.back == ("T201",)
    assert broken.clean is False  # a syntax error is no fix
    assert same.clean is False and same.how == "the same code as the attempt"
    assert (repo / "app.py").read_text() == before  # the user's tree is never touched


def test_a_failing_test_is_rerun_with_the_answer_spliced_into_the_current_file(repo: Path) -> None:
    gen = Generation(prompt_format="fim", prompt=Prompt(prefix="def add(a, b):\n", suffix=""),
                     completion="    return a - b\n", model=ModelRef("m"), meta={"path": "calc.py"})
    node = Recheck((sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                    "tests/test_calc.py::test_add"), "exit", "pytest")
    fb = [with_recheck(Feedback(kind="test_failure", source="pytest", message="assert -1 == 5",
                                rule="tests/test_calc.py::test_add"), node)]
    with Judge(repo, timeout_s=120) as judge:
        file_text = (repo / "calc.py").read_text()
        assert judge.verdict(gen, fb, "    return a + b\n", file_text=file_text).clean is True
        wrong = judge.verdict(gen, fb, "    return a * b\n", file_text=file_text)
    assert wrong.clean is False and wrong.back == ("tests/test_calc.py::test_add",)


def test_a_recipe_without_a_file_reads_the_answer_on_stdin() -> None:
    check = ("import sys, json; t = sys.stdin.read(); "
             "print(json.dumps([] if 'good' in t else [{'code': 'W1', 'location': {'row': t.count(chr(10))}}]))")
    recipe = Recheck((sys.executable, "-c", check), "ruff-json", "world", stdin=True)
    gen = raw("# task\ndef task():\n", "    bad()\n", "x.py")
    fb = [with_recheck(Feedback(kind="review", source="world", message="no"), recipe)]
    judge = Judge(None)
    assert judge.verdict(gen, fb, "    good()\n").clean is True
    assert judge.verdict(gen, fb, "    worse()\n").back == ("W1",)


def test_without_a_recipe_the_feedbacks_own_criterion_judges() -> None:
    gen = raw("def f(url):\n", "    return fetch(url)\n", "f.py")
    fb = [Feedback(kind="diagnostic", source="ruff", message="`fetch` is banned: use `http_get`", rule="TID251")]
    judge = Judge(None)
    assert judge.verdict(gen, fb, "    return http_get(url)\n").clean is True
    assert judge.verdict(gen, fb, "    return fetch(url, 1)\n").clean is False
    assert judge.verdict(gen, fb, "    return None\n").clean is False  # the named replacement is missing
    vague = [Feedback(kind="review", source="reviewer", message="this is not how we do it here")]
    assert judge.verdict(gen, vague, "    return 1\n").clean is None
    ref = judge.verdict(gen, vague, "    return http_get(url)\n", reference="    return http_get(url)")
    assert ref.clean is True and "teacher" in ref.how


@pytest.mark.parametrize(("message", "banned", "required"), [
    ("`fetch` is banned: use `http_get`", {"fetch"}, {"http_get"}),
    ("NameError: name 'read_file' is not defined. Did you mean: 'load_file'?", {"read_file"}, {"load_file"}),
    ("JSON files are not opened by hand in this repository: write `data = read_json(path)`", set(), {"read_json"}),
    ("wrap every `query(...)` call in `retry(...)`", set(), {"retry"}),
    ("always call `send` with `timeout=10` in this repo", set(), {"send", "timeout=10"}),
    ("pass `key` to `sort_rows` by keyword", set(), set()),
])
def test_criteria_read_from_the_words(message: str, banned: set[str], required: set[str]) -> None:
    crit = criterion_of(Feedback(kind="diagnostic", source="x", message=message))
    assert set(crit.banned) == banned and set(crit.required) == required


def test_an_accepted_record_passes_with_the_same_answer_and_is_not_judged_otherwise() -> None:
    gen = raw("def f():\n", "    return 1\n", "f.py")
    accept = [Feedback(kind="accept", source="lsp.kept", severity="info")]
    judge = Judge(None)
    assert judge.verdict(gen, accept, "    return 1\n").clean is True
    assert judge.verdict(gen, accept, "    return 2\n").clean is None


def test_a_check_that_hangs_is_not_judged() -> None:
    recipe = Recheck((sys.executable, "-c", "import time; time.sleep(30)"), "exit", "slow", stdin=True)
    gen = raw("def f():\n", "    return 1\n", "f.py")
    fb = [with_recheck(Feedback(kind="test_failure", source="pytest", message="boom"), recipe)]
    verdict = Judge(None, timeout_s=0.5).verdict(gen, fb, "    return 2\n")
    assert verdict.clean is None and "longer than" in verdict.how


def test_an_answer_replaces_the_completion_in_the_current_file_text() -> None:
    gen = Generation(prompt_format="fim", prompt=Prompt(prefix="a = 1\n", suffix="c = 3\n"),
                     completion="b = 2\n", model=ModelRef("m"))
    current = textwrap.dedent("""\
        # edited by the human since
        a = 1
        b = 2
        c = 3
        """)
    placed = place_answer(gen, "b = 20\n", current)
    assert placed.text == current.replace("b = 2\n", "b = 20\n") and (placed.first, placed.last) == (2, 2)
    assert place_answer(gen, "b = 20\n").text == "a = 1\nb = 20\nc = 3\n"
