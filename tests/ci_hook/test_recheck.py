"""Each ingested finding carries how to draw it again: ruff's own command, or the one given with --recheck."""

from __future__ import annotations

import sys
from pathlib import Path

from redline.ci_hook.ingest import IngestOptions, ingest_files
from redline.config import Config
from redline.evidence import recheck_of
from redline.queue import Store


def test_ruff_findings_carry_ruffs_command_and_others_the_one_given(store: Store, config: Config, sample) -> None:
    ingest_files(store, config, [sample("ruff.json")])
    ruff = [fb for fb in store.feedback() if fb.source == "ruff"]
    assert ruff and all((r := recheck_of(fb)) is not None and r.argv[:2] == ("ruff", "check") and
                        r.reads == "ruff-json" for fb in ruff)
    opts = IngestOptions(recheck=f"{sys.executable} tools/check.py {{file}}")
    ingest_files(store, config, [sample("mypy.jsonl")], opts=opts)
    mypy = [fb for fb in store.feedback() if fb.source == "mypy"]
    assert mypy and all((r := recheck_of(fb)) is not None and r.argv[-1] == "{file}" and r.reads == "exit"
                        for fb in mypy)


def test_a_bad_recheck_command_is_one_line(store: Store, config: Config, sample, tmp_path: Path) -> None:
    summary = ingest_files(store, config, [sample("ruff.json")], opts=IngestOptions(recheck="  "))
    assert summary.failed and "--recheck" in (summary.failed[0].error or "")
    assert not list(store.feedback())  # nothing half-written
