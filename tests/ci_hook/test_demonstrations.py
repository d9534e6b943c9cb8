"""A linter's own fix becomes what passing looks like for the teacher: real ruff, a model-written span, `ci ingest`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from redline.ci_hook.ingest import ingest_files
from redline.config import Config
from redline.demonstrations import apply_fix
from redline.queue import Store
from redline.records import Range, Span
from redline.trainer.feedback_text import aggregate

HUMAN = "import os\n\n\ndef human():\n    return os.sep\n\n\n"
MODEL = 'def model_wrote(name):\n    label = f"user"\n    return label + name\n'


def test_ruffs_fix_of_a_finding_in_model_code_is_kept_as_the_corrected_lines(
        store: Store, config: Config, generation_at, tmp_path: Path) -> None:
    path = config.repo_root / "src" / "names.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(HUMAN + MODEL + '\n\ndef mine():\n    return f"human"\n')
    first = HUMAN.count("\n")
    gen = generation_at("src/names.py", first, first + 2)
    report = tmp_path / "ruff.json"
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F541", "--output-format", "json",
                          "--no-cache", str(path)], capture_output=True, text=True, cwd=config.repo_root)
    report.write_text(run.stdout)
    assert len(json.loads(run.stdout)) == 2, run.stdout + run.stderr  # one in the model's lines, one in the human's
    ingest_files(store, config, [report])
    found = {fb.generation_id: fb for fb in store.feedback()}
    assert set(found) == {gen.id, None}
    demo = found[gen.id].meta["demonstration"]
    assert demo == {"source": "ruff's own fix", "text": MODEL.replace('f"user"', '"user"')}
    assert "demonstration" not in found[None].meta  # the human's line is not the model's to fix
    text = aggregate(store.feedback_for(gen.id))
    assert text.endswith(f"A version that passes (ruff's own fix):\n{demo['text']}"), text


def test_a_fix_is_applied_only_inside_the_span_and_only_when_its_edits_do_not_overlap() -> None:
    span = Span("g", "a.py", Range(10, 12), "x = f'a'\ny = 1\n")

    def edit(row: int, col: int, end_col: int, content: str) -> dict:
        return {"content": content, "location": {"row": row, "column": col},
                "end_location": {"row": row, "column": end_col}}

    assert apply_fix(span, [edit(11, 5, 9, "'a'")]) == "x = 'a'\ny = 1\n"
    assert apply_fix(span, [edit(10, 1, 2, "z")]) is None  # the line above the span
    assert apply_fix(span, [edit(11, 5, 9, "'a'"), edit(11, 6, 7, "b")]) is None  # overlapping edits
    assert apply_fix(Span("g", "a.py", Range(10, 12, 4), span.text), [edit(11, 5, 9, "'a'")]) is None  # mid-line
