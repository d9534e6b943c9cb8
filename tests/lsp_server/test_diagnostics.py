"""Checker output parsing and attribution of findings to generated spans (pure, plus one real checker run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from redline.lsp_server.diagnostics import (
    Finding,
    diagnostic_feedback,
    findings_from_lsp,
    parse_lines,
    parse_ruff_json,
    run_checkers,
)
from redline.lsp_server.spans import TrackedSpan


def test_generic_lines_for_this_file_only() -> None:
    out = "src/app.py:3:5: error: Name 'x' is not defined\nother.py:1:1: error: nope\napp.py:7: warning: slow\n"
    found = parse_lines(out, "mypy", Path("/r/src/app.py"))
    assert [(f.start_line, f.start_col, f.severity, f.message) for f in found] == [
        (2, 4, "error", "Name 'x' is not defined"), (6, 0, "warning", "slow")]


def test_ruff_json_and_garbage() -> None:
    out = json.dumps([{"code": "F821", "message": "Undefined name `x`", "location": {"row": 2, "column": 1},
                       "end_location": {"row": 2, "column": 2}}, {"code": "E1"}])
    (f,) = parse_ruff_json(out)
    assert (f.rule, f.start_line, f.end_line, f.severity) == ("F821", 1, 1, "warning")
    assert parse_ruff_json("not json") == []


def test_forwarded_lsp_diagnostics_are_validated() -> None:
    good = {"range": {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 4}},
            "message": "bad", "severity": 2, "source": "pyright", "code": 12}
    junk = [good, {"range": {"start": {"line": -1, "character": 0}, "end": {"line": 1, "character": 0}},
                   "message": "x"}, {"message": "no range"}, 42, {**good, "source": "redline"}]
    (f,) = findings_from_lsp(junk, "client")
    assert (f.source, f.severity, f.rule) == ("pyright", "warning", "12")
    assert findings_from_lsp("nope", "client") == []


def test_only_findings_on_generated_spans_become_feedback() -> None:
    outer = TrackedSpan("outer", (0, 0), (10, 0), "x\n" * 10, 0.0)
    inner = TrackedSpan("inner", (3, 0), (5, 0), "y\ny\n", 0.0)
    found = [Finding("ruff", "in both", 4), Finding("ruff", "outer only", 8), Finding("ruff", "outside", 12)]
    fbs = diagnostic_feedback(found, [outer, inner], "m.py")
    assert [(f.generation_id, f.message) for f in fbs] == [("inner", "in both"), ("outer", "outer only")]


def test_py_compile_and_configured_checker_run_off_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("def f(:\n    pass\n", encoding="utf-8")
    script = "import sys; print(sys.argv[1] + ':2:5: error: custom finding')"
    found = run_checkers(path, "python", cwd=tmp_path, builtin=True, timeout=20,
                         configured={"python": [[sys.executable, "-c", script, "{path}"], ["/no/such/tool"]]})
    sources = {f.source for f in found}
    assert "py_compile" in sources and any(f.message == "custom finding" for f in found)
    assert not any(f.source == "ruff" and f.rule == "invalid-syntax" for f in found)  # py_compile already said it


def test_a_checker_that_hangs_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "a.sh"
    path.write_text("x\n", encoding="utf-8")
    hang = [sys.executable, "-c", "import time; time.sleep(30)"]
    assert run_checkers(path, "sh", cwd=tmp_path, builtin=True, timeout=0.5, configured={"sh": [hang]}) == []
