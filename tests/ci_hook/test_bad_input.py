"""Bad input for every parser (hypothesis): truncated, mutated and non-UTF-8 files, an entity bomb, a 100 MB file
and SARIF URIs outside the repository. Each is answered by one line naming the file (a `RedlineError`), nothing
from it reaches the queue, and the same process then ingests a good report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from redline.ci_hook.ingest import ingest_files, parser_for
from redline.ci_hook.ingest.common import IngestOptions
from redline.errors import RedlineError

SAMPLES = Path(__file__).parent / "samples"
FORMATS = {"sarif": "ruff.sarif", "ruff": "ruff.json", "mypy": "mypy.jsonl", "junit": "junit-xunit1.xml",
           "reportlog": "reportlog.jsonl", "github": "github-comments.json"}
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _count(store) -> int:
    return int(store.counts()["feedback"])


def _parse_or_reject(path: Path, repo: Path, fmt: str) -> list | None:
    """Parse with the format's own parser: a list, or None after a one-line `RedlineError` naming the file."""
    try:
        return parser_for(fmt)(path, repo, IngestOptions())
    except RedlineError as exc:
        text = str(exc)
        assert "\n" not in text and str(path) in text
        return None


def _ingest_rejects(store, config, path: Path, fmt: str) -> None:
    before = _count(store)
    [result] = ingest_files(store, config, [path], fmt=fmt, hints=False).files
    if result.error is not None:
        assert "\n" not in result.error and str(path) in result.error
        assert _count(store) == before


def _sample_bytes(repo: Path, name: str) -> bytes:
    return (SAMPLES / name).read_text().replace("@ROOT@", str(repo)).encode()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated(repo: Path, tmp_path: Path, store, config, fmt: str, cut: float) -> None:
    data = _sample_bytes(repo, FORMATS[fmt])
    path = tmp_path / f"truncated-{FORMATS[fmt]}"
    path.write_bytes(data[: int(len(data) * cut)])
    _parse_or_reject(path, repo, fmt)
    _ingest_rejects(store, config, path, fmt)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.binary(min_size=0, max_size=6)),
                      min_size=1, max_size=5))
def test_mutated(repo: Path, tmp_path: Path, fmt: str, edits: list[tuple[float, bytes]]) -> None:
    data = bytearray(_sample_bytes(repo, FORMATS[fmt]))
    for where, junk in edits:
        at = int(len(data) * where)
        data[at:at + len(junk)] = junk
    path = tmp_path / f"mutated-{FORMATS[fmt]}"
    path.write_bytes(bytes(data))
    _parse_or_reject(path, repo, fmt)


@pytest.mark.parametrize("fmt", ["sarif", "ruff", "mypy", "reportlog", "github"])
@FUZZ
@given(value=json_values, pick=st.integers(0, 10**6))
def test_wrong_json_shapes(repo: Path, tmp_path: Path, fmt: str, value: object, pick: int) -> None:
    """Replace one value anywhere in a real report with arbitrary JSON."""
    text = _sample_bytes(repo, FORMATS[fmt]).decode()
    lines = fmt in ("mypy", "reportlog")
    docs = [json.loads(line) for line in text.splitlines() if line.strip()] if lines else [json.loads(text)]
    slots = list(_slots(docs))
    container, key = slots[pick % len(slots)]
    container[key] = value
    path = tmp_path / f"shaped-{FORMATS[fmt]}"
    path.write_text("\n".join(json.dumps(d) for d in docs) if lines else json.dumps(docs[0]))
    _parse_or_reject(path, repo, fmt)


