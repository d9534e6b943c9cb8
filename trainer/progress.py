"""Progress bars: a counting one for the passes before training (the teacher's rewrites, its cached pass) and
the training bar (loss, divergence, tokens/s, MFU, ETA). Both are silent when disabled."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


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


class StepBar:
    """The training bar: one tick per optimizer step, with its loss, divergence, tokens/s and MFU."""

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.enabled, self.total, self.start = enabled, total, start
        self._bar: Any = None

    def __enter__(self) -> StepBar:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]:.4f} kl {task.fields[kl]:.4f} "
                                            "{task.fields[tok_s]:.0f} tok/s{task.fields[mfu_text]}"),
                                 TimeRemainingColumn())
            self._bar.__enter__()
            self._task = self._bar.add_task("train", total=self.total, completed=self.start, loss=0.0, kl=0.0,
                                            tok_s=0.0, mfu_text="")
        return self

    def advance(self, stats: dict[str, float]) -> None:
        if self._bar is not None:
            mfu = stats.get("mfu")
            self._bar.update(self._task, advance=1, loss=stats["loss"], kl=stats["kl"], tok_s=stats["tok_s"],
                             mfu_text="" if mfu is None else f" MFU {mfu:.0%}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
