"""Every ingest format on output the real tools wrote (tests/ci_hook/samples/make_samples.py regenerates it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redline.ci_hook.ingest import IngestOptions, detect, ingest_files, parse_report
from redline.records import Range

SAMPLES = Path(__file__).parent / "samples"


@pytest.mark.parametrize(("name", "fmt"), [
    ("ruff.sarif", "sarif"), ("semgrep.sarif", "sarif"), ("ruff.json", "ruff"), ("mypy.jsonl", "mypy"),
    ("junit-xunit1.xml", "junit"), ("junit-xunit2.xml", "junit"), ("reportlog.jsonl", "reportlog"),
    ("github-comments.json", "github"),
])
def test_detects_each_format(sample, name: str, fmt: str) -> None:
    if not (SAMPLES / name).exists():
        pytest.skip(f"{name} was not generated (tool not installed)")
    assert detect(sample(name)) == fmt


def test_ruff_sarif(sample, repo: Path) -> None:
    found = parse_report(sample("ruff.sarif"), repo)
    by_rule = {f.rule: f for f in found}
    assert set(by_rule) == {"F401", "S307"}
    assert by_rule["F401"].path == "pkg/calc.py"
    assert by_rule["F401"].range == Range(0, 0, 7, 9)
    assert by_rule["S307"].range is not None and by_rule["S307"].range.start_line == 16
    assert {f.source for f in found} == {"ruff"} and {f.kind for f in found} == {"diagnostic"}


def test_semgrep_sarif_resolves_srcroot(sample, repo: Path) -> None:
    if not (SAMPLES / "semgrep.sarif").exists():
        pytest.skip("semgrep was not installed when the samples were made")
    [fb] = parse_report(sample("semgrep.sarif"), repo)
    assert (fb.source, fb.rule, fb.path, fb.severity) == ("semgrep oss", "no-eval", "pkg/calc.py", "error")
    assert fb.range == Range(16, 16, 11, 21)


def test_ruff_json(sample, repo: Path) -> None:
    found = parse_report(sample("ruff.json"), repo)
    assert [(f.rule, f.path, f.range.start_line if f.range else None) for f in found] == [
        ("F401", "pkg/calc.py", 0), ("S307", "pkg/calc.py", 16)]
    assert found[0].meta["fix"]["applicability"] == "safe"


def test_mypy_json_columns_are_zero_based(sample, repo: Path) -> None:
    found = parse_report(sample("mypy.jsonl"), repo)
    assert [(f.rule, f.range) for f in found] == [("assignment", Range(6, 6, 8, 18)),
                                                  ("assignment", Range(11, 11, 16, 28))]
    assert found[0].message.startswith("Incompatible types in assignment")


def test_junit_xunit1_and_xunit2_locate_the_failing_line(sample, repo: Path) -> None:
    for name in ("junit-xunit1.xml", "junit-xunit2.xml"):
        found = parse_report(sample(name), repo)
        assert [f.rule for f in found] == ["tests.test_calc::test_mean", "tests.test_calc::test_parse_port"]
        assert [(f.path, f.range) for f in found] == [("tests/test_calc.py", Range(4, 5)),
                                                      ("tests/test_calc.py", Range(8, 9))]
        assert "assert 3.0 == 2.0" in found[0].message
        assert "where 3.0 = mean" in (found[0].detail or "")


def test_reportlog(sample, repo: Path) -> None:
    found = parse_report(sample("reportlog.jsonl"), repo)
    assert [f.rule for f in found] == ["tests/test_calc.py::test_mean", "tests/test_calc.py::test_parse_port"]
    assert found[0].range == Range(4, 5) and found[0].path == "tests/test_calc.py"
    assert found[0].message.startswith("assert 3.0 == 2.0")
    assert "def test_mean" in (found[0].detail or "")


def test_github_review_comments(sample, repo: Path) -> None:
    opts = IngestOptions()
    found = parse_report(sample("github-comments.json"), repo, opts=opts)
    by_id = {f.meta["url"].rsplit("r", 1)[-1]: f for f in found}
    assert sorted(by_id) == ["1", "2", "4"]  # 3 and 5 untrusted, 6 outside the repo
    assert (opts.untrusted, opts.outside_repo) == (2, 1)
    edit = by_id["1"]
    assert edit.kind == "edit" and edit.correction == "    import ast\n    return ast.literal_eval(expr)\n"
    assert edit.range == Range(16, 17) and edit.message == "Never eval user input."
    assert by_id["2"].kind == "review" and by_id["2"].range == Range(4, 8)
    assert by_id["4"].range is None and by_id["4"].meta["side"] == "LEFT"
    assert {f.trust for f in found} == {"normal"}


def test_github_untrusted_kept_with_low_trust_when_asked(sample, repo: Path) -> None:
    found = parse_report(sample("github-comments.json"), repo, opts=IngestOptions(include_untrusted=True))
    low = [f for f in found if f.trust == "low"]
    assert [f.meta["author"] for f in low] == ["drive-by", "friend"]
    assert low[0].kind == "edit"


def test_ingest_attributes_to_the_generation_that_wrote_the_line(sample, store, config, generation_at) -> None:
    gen = generation_at("pkg/calc.py", 15, 16)  # safe_eval
    summary = ingest_files(store, config, [sample("ruff.json"), sample("mypy.jsonl")])
    assert [f.error for f in summary.files] == [None, None]
    attributed = store.feedback_for(gen.id)
    assert [f.rule for f in attributed] == ["S307"]
    assert attributed[0].meta["attribution"] == "exact"
    assert len(list(store.feedback(unattributed=True))) == 3


def test_reingesting_is_idempotent(sample, store, config) -> None:
    report = sample("ruff.sarif")
    first = ingest_files(store, config, [report])
    again = ingest_files(store, config, [report])
    assert first.files[0].added == 2 and again.files[0].added == 0


def test_a_bad_report_writes_nothing_and_the_good_ones_land(sample, store, config, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    text = json.dumps([*json.loads((SAMPLES / "ruff.json").read_text()), {"filename": 3}])
    broken.write_text(text)
    summary = ingest_files(store, config, [broken, sample("mypy.jsonl")])
    assert summary.files[0].error is not None and "broken.json" in summary.files[0].error
    assert "\n" not in summary.files[0].error
    assert {f.source for f in store.feedback()} == {"mypy"}
