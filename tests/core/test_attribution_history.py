"""Attribution after human edits (issue "Harvest on a real project", items 1, 2, 4, 7): spans recorded at a
commit are mapped through `git diff` exactly; a human's lines inside a span are the human's; two call sites stay
two records; one finding from two sources is one record."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from redline.attribution import Attributor
from redline.config import Config, load_config
from redline.history import parse_unified
from redline.ledger import record
from redline.queue import Store, open_store
from redline.records import Feedback, Range, Span
from tests.core.helpers import git as _git

HEAD = "import math\n\n\n"
MEAN = (
    "def mean(xs):\n"
    "    total = 0\n"
    "    for x in xs:\n"
    "        total += x\n"
    "    return total / len(xs)\n"
)
TAIL = "\n\ndef human():\n    return 1\n"
MEAN_AT = 3  # 0-based first line of `mean`




@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    root.mkdir()
    (root / "stats.py").write_text(HEAD + MEAN + TAIL)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "model wrote mean")
    return root


@pytest.fixture
def config(repo: Path) -> Config:
    return load_config(repo)


@pytest.fixture
def store(config: Config) -> Store:
    s = open_store(config)
    yield s
    s.close()


@pytest.fixture
def gid(repo: Path, store: Store, config: Config) -> str:
    record(store, config, spans=[Span("gen-mean", "stats.py", Range(MEAN_AT, MEAN_AT + 5), MEAN,
                                      commit=_git(repo, "rev-parse", "HEAD"))])
    return "gen-mean"


def _edit(repo: Path, old: str, new: str) -> list[str]:
    path = repo / "stats.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path.read_text().splitlines()


def _owner(store: Store, repo: Path, line: int) -> str | None:
    matches = Attributor(store, repo).attribute("stats.py", line)
    return matches[0].generation_id if matches else None


def test_parse_unified_hunks() -> None:
    diff = "@@ -3,0 +4,2 @@\n+a\n+b\n@@ -7,2 +9 @@\n-x\n-y\n+z\n"
    changes = parse_unified(diff)
    walked = changes.walk(0, 9)
    assert [new for _, new, _ in walked] == [0, 1, 2, 5, 6, 7, None, None, 9]
    assert walked[6][2] == "x"


def test_human_line_inside_a_span_is_the_humans(repo: Path, store: Store, gid: str) -> None:
    lines = _edit(repo, "    for x in xs:\n", "    for x in xs:\n        print(x)  # human\n")
    human = lines.index("        print(x)  # human")
    last = lines.index("    return total / len(xs)")
    assert _owner(store, repo, human) is None
    assert _owner(store, repo, last) == gid
    [match] = Attributor(store, repo).attribute("stats.py", last)
    assert (match.confidence, match.span_line, match.span.range) == ("history", 4, Range(MEAN_AT, last + 1))


def test_lengthened_function_keeps_its_new_last_line(repo: Path, store: Store, gid: str) -> None:
    """Regression: re-anchoring kept the recorded line count, so the finding on the model's last line (moved
    down by the human's lines) was missed."""
    lines = _edit(repo, "        total += x\n", "        total += x\n        total += 0\n        total -= 0\n")
    last = lines.index("    return total / len(xs)")
    assert last == MEAN_AT + 6
    assert _owner(store, repo, last) == gid
    assert _owner(store, repo, last + 2) is None  # the human's function below


def test_rewritten_body_does_not_pull_human_lines_in(repo: Path, store: Store, gid: str) -> None:
    body = "    total = 0\n    for x in xs:\n        total += x\n    return total / len(xs)\n"
    lines = _edit(repo, body, "    if not xs:\n        return 0.0\n    return math.fsum(xs) / len(xs)\n")
    assert _owner(store, repo, MEAN_AT) == gid  # the def line is still the model's
    for human in range(MEAN_AT + 1, MEAN_AT + 4):
        assert _owner(store, repo, human) is None, lines[human]


def test_deleted_span_attributes_nothing(repo: Path, store: Store, gid: str) -> None:
    _edit(repo, MEAN, "")
    assert Attributor(store, repo).anchors("stats.py") == []
    assert all(_owner(store, repo, line) is None for line in range(0, 8))


