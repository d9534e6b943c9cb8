"""`redline demo`: the end-to-end demo (`bench/demo.py`) — a tiny model, a sample repository, real feedback,
`redline train`, and pass rates before and after."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--tasks", type=int, default=None, help="Training tasks the model attempts (default 56).")
@click.option("--seed", type=int, default=0, show_default=True, help="Which world repository and task sample.")
@click.option("--keep", type=click.Path(file_okay=False), default=None,
              help="Put the sample repository and report.html in DIR (a new or empty directory) and keep them.")
@click.option("--max-steps", type=int, default=None, help="Optimizer steps for `redline train` (default 40).")
@click.option("--model", type=click.Path(exists=True, file_okay=False), default=None, hidden=True,
              help="Use this model directory instead of the world's tiny model.")
def demo(tasks: int | None, seed: int, keep: str | None, max_steps: int | None, model: str | None) -> None:
    """End-to-end demo on a tiny model and a sample repository (CPU, a few minutes)."""
    try:
        from bench.demo import DEFAULT_STEPS, DEFAULT_TASKS, run_demo
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "bench":
            raise click.ClickException("`redline demo` runs from a source checkout (it needs bench/): "
                                       "run `./dev.sh demo` there") from None
        raise
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if tasks is not None and tasks < 1:
        raise click.BadParameter("must be at least 1", param_hint="--tasks")
    run_demo(tasks=tasks or DEFAULT_TASKS, seed=seed, keep=keep, max_steps=max_steps or DEFAULT_STEPS, model=model)
