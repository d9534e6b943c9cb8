"""The pure scheduling rules: window (also across midnight), threshold, kick, back-off, order."""

from __future__ import annotations

from datetime import datetime, timedelta

from redline.daemon.schedule import BACKOFF_MAX, RepoState, Window, backoff, decide, order

DAY = datetime(2026, 3, 4)


def at(h: int, m: int = 0) -> datetime:
    return DAY.replace(hour=h, minute=m)


def test_window_contains_and_next_start_including_across_midnight() -> None:
    night = Window.parse("01:00-06:00")
    assert night.contains(at(1)) and night.contains(at(5, 59)) and not night.contains(at(6))
    assert night.next_start(at(12)) == (DAY + timedelta(days=1)).replace(hour=1)
    assert night.next_start(at(0, 30)) == at(1) and night.next_start(at(3)) == at(3)
    late = Window.parse("22:00-04:00")
    assert late.contains(at(23)) and late.contains(at(3)) and not late.contains(at(12))


def test_threshold_and_window_both_needed_unless_kicked() -> None:
    w = Window.parse("01:00-06:00")
    assert not decide(at(2), w, 32, RepoState(31)).train
    assert "31 of 32" in decide(at(2), w, 32, RepoState(31)).reason
    outside = decide(at(12), w, 32, RepoState(40))
    assert not outside.train and outside.next_at == (DAY + timedelta(days=1)).replace(hour=1)
    assert decide(at(2), w, 32, RepoState(32)).train
    assert decide(at(12), w, 32, RepoState(1, kicked=True)).train
    assert not decide(at(12), w, 32, RepoState(0, kicked=True)).train  # nothing to train on


def test_backoff_grows_and_is_capped_and_a_kick_skips_it() -> None:
    assert [backoff(n) for n in (0, 1, 2, 3)] == [timedelta(0), timedelta(minutes=10), timedelta(minutes=20),
                                                  timedelta(minutes=40)]
    assert backoff(30) == BACKOFF_MAX
    w = Window.parse("01:00-06:00")
    failed = RepoState(40, failures=2, failed_at=at(2))
    d = decide(at(2, 10), w, 32, failed)
    assert not d.train and "backing off" in d.reason and d.next_at == at(2, 20)
    assert decide(at(2, 21), w, 32, failed).train
    assert decide(at(2, 10), w, 32, RepoState(40, kicked=True, failures=2, failed_at=at(2))).train


def test_order_is_kicked_first_then_oldest_feedback_first() -> None:
    due = [("b", RepoState(40, "2026-03-02T00:00:00Z")), ("a", RepoState(40, "2026-03-01T00:00:00Z")),
           ("k", RepoState(1, "2026-03-03T00:00:00Z", kicked=True)), ("n", RepoState(40, None))]
    assert [name for name, _ in order(due)] == ["k", "a", "b", "n"]