def test_lines_added_above_move_the_span(repo: Path, store: Store, gid: str) -> None:
    lines = _edit(repo, "import math\n", "import math\nimport os\nimport sys\n")
    assert _owner(store, repo, lines.index("def mean(xs):")) == gid
    assert _owner(store, repo, MEAN_AT) is None


def test_uncommitted_span_falls_back_to_content_near_the_old_place(repo: Path, store: Store, config: Config) -> None:
    """No commit (an editor's insertion): found by content in a window, the human's inserted line still theirs."""
    record(store, config, spans=[Span("gen-mean", "stats.py", Range(MEAN_AT, MEAN_AT + 5), MEAN)])
    lines = _edit(repo, "    for x in xs:\n", "    for x in xs:\n        print(x)  # human\n")
    [anchor] = Attributor(store, repo).anchors("stats.py")
    assert anchor.confidence == "fuzzy"
    assert _owner(store, repo, lines.index("        print(x)  # human")) is None
    assert _owner(store, repo, lines.index("    return total / len(xs)")) == "gen-mean"


def test_one_git_diff_per_file_for_many_findings(repo: Path, store: Store, gid: str) -> None:
    _edit(repo, "    for x in xs:\n", "    for x in xs:\n        print(x)\n")
    engine = Attributor(store, repo)
    for line in range(20):
        engine.attribute("stats.py", line)
    assert engine.git_calls == 1


def test_two_call_sites_of_one_error_are_two_records(repo: Path, store: Store, config: Config, gid: str) -> None:
    """Regression: attributed fingerprints dropped the line, so one mypy error at two call sites was one record."""
    def finding(line: int) -> Feedback:
        return Feedback(kind="diagnostic", source="mypy", message='Argument 1 has incompatible type "str"',
                        rule="arg-type", path="stats.py", range=Range(line, line + 1))

    added = record(store, config, feedback=[finding(MEAN_AT + 1), finding(MEAN_AT + 4)])
    assert added.feedback == 2
    assert sorted(f.meta["span_line"] for f in store.feedback_for(gid)) == [1, 4]
    _edit(repo, "import math\n", "import math\nimport os\n")  # the same two findings after the code moved
    assert record(store, config, feedback=[finding(MEAN_AT + 2), finding(MEAN_AT + 5)]).feedback == 0


def test_lsp_ruff_and_ruff_are_one_record(repo: Path, store: Store, config: Config, gid: str) -> None:
    """Regression: an F841 the editor stored as `lsp.ruff` was stored again as `ruff` by `ci ingest`."""
    editor = Feedback(kind="diagnostic", source="lsp.ruff", message="Local variable `y` is assigned to but never used",
                      rule="F841", path="stats.py", range=Range(MEAN_AT + 1, MEAN_AT + 1, 4, 5), generation_id=gid,
                      meta={"span_line": 1})
    ci = Feedback(kind="diagnostic", source="ruff", message=editor.message, rule="F841", path="stats.py",
                  range=Range(MEAN_AT + 1, MEAN_AT + 1, 4, 5))
    assert store.add(feedback=[editor]).feedback == 1
    assert record(store, config, feedback=[ci]).feedback == 0


def test_plugin_and_junit_test_ids_are_one_record() -> None:
    """Regression: the plugin and a JUnit file from the same run stored every failure twice."""
    common = {"kind": "test_failure", "message": "AssertionError: assert [1] == [2]", "path": "tests/test_more.py",
              "range": Range(40, 41)}
    plugin = Feedback(source="pytest", rule="tests/test_more.py::ChunkedTests::test_even", **common)
    junit = Feedback(source="junit", rule="tests.test_more.ChunkedTests::test_even", **common)
    assert plugin.fingerprint == junit.fingerprint
    other = Feedback(source="junit", rule="tests.test_more.ChunkedTests::test_odd", **common)
    assert other.fingerprint != plugin.fingerprint


def test_feedback_owns_its_reattribution() -> None:
    fb = Feedback(kind="diagnostic", source="mypy", message="m", path="a.py", range=Range(3, 4))
    moved = fb.attributed_to("g1", span_line=2, attribution="history")
    assert (moved.generation_id, moved.meta["span_line"], moved.meta["attribution"]) == ("g1", 2, "history")
    assert moved.fingerprint != fb.fingerprint and fb.generation_id is None
    assert moved.fingerprint == moved.compute_fingerprint()
