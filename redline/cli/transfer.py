"""`redline import | export`: move records in and out as documented JSONL (docs/records.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from redline.cli.common import console, context
from redline.transfer import export_jsonl, import_jsonl


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def import_(files: tuple[Path, ...]) -> None:
    """Import FILES (.jsonl or .jsonl.gz, one generation with its feedback per line). Each file is all or nothing."""
    config, store = context()
    for path in files:
        result = import_jsonl(store, config, path)
        console.print(f"{path}: {result.lines} lines → {result.generations} generations, "
                      f"{result.feedback} feedback added ({result.duplicates} already queued)")


@click.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here instead of stdout.")
def export(output: Path | None) -> None:
    """Export every generation with its feedback as JSONL (re-importable with `redline import`)."""
    _, store = context()
    if output is None:
        export_jsonl(store, sys.stdout)
        return
    tmp = output.with_name(output.name + ".part")
    with tmp.open("w", encoding="utf-8") as out:
        n = export_jsonl(store, out)
    tmp.replace(output)
    console.print(f"wrote {n} lines to {output}")
