"""Fixtures for the daemon tests: registered scratch repositories with queued feedback, a settable clock, a fake
device probe and a fake `redline serve` control, so scheduling is tested without waiting for 01:00."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from redline.config import load_config
from redline.daemon import registry
from redline.daemon.child import ChildOutcome
from redline.daemon.device import DeviceState
from redline.daemon.main import Daemon
from redline.queue import open_store
from tests.core.helpers import make_feedback, make_generation

TZ = timezone(timedelta(hours=2))
NIGHT = datetime(2026, 3, 4, 2, 30, tzinfo=TZ)  # inside the default window 01:00-06:00
NOON = datetime(2026, 3, 4, 12, 0, tzinfo=TZ)


class Clock:
    def __init__(self, now: datetime = NIGHT) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class FakeProbe:
    """The GPU as the test says: idle, busy with some pids, or absent (kind cpu)."""

    state: DeviceState = field(default_factory=lambda: DeviceState("cuda", True, "GPU idle", (), 80_000))
    calls: list[tuple[int, ...]] = field(default_factory=list)

    def __call__(self, ignore: tuple[int, ...] = ()) -> DeviceState:
        self.calls.append(tuple(ignore))
        busy = tuple(p for p in self.state.busy_pids if p not in ignore)
        if self.state.busy_pids and not busy:
            return DeviceState("cuda", True, "GPU idle once the server yielded", (), self.state.free_mb)
        return self.state


@dataclass
class FakeTrainer:
    outcome: ChildOutcome = field(default_factory=lambda: ChildOutcome(True, True, "v0001", None))
    calls: list[Path] = field(default_factory=list)

    def __call__(self, config, stop: threading.Event) -> ChildOutcome:  # type: ignore[no-untyped-def]
        self.calls.append(config.repo_root)
        if self.outcome.ok:  # a finished run has trained on the backlog
            store = open_store(config)
            store.ack(store.claim("fake-trainer").token)
            store.close()
        return self.outcome


def make_repo(root: Path, toml: str = "") -> Path:
    root.mkdir(parents=True)
    (root / "redline.toml").write_text("scrub_secrets = false\n" + toml, encoding="utf-8")
    config = load_config(root)
    registry.register(config.home, root, config.repo_id)
    return root


def add_feedback(root: Path, n: int, offset: int = 0) -> None:
    store = open_store(load_config(root))
    try:
        gens = [make_generation(offset + i) for i in range(n)]
        store.add(gens, [make_feedback(g.id, offset + i) for i, g in enumerate(gens)])
    finally:
        store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def probe() -> FakeProbe:
    return FakeProbe()


@pytest.fixture
def trainer() -> FakeTrainer:
    return FakeTrainer()


@pytest.fixture
def daemon(redline_home: Path, clock: Clock, probe: FakeProbe, trainer: FakeTrainer):  # type: ignore[no-untyped-def]
    d = Daemon(redline_home, clock=clock, probe=probe, trainer=trainer, control=None, watch=False)
    yield d
    d.close()
