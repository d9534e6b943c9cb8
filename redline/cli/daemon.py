"""`redline daemon [run] | status | kick REPO | forget REPO | install [--dry-run] | uninstall`."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import click

from redline.cli.common import console


def _home() -> Path:
    from redline.config import redline_home

    return redline_home()


@click.group("daemon", invoke_without_command=True)
@click.pass_context
def daemon(ctx: click.Context) -> None:
    """Train every `redline init` repository by itself: in the window, when the GPU is free (docs/daemon.md)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@daemon.command("run")
@click.option("--tick", "tick_s", type=float, default=60.0, show_default=True,
              help="Seconds between looks at the queues (a kick wakes it at once).")
@click.option("--if-not-running", is_flag=True, help="Exit quietly when a daemon already runs (for cron).")
def run(tick_s: float, if_not_running: bool) -> None:
    """Run in the foreground (the service runs this)."""
    from redline.daemon.main import AlreadyRunning, Daemon, setup_logging, single_instance

    home = _home()
    try:
        with single_instance(home):
            log_path = setup_logging(home)
            console.print(f"redline daemon: logging to {log_path}", markup=False)
            d = Daemon(home)

            def stop(signum: int, frame: Any) -> None:
                d.stop.set()

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            d.run(tick_s)
    except AlreadyRunning:
        if if_not_running:
            return
        raise


@daemon.command("status")
def status() -> None:
    """Each repository's state, next training and last result."""
    from redline.config import load_config
    from redline.daemon import registry
    from redline.daemon.main import running_pid
    from redline.errors import RedlineError
    from redline.queue import open_store
    from redline.status import read_status

    home = _home()
    pid = running_pid(home)
    console.print(f"daemon: {'running (pid ' + str(pid) + ')' if pid else 'not running'}", markup=False)
    repos = registry.registered(home)
    if not repos:
        console.print("no repositories registered — run `redline init` in one", markup=False)
    for entry in repos:
        console.print(f"\n{entry.repo_id}  ({entry.root})", markup=False)
        if not Path(entry.root).is_dir():
            console.print(f"  missing: skipped until it is back, or `redline daemon forget {entry.root}`",
                          markup=False)
            continue
        try:
            config = load_config(entry.root)
            store = open_store(config)
        except RedlineError as exc:
            console.print(f"  {exc.one_line()}", markup=False)
            continue
        try:
            training = read_status(store)
            backlog, _ = store.backlog()
        finally:
            store.close()
        d, last = training.daemon, training.last
        console.print(f"  state:   {d.state + (' — ' + d.detail if d.detail else '') if d else 'not seen by a daemon'}"
                      f"; {backlog} new feedback (trains at {config.train_min_feedback} in {config.train_window})",
                      markup=False)
        console.print(f"  next:    {training.next_training or '-'}", markup=False)
        console.print(f"  last:    {_last(last)}", markup=False)
        console.print(f"  adapter: {training.adapter.version or 'none (base model)'}", markup=False)


def _last(last: Any) -> str:
    if last is None:
        return "never"
    return f"{last.at} {last.result}" + (f" {last.version}" if last.version else "") + (
        f" ({last.reason})" if last.reason else "")


@daemon.command("kick")
@click.argument("repo")
def kick(repo: str) -> None:
    """Train REPO (a path or repo id) at the daemon's next look, whatever the window and the count."""
    from redline.daemon.main import kick as kick_repo

    entry = kick_repo(_home(), repo)
    console.print(f"kicked {entry.repo_id}; `redline daemon status` shows when it trains", markup=False)


@daemon.command("forget")
@click.argument("repo")
def forget(repo: str) -> None:
    """Stop looking after REPO (a path or repo id); its queue and adapters stay."""
    from redline.daemon import registry

    entry = registry.forget(_home(), repo)
    console.print(f"forgot {entry.repo_id} ({entry.root})", markup=False)


@daemon.command("install")
@click.option("--dry-run", is_flag=True, help="Print the files and commands; change nothing.")
@click.option("--kind", type=click.Choice(["systemd", "launchd", "cron"]), help="Default: what this system has.")
def install(dry_run: bool, kind: str | None) -> None:
    """Run the daemon as a user service (systemd user unit, launchd agent, or crontab lines)."""
    from redline.daemon import service
    from redline.errors import RedlineError

    try:
        kind = kind or service.detect()
    except RedlineError as exc:
        if not dry_run:
            raise
        kind = service.default_kind()  # what the platform's own kind would install, saying why it is that one
        click.echo(f"# {exc.message}: this is what `--kind {kind}` would install")
    p = service.plan(kind, _home())
    if dry_run:  # plain echo, not the console: file text must not be wrapped at the terminal's width
        for f in p.files:
            click.echo(f"# {f.path}\n{f.text}")
        for cmd in p.commands:
            click.echo("$ " + " ".join(cmd))
        return
    for line in service.install(p):
        console.print(line, markup=False)


@daemon.command("uninstall")
@click.option("--kind", type=click.Choice(["systemd", "launchd", "cron"]), help="Default: what this system has.")
def uninstall(kind: str | None) -> None:
    """Stop the service and remove its files."""
    from redline.daemon import service

    for line in service.uninstall(service.plan(kind or service.detect(), _home())):
        console.print(line, markup=False)

