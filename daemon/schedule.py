"""When to train a repository: pure functions of the time, the backlog and the repository's recent history.

Train when kicked, or inside the window once enough new attributed feedback has arrived; after a failure wait
an exponentially growing back-off first (a kick does not wait: the user asked). Repositories due at the same
time go oldest unprocessed feedback first. The clock is a parameter, so the tests can pick any time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

#: first back-off after a failed training, doubled per consecutive failure up to `BACKOFF_MAX`
BACKOFF_BASE = timedelta(minutes=10)
BACKOFF_MAX = timedelta(hours=6)


@dataclass(frozen=True)
class Window:
    """A daily local-time window; `end` before `start` wraps midnight ("22:00-04:00")."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Window:
        a, b = text.split("-")
        return cls(time.fromisoformat(a), time.fromisoformat(b))

    def contains(self, now: datetime) -> bool:
        t = now.time()
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def next_start(self, now: datetime) -> datetime:
        """`now` when inside the window, else the next time it opens."""
        if self.contains(now):
            return now
        opens = now.replace(hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0)
        return opens if opens > now else opens + timedelta(days=1)


@dataclass(frozen=True)
class RepoState:
    #: new attributed feedback records not yet trained on
    backlog: int
    #: `created_at` of the oldest of them (ISO), None when there are none
    oldest: str | None = None
    kicked: bool = False
    #: consecutive failed trainings, and when the last one ended
    failures: int = 0
    failed_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    train: bool
    #: why (shown in `redline daemon status` and the editor)
    reason: str
    #: when training is expected next, None when it waits on feedback rather than on the clock
    next_at: datetime | None = None


def backoff(failures: int) -> timedelta:
    if failures <= 0:
        return timedelta(0)
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failures - 1))


def decide(now: datetime, window: Window, min_feedback: int, state: RepoState) -> Decision:
    if state.kicked:
        if state.backlog == 0:
            return Decision(False, "kicked, but there is no new feedback to train on")
        return Decision(True, "kicked")
    if state.backlog < max(1, min_feedback):
        return Decision(False, f"{state.backlog} of {min_feedback} new feedback records")
    if state.failures and state.failed_at is not None:
        retry = state.failed_at + backoff(state.failures)
        if now < retry:
            return Decision(False, f"backing off after {state.failures} failed training(s)",
                            window.next_start(retry))
    if not window.contains(now):
        return Decision(False, "outside the training window", window.next_start(now))
    return Decision(True, f"{state.backlog} new feedback records in the window", now)


def order(due: list[tuple[str, RepoState]]) -> list[tuple[str, RepoState]]:
    """Kicked first, then oldest unprocessed feedback first (ISO times sort as text)."""
    return sorted(due, key=lambda item: (not item[1].kicked, item[1].oldest or "~"))
