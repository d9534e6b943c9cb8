"""`redline worker [--repo PATH]... [--tick S] [--once]`: train a team's repositories on this GPU machine."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import click

from redline.cli.common import console


@click.command("worker")
@click.option("--repo", "roots", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A checkout to train besides those `redline init` registered here (repeatable).")
@click.option("--tick", "tick_s", type=float, default=60.0, show_default=True,
              help="Seconds between looks at the team queue.")
@click.option("--once", is_flag=True, help="Look once, train at most one repository, and exit (cron, checks).")
def worker(roots: tuple[Path, ...], tick_s: float, once: bool) -> None:
    """Take the team queue's training jobs when this machine's GPU is idle, one repository at a time
    (docs/team.md): each repository's job is held by one worker, its adapter published into `adapter_store`."""
    from redline.config import redline_home
    from redline.daemon.main import single_instance
    from redline.daemon.worker import Worker, setup_logging

    home = redline_home()
    with single_instance(home, "worker"):
        log_path = setup_logging(home)
        console.print(f"redline worker: logging to {log_path}", markup=False)
        w = Worker(home, roots=list(roots))
        if once:
            w.refresh(strict=True)
            try:
                trained = w.tick()
            finally:
                w.close()
            console.print(f"trained {trained}" if trained else "nothing to train now", markup=False)
            return

        def stop(signum: int, frame: Any) -> None:
            w.stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        w.run(tick_s)
