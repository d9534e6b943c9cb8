"""CI ingest and the CLI on the cases of issue "Harvest on a real project": mypy's plain note lines, a human's
edit inside a span, feedback on an id whose generation never arrived, and what `redline log`/`show` print."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from redline.ci_hook.ingest import IngestOptions, ingest_files, parse_report
from redline.config import Config
from redline.ledger import record, record_generation
from redline.queue import Store
from redline.records import Feedback, Generation, Insertion, ModelRef, Prompt, Range, Span
from tests.core.helpers import git as _git


def test_mypy_plain_note_line_is_skipped_and_counted(repo: Path, sample, tmp_path: Path) -> None:
    """Regression: with `warn_unused_configs` mypy prints a `note:` line among its JSON and the whole report was
    refused ("line 2 is not valid JSON")."""
    rows = sample("mypy.jsonl").read_text().splitlines()
    report = tmp_path / "with-note.jsonl"
    report.write_text("\n".join([rows[0], "setup.cfg: note: unused section(s): [mypy-foo.*]", *rows[1:]]) + "\n")
    opts = IngestOptions()
    found = parse_report(report, repo, "mypy", opts)
    assert len(found) == len(rows) and opts.text_lines == 1
    assert "unused section" in opts.warnings[0]
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text(rows[0] + "\n" + rows[1][:40] + "\n")
    with pytest.raises(Exception, match="line 2 is not valid JSON"):
        parse_report(truncated, repo, "mypy", IngestOptions())




def test_ruff_ingest_after_a_human_line_inside_the_span(repo: Path, store: Store, config: Config,
                                                         tmp_path: Path) -> None:
    """Regression: one line a human added inside a recorded function made the F821 on its last line unattributed
    (and the ingest slow)."""
    (repo / ".git").rmdir()
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "start")
    calc = repo / "pkg" / "calc.py"
    lines = calc.read_text().splitlines(keepends=True)
    gen = Generation(prompt_format="fim", prompt=Prompt(prefix="".join(lines[:3]), suffix=""),
                     completion="".join(lines[3:8]), model=ModelRef("tiny"),
                     insertion=Insertion("pkg/calc.py", Range(3, 8), commit=_git(repo, "rev-parse", "HEAD")))
    record_generation(store, config, gen)
    calc.write_text("".join([*lines[:4], "    # the human's line\n", *lines[4:]]))
    report = tmp_path / "ruff.json"
    rows = [{"code": "F821", "message": "Undefined name `zz`", "filename": str(calc),
             "location": {"row": 9, "column": 5}, "end_location": {"row": 9, "column": 7}},
            {"code": "E501", "message": "Line too long", "filename": str(calc),
             "location": {"row": 5, "column": 1}, "end_location": {"row": 5, "column": 9}}]
    report.write_text(json.dumps(rows))
    ingest_files(store, config, [report], hints=False)
    by_rule = {f.rule: f for f in store.feedback()}
    assert by_rule["F821"].generation_id == gen.id and by_rule["F821"].meta["span_line"] == 4
    assert by_rule["E501"].generation_id is None  # on the human's line


def _redline(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="80")
    return subprocess.run([sys.executable, "-m", "redline", *args], cwd=repo, capture_output=True, text=True,
                          timeout=120, env=env, check=False)


def test_unknown_id_through_show_export_status(repo: Path, store: Store, config: Config) -> None:
    """Regression: feedback on a front-end's id the queue did not know was stored, but `show` said no such
    generation, `export` dropped it and `status` miscounted."""
    record(store, config, spans=[Span("frontend-0042", "pkg/calc.py", Range(3, 8),
                                      "".join((repo / "pkg" / "calc.py").read_text().splitlines(keepends=True)[3:8]))])
    fb = Feedback(kind="diagnostic", source="mypy", message="bad", path="pkg/calc.py", range=Range(4, 5))
    assert record(store, config, feedback=[fb]).feedback == 1
    [kept] = store.feedback_for("frontend-0042")
    status = json.loads(_redline(repo, "status", "--json").stdout)
    assert status["awaiting_generation"] == {"generations": 1, "feedback": 1}
    assert status["generations_with_feedback"] == 0
    assert "await the generation record" in _redline(repo, "status").stdout
    shown = _redline(repo, "show", "frontend-00")
    assert shown.returncode == 0 and "awaiting its generation record" in shown.stdout
    assert "pkg/calc.py:5 " in shown.stdout  # 1-based
    exported = _redline(repo, "export").stdout.splitlines()
    assert [json.loads(line)["feedback"][0]["id"] for line in exported] == [kept.id]
    store.close()
    (repo / "out.jsonl").write_text("\n".join(exported) + "\n")
    other = repo.parent / "other"
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    assert _redline(other, "import", str(repo / "out.jsonl")).returncode == 0
    moved = json.loads(_redline(other, "status", "--json").stdout)
    assert moved["awaiting_generation"] == {"generations": 1, "feedback": 1}


def test_log_ids_are_distinguishable_at_80_columns(repo: Path, store: Store, config: Config) -> None:
    """Regression: at 80 columns `redline log` cut every id to the same prefix."""
    gens = [record_generation(store, config, Generation(
        prompt_format="raw", prompt=Prompt(text=f"p{i}"), completion=f"x = {i}\n" * 3, model=ModelRef("m"),
        insertion=Insertion("pkg/calc.py", Range(i, i + 3)))) for i in range(3)]
    out = _redline(repo, "log").stdout
    shown = [line.split()[1] for line in out.splitlines() if line.startswith("│")]
    ids = [s for s in shown if any(g.id.startswith(s) for g in gens)]
    assert len(ids) == 3 and len(set(ids)) == 3, out
    for short in ids:
        assert _redline(repo, "show", short).returncode == 0
    show = _redline(repo, "show", gens[1].id).stdout
    assert "inserted at pkg/calc.py:2-4" in show  # 1-based, inclusive


def test_editor_and_ci_read_a_checker_the_same_way(tmp_path: Path) -> None:
    """One parser per format: a mypy line and a ruff row become the same finding in the editor and in CI."""
    from redline.ci_hook.ingest.ruff_json import parse as parse_ruff_report
    from redline.ci_hook.run import parse_diagnostics
    from redline.lsp_server.diagnostics import parse_lines, parse_ruff_json

    out = 'pkg/m.py:14:9: error: Name "q" is not defined  [name-defined]\npkg/m.py:15: note: See the docs\n'
    [ci] = parse_diagnostics(out, source="mypy", cwd=tmp_path, repo_root=tmp_path).feedback
    [editor] = parse_lines(out, "mypy", tmp_path / "pkg" / "m.py")
    assert (editor.message, editor.rule, editor.range()) == (ci.message, ci.rule, Range(13, 13, 8, 8))
    assert ci.range == Range(13, 14, 8) and "See the docs" in (ci.detail or "")
    rows = [{"code": "F841", "message": "Local variable `y` is assigned to but never used",
             "filename": str(tmp_path / "m.py"), "location": {"row": 3, "column": 5},
             "end_location": {"row": 3, "column": 6}}]
    report = tmp_path / "ruff.json"
    report.write_text(json.dumps(rows))
    [ci_row] = parse_ruff_report(report, tmp_path)
    [editor_row] = parse_ruff_json(json.dumps(rows))
    assert (editor_row.rule, editor_row.message, editor_row.range(), editor_row.severity) == (
        ci_row.rule, ci_row.message, ci_row.range, ci_row.severity)


def test_editor_ruff_then_ci_ruff_is_one_record(repo: Path, store: Store, config: Config, tmp_path: Path) -> None:
    """Regression: an F841 the editor recorded as `lsp.ruff` was stored again as `ruff` by `ci ingest`."""
    from redline.lsp_server.diagnostics import diagnostic_feedback, parse_ruff_json
    from redline.lsp_server.spans import TrackedSpan

    calc = repo / "pkg" / "calc.py"
    lines = calc.read_text().splitlines(keepends=True)
    gen = Generation(prompt_format="fim", prompt=Prompt(prefix="".join(lines[:3]), suffix=""),
                     completion="".join(lines[3:8]), model=ModelRef("tiny"), insertion=Insertion("pkg/calc.py",
                                                                                                  Range(3, 8)))
    record_generation(store, config, gen)
    rows = [{"code": "F841", "message": "Local variable `total` is assigned to but never used",
             "filename": str(calc), "location": {"row": 5, "column": 5}, "end_location": {"row": 5, "column": 10}}]
    span = TrackedSpan(gen.id, (3, 0), (8, 0), gen.completion, 0.0)
    editor = diagnostic_feedback(parse_ruff_json(json.dumps(rows)), [span], "pkg/calc.py")
    assert store.add(feedback=editor).feedback == 1
    report = tmp_path / "ruff.json"
    report.write_text(json.dumps(rows))
    [result] = ingest_files(store, config, [report], hints=False).files
    assert (result.parsed, result.added) == (1, 0)
    assert [f.source for f in store.feedback()] == ["lsp.ruff"]
