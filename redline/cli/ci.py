"""`redline ci`: ingest CI reports, wrap build commands, bundle feedback for another machine, watch the inbox."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


@click.group()
def ci() -> None:
    """Turn CI output (test reports, linters, compilers, review comments) into feedback."""


@ci.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["junit", "sarif", "mypy", "ruff", "reportlog", "github"]),
              help="Skip detection and parse every PATH as this format.")
@click.option("--include-untrusted", is_flag=True,
              help="Keep review comments from authors outside `trusted_associations` (with low trust).")
@click.option("--commit", help="The commit the reports are about (default: $GITHUB_SHA).")
@click.option("--no-hints", is_flag=True, help="Do not ask git blame which lines AI-trailer commits wrote.")
@click.option("--recheck", metavar="CMD",
              help="How the tool checks one file again, `{file}` for its path (e.g. 'python tools/lint.py --json "
                   "{file}'): stored with each finding so the gate can rerun it on the adapter's answers. It prints "
                   "ruff's JSON for a ruff report, else its exit status says pass or fail. Ruff's own is known.")
def ingest(paths: tuple[Path, ...], fmt: str | None, include_untrusted: bool, commit: str | None,
           no_hints: bool, recheck: str | None) -> None:
    """Parse reports (JUnit XML, SARIF, mypy/ruff JSON, pytest-reportlog, PR review comments) into the queue.

    Each report is read whole and queued in one transaction; a bad report is named on one line, writes nothing,
    and the others still land. Exits 1 if any report was rejected.
    """
    from redline.ci_hook.ingest import IngestOptions, ingest_files
    from redline.cli.common import context, err_console

    config, store = context()
    opts = IngestOptions(trusted_associations=config.trusted_associations, include_untrusted=include_untrusted,
                         commit=commit or os.environ.get("GITHUB_SHA") or None, recheck=recheck)
    try:
        summary = ingest_files(store, config, list(paths), fmt=fmt, opts=opts, hints=not no_hints)
    finally:
        store.close()
    for warning in opts.warnings:
        err_console.print(f"redline: warning: {warning}")
    for f in summary.files:
        if f.error:
            click.echo(f"redline: error: {f.error}", err=True)
        else:
            new = f"{f.spooled} spooled (another process holds the queue)" if f.spooled else f"{f.added} new"
            click.echo(f"{f.path}: {f.format}, {f.parsed} findings, {new}")
    skipped = []
    if opts.outside_repo:
        skipped.append(f"{opts.outside_repo} outside the repository")
    if opts.text_lines:
        skipped.append(f"{opts.text_lines} plain-text lines among JSON lines")
    if opts.untrusted and not include_untrusted:
        skipped.append(f"{opts.untrusted} review comments from untrusted authors (--include-untrusted keeps them)")
    if skipped:
        click.echo(f"skipped: {'; '.join(skipped)}", err=True)
    if summary.failed:
        sys.exit(1)


@ci.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--source", help="Name recorded as the feedback source (default: the command's name).")
def run(cmd: tuple[str, ...], source: str | None) -> None:
    """Run CMD, pass its output and exit code through, and record its `file:line:col: error:` diagnostics.

    Usage: redline ci run -- gcc -c main.c
    """
    from redline.ci_hook.run import run_passthrough

    code, text = run_passthrough(cmd)
    try:
        _record_run_output(cmd, text, source)
    except Exception as exc:  # recording is a side effect: the command's own result must come through untouched
        click.echo(f"redline: warning: diagnostics not recorded: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                   err=True)
    sys.exit(128 - code if code < 0 else code)  # killed by a signal: the shell's convention


def _record_run_output(cmd: tuple[str, ...], text: str, source: str | None) -> None:
    from redline.ci_hook.generated import add_commit_hints
    from redline.ci_hook.run import parse_diagnostics, source_for
    from redline.cli.common import context
    from redline.ledger import record

    config, store = context()
    try:
        parsed = parse_diagnostics(text, source=source or source_for(cmd), cwd=Path.cwd(),
                                   repo_root=config.repo_root)
        if not parsed.feedback:
            return
        add_commit_hints(config.repo_root, parsed.feedback)
        added = record(store, config, feedback=parsed.feedback)
    finally:
        store.close()
    note = f", {parsed.outside_repo} outside the repository skipped" if parsed.outside_repo else ""
    new = f"{added.spooled} spooled: another process holds the queue" if added.spooled else f"{added.feedback} new"
    click.echo(f"redline: {len(parsed.feedback)} diagnostics recorded ({new}{note})", err=True)


@ci.command()
@click.argument("reports", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Bundle file (default: feedback-<commit>-<time>.redline.jsonl.gz here).")
@click.option("--format", "fmt", type=click.Choice(["junit", "sarif", "mypy", "ruff", "reportlog", "github"]),
              help="Format of REPORTS (default: detected).")
@click.option("--include-untrusted", is_flag=True, help="Keep review comments from untrusted authors.")
def bundle(reports: tuple[Path, ...], output: Path | None, fmt: str | None, include_untrusted: bool) -> None:
    """Write a compressed feedback bundle to carry to another machine (a CI artifact).

    With REPORTS, they are parsed straight into the bundle; without, the whole queue is exported. On the
    developer's machine drop the bundle into the inbox (`redline ci watch`) or run `redline import BUNDLE`.
    """
    from redline.bundle import default_name, write_bundle
    from redline.ci_hook.ingest import IngestOptions, parse_report
    from redline.config import load_config

    config = load_config()
    commit = os.environ.get("GITHUB_SHA") or None
    out = output or Path(default_name(commit))
    if reports:
        opts = IngestOptions(trusted_associations=config.trusted_associations,
                             include_untrusted=include_untrusted, commit=commit)
        feedback = []
        for report in reports:
            feedback.extend(parse_report(report, config.repo_root, fmt, opts))
        for warning in opts.warnings:
            click.echo(f"redline: warning: {warning}", err=True)
        lines = write_bundle(out, feedback=feedback)
    else:
        from redline.queue import open_store

        store = open_store(config)
        try:
            lines = write_bundle(out, store=store)
        finally:
            store.close()
    click.echo(f"{out}: {lines} records")


@ci.command()
@click.option("--once", is_flag=True, help="Import what is in the inbox now and exit.")
@click.option("--path", "print_path", is_flag=True, help="Print the inbox folder (creating it) and exit.")
def watch(once: bool, print_path: bool) -> None:
    """Import feedback bundles dropped into this repo's inbox folder, as they arrive."""
    import time

    from redline.config import load_config
    from redline.inbox import InboxResult, InboxWatcher, import_pending

    config = load_config()
    if print_path:
        from redline.private import private_dir

        private_dir(config.inbox_dir)
        click.echo(str(config.inbox_dir))
        return

    def report(result: InboxResult) -> None:
        for path in result.imported:
            click.echo(f"imported {path.name}")
        for _path, error in result.failed:
            click.echo(f"redline: error: {error} (moved to {config.inbox_dir / 'failed'})", err=True)

    if once:
        result = import_pending(config)
        report(result)
        if result.failed:
            sys.exit(1)
        return
    watcher = InboxWatcher(config, on_result=report)
    click.echo(f"watching {config.inbox_dir} (Ctrl-C to stop)")
    watcher.start()
    try:
        while watcher.alive:
            time.sleep(1)
        raise click.ClickException("the inbox watcher stopped unexpectedly — run `redline ci watch` again")
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
