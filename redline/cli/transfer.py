"""`redline import | export`: move records in and out as documented JSONL (docs/records.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from redline.cli.common import console, context
from redline.errors import RecordError
from redline.transfer import export_jsonl, import_jsonl


@click.command("import")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--from", "source", type=click.Choice(["continue", "tabby"]), default=None,
              help="Read what Continue (dev_data) or Tabby (event logs) logged; FILES is then at most one "
                   "directory (default: the tool's own).")
@click.option("--watch", is_flag=True, help="With --from: keep following the directory and import as it grows.")
def import_(files: tuple[Path, ...], source: str | None, watch: bool) -> None:
    """Import FILES (.jsonl or .jsonl.gz, one generation with its feedback per line). Each file is all or nothing.

    With --from continue|tabby [DIR], import this repository's completions from those tools' logs instead.
    """
    if source is not None:
        _import_capture(source, files, watch)
        return
    if watch or not files:
        raise click.UsageError("give FILES to import, or --from continue|tabby [DIR] (--watch needs --from)")
    config, store = context()
    for path in files:
        result = import_jsonl(store, config, path)
        if result.spooled:
            console.print(f"{path}: {result.lines} lines → {result.spooled} records spooled (another process holds"
                          " the queue; its next open merges them)")
            continue
        console.print(f"{path}: {result.lines} lines → {result.generations} generations, "
                      f"{result.feedback} feedback added ({result.duplicates} already queued)")


def _import_capture(source: str, dirs: tuple[Path, ...], watch: bool) -> None:
    from redline.importers import capture_dir, import_capture

    if len(dirs) > 1:
        raise click.UsageError(f"--from {source} takes one directory")
    config, store = context()
    directory = capture_dir(source, dirs[0] if dirs else None)
    if not watch:
        report = import_capture(store, config, source, directory)
        if report.skipped and not report.events:  # nothing was read: wrong directory, or files of another tool
            raise RecordError(f"no line of the {source} files here is a {source} event ({report.skipped} skipped: "
                              f"{', '.join(report.skipped_examples)})", path=directory,
                              fix=f"give the directory {source} logs to")
        console.print(report.summary(f"{source} ({directory})"))
        return
    import threading

    from redline.importers.watch import watch as follow

    stop = threading.Event()
    console.print(f"following {directory}; Ctrl-C stops")
    try:
        follow(store, config, source, directory, lambda r: console.print(r.summary(source)), stop)
    except KeyboardInterrupt:
        stop.set()


@click.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write here instead of stdout.")
def export(output: Path | None) -> None:
    """Export every generation with its feedback as JSONL (re-importable with `redline import`)."""
    _, store = context()
    if output is None:
        export_jsonl(store, sys.stdout)
        return
    from redline.private import private_file

    tmp = output.with_name(output.name + ".part")
    tmp.unlink(missing_ok=True)
    with open(tmp, "w", encoding="utf-8", opener=private_file) as out:  # 0600: records hold private code
        n = export_jsonl(store, out)
    tmp.replace(output)
    console.print(f"wrote {n} lines to {output}")
