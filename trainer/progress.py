"""A counting progress bar for the passes that run before training (the teacher's rewrites, its cached pass)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def count_bar(label: str, enabled: bool, total: int) -> Iterator[Callable[[int], None] | None]:
    """Yields `advance(n)`, or None when disabled or there is nothing to count (minutes on a 7B model)."""
    if not enabled or not total:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.update(task, advance=n)