def _slots(node: object):
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _slots(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield node, i
            yield from _slots(value)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@FUZZ
@given(at=st.floats(0, 1, exclude_max=True), junk=st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]))
def test_invalid_utf8(repo: Path, tmp_path: Path, store, config, fmt: str, at: float, junk: bytes) -> None:
    data = _sample_bytes(repo, FORMATS[fmt])
    cut = int(len(data) * at)
    path = tmp_path / f"latin-{FORMATS[fmt]}"
    path.write_bytes(data[:cut] + junk + data[cut:])
    assert _parse_or_reject(path, repo, fmt) is None
    _ingest_rejects(store, config, path, fmt)


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<testsuites><testsuite><testcase classname="a" name="b"><failure message="&lol3;">x</failure></testcase>
</testsuite></testsuites>"""
EXTERNAL = """<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<testsuite><testcase classname="a" name="b"><failure message="&x;">x</failure></testcase></testsuite>"""


@pytest.mark.parametrize("text", [BOMB, EXTERNAL], ids=["billion-laughs", "external-entity"])
def test_xml_entities_refused(repo: Path, tmp_path: Path, store, config, text: str) -> None:
    path = tmp_path / "bomb.xml"
    path.write_text(text)
    [result] = ingest_files(store, config, [path], hints=False).files
    assert result.error is not None and "forbidden" in result.error and str(path) in result.error
    assert _count(store) == 0


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_100mb_file_refused_before_reading(repo: Path, tmp_path: Path, store, config, fmt: str) -> None:
    path = tmp_path / f"huge-{FORMATS[fmt]}"
    with path.open("wb") as f:
        f.write(_sample_bytes(repo, FORMATS[fmt])[:100])
        f.truncate(100 * 1024 * 1024)  # sparse: no disk used, nothing parsed
    [result] = ingest_files(store, config, [path], fmt=fmt, hints=False).files
    assert result.error is not None and "limit" in result.error and str(path) in result.error
    assert _count(store) == 0


def test_detection_of_the_100mb_file_reads_only_its_head(tmp_path: Path, store, config) -> None:
    path = tmp_path / "huge.bin"
    with path.open("wb") as f:
        f.truncate(100 * 1024 * 1024)
    [result] = ingest_files(store, config, [path], hints=False).files
    assert result.error is not None and str(path) in result.error


OUTSIDE = st.one_of(
    st.integers(1, 8).map(lambda n: "../" * n + "etc/passwd"),
    st.sampled_from(["/etc/passwd", "file:///etc/passwd", "https://evil.example/pkg/calc.py",
                     "ftp://host/x.py", "file://host/share/x.py", "data:text/plain,hi", "javascript:alert(1)",
                     "pkg/../../outside.py", "%2e%2e/%2e%2e/etc/passwd", "file:///@ROOT@/../x.py", "",
                     "C:\\Windows\\system.ini", "\\\\server\\share\\x.py"]),
    st.text(min_size=1, max_size=30),
)


@FUZZ
@given(uris=st.lists(OUTSIDE, min_size=1, max_size=6))
@example(uris=["../../etc/passwd", "/etc/passwd", "https://evil.example/a.py"])
@example(uris=["\x00", "src/a\x00.py"])  # found by this test: a NUL byte in a URI
def test_sarif_uris_never_leave_the_repo(repo: Path, tmp_path: Path, uris: list[str]) -> None:
    results = [{"ruleId": "X1", "level": "error", "message": {"text": "m"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": u.replace("@ROOT@", str(repo))},
                                                    "region": {"startLine": 1}}}]} for u in uris]
    path = tmp_path / "outside.sarif"
    path.write_text(json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "t"}},
                                                              "results": results}]}))
    opts = IngestOptions()
    found = parser_for("sarif")(path, repo, opts)
    assert len(found) + opts.outside_repo == len(uris)
    root = os.path.realpath(repo)
    for fb in found:
        assert fb.path and not fb.path.startswith(("/", "../")) and ".." not in fb.path.split("/")
        assert os.path.realpath(repo / fb.path).startswith(root + os.sep)


def test_outside_results_are_dropped_and_counted(repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "mixed.sarif"
    uris = ["pkg/calc.py", "../../etc/passwd", "/etc/passwd", "https://x.example/pkg/calc.py", "file:///etc/passwd"]
    results = [{"ruleId": "R", "message": {"text": "m"}, "locations": [{"physicalLocation": {
        "artifactLocation": {"uri": u}, "region": {"startLine": 2}}}]} for u in uris]
    path.write_text(json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "t"}},
                                                              "results": results}]}))
    opts = IngestOptions()
    found = parser_for("sarif")(path, repo, opts)
    assert [f.path for f in found] == ["pkg/calc.py"] and opts.outside_repo == 4
    assert all("outside the repository" in w for w in opts.warnings)


def test_process_still_usable_after_bad_reports(repo: Path, tmp_path: Path, store, config, sample) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(BOMB)
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"[{\xff")
    summary = ingest_files(store, config, [bad, garbage, sample("ruff.json")], hints=False)
    assert [r.error is None for r in summary.files] == [False, False, True]
    assert _count(store) == 2
