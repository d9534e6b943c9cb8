"""The daemon's decisions with a test clock, a fake device probe and a fake trainer: what it trains, when it
waits, and what it writes in each repository's training status."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from redline.config import load_config
from redline.daemon import registry
from redline.daemon.child import ChildOutcome
from redline.daemon.device import DeviceState
from redline.daemon.main import Daemon, kick
from redline.errors import ConfigError
from redline.queue import open_store
from redline.status import TrainingStatus, read_status
from tests.daemon.conftest import NOON, add_feedback, make_repo


def status(root: Path) -> TrainingStatus:
    store = open_store(load_config(root) if isinstance(root, Path) else root)
    try:
        return read_status(store)
    finally:
        store.close()


def test_trains_in_the_window_once_the_threshold_is_met(daemon: Daemon, clock, trainer, tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    add_feedback(root, 31)
    assert daemon.tick() is None and trainer.calls == []
    st = status(root)
    assert st.daemon.state == "waiting" and "31 of 32" in st.daemon.detail
    add_feedback(root, 1, offset=100)
    clock.now = NOON
    assert daemon.tick() is None  # enough feedback, but outside the window
    assert "outside the training window" in status(root).daemon.detail
    assert status(root).next_training.startswith("2026-03-05T01:00")
    clock.now = NOON.replace(hour=1, minute=5)
    assert daemon.tick() == str(root.resolve()) and trainer.calls == [root.resolve()]
    assert status(root).daemon.state == "idle"


def test_kick_trains_now_outside_the_window(daemon: Daemon, clock, trainer, redline_home: Path,
                                            tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    add_feedback(root, 1)
    clock.now = NOON
    assert daemon.tick() is None
    kick(redline_home, str(root))
    assert daemon.tick() == str(root.resolve())
    assert daemon.tick() is None  # the kick was used up


def test_oldest_feedback_first_and_one_training_per_tick(daemon: Daemon, trainer, tmp_path: Path) -> None:
    newer = make_repo(tmp_path / "newer")
    older = make_repo(tmp_path / "older")
    add_feedback(older, 32)
    add_feedback(newer, 32, offset=100)
    assert daemon.tick() == str(older.resolve())
    assert trainer.calls == [older.resolve()]


def test_a_busy_gpu_makes_it_wait(daemon: Daemon, probe, trainer, tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    add_feedback(root, 40)
    probe.state = DeviceState("cuda", False, "GPU busy: compute process(es) 4242", (4242,), 70_000)
    assert daemon.tick() is None and trainer.calls == []
    st = status(root)
    assert st.daemon.state == "waiting" and "4242" in st.daemon.detail
    probe.state = DeviceState("cuda", True, "GPU idle", (), 80_000)
    assert daemon.tick() == str(root.resolve())


def test_no_gpu_trains_on_cpu_only_when_allowed(daemon: Daemon, probe, trainer, tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    add_feedback(root, 40)
    probe.state = DeviceState("cpu", True, "no GPU found")
    assert daemon.tick() is None and "train_on_cpu is off" in status(root).daemon.detail
    (root / "redline.toml").write_text("scrub_secrets = false\ntrain_on_cpu = true\n", encoding="utf-8")
    assert daemon.tick() == str(root.resolve())


class FakeControl:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.calls: list[str] = []

    def find_server(self, config):  # type: ignore[no-untyped-def]
        return SimpleNamespace(pid=self.pid)

    def yield_gpu(self, config, reason: str) -> bool:  # type: ignore[no-untyped-def]
        self.calls.append("yield")
        return True

    def resume(self, config) -> bool:  # type: ignore[no-untyped-def]
        self.calls.append("resume")
        return True

    def reload(self, config) -> bool:  # type: ignore[no-untyped-def]
        self.calls.append("reload")
        return True


def test_serve_yields_the_gpu_around_training_and_reloads_after_a_promotion(daemon: Daemon, probe, trainer,
                                                                             tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    add_feedback(root, 40)
    daemon.control = FakeControl(777)  # type: ignore[assignment]
    probe.state = DeviceState("cuda", False, "GPU busy: compute process(es) 777", (777,), 1_000)
    assert daemon.tick() == str(root.resolve())
    assert daemon.control.calls == ["yield", "resume", "reload"]  # type: ignore[union-attr]
    assert probe.calls[-1] == (777,)  # re-probed without the yielded server


def test_serve_policy_wait_leaves_the_server_alone(daemon: Daemon, probe, trainer, tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", 'serve_during_training = "wait"\n')
    add_feedback(root, 40)
    daemon.control = FakeControl(777)  # type: ignore[assignment]
    probe.state = DeviceState("cuda", False, "GPU busy: compute process(es) 777", (777,), 1_000)
    assert daemon.tick() is None and trainer.calls == []
    assert daemon.control.calls == []  # type: ignore[union-attr]
    assert "serve_during_training = wait" in status(root).daemon.detail


def test_a_failed_child_promotes_nothing_records_why_and_backs_off(daemon: Daemon, clock, trainer,
                                                                    tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    add_feedback(root, 40)
    trainer.outcome = ChildOutcome(False, False, None, "training process killed by SIGKILL (out of memory?)")
    assert daemon.tick() == str(root.resolve())
    st = status(root)
    assert st.last.result == "failed" and "SIGKILL" in st.last.reason
    assert st.daemon.state == "backoff" and st.adapter.version is None
    assert daemon.tick() is None and "backing off" in status(root).daemon.detail  # alive, waiting
    clock.now = clock.now.replace(minute=clock.now.minute + 11)
    assert daemon.tick() == str(root.resolve())


def test_full_disk_skips_training_with_the_reason_in_status(daemon: Daemon, trainer, tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r")
    add_feedback(root, 40)
    daemon.min_free_bytes = 2**62
    assert daemon.tick() is None and trainer.calls == []
    st = status(root)
    assert st.last.result == "skipped" and "GiB free" in st.last.reason and "GiB free" in st.daemon.detail


def test_config_reload_keeps_the_last_good_config_on_a_typo(daemon: Daemon, clock, trainer,
                                                            tmp_path: Path, caplog) -> None:
    root = make_repo(tmp_path / "r")
    good = load_config(root)
    add_feedback(root, 2)
    daemon.refresh(strict=True)
    assert daemon.tick() is None
    (root / "redline.toml").write_text("scrub_secrets = false\ntrain_min_feedback = 2\n", encoding="utf-8")
    (root / "redline.toml").touch()
    with caplog.at_level(logging.INFO, logger="redline.daemon"):
        assert daemon.tick() == str(root.resolve())  # reloaded: 2 records are now enough
        assert "config reloaded" in caplog.text
        add_feedback(root, 2, offset=50)
        (root / "redline.toml").write_text("train_min_feedback = 'lots'\n", encoding="utf-8")
        assert daemon.tick() == str(root.resolve())  # the last good config (threshold 2) still holds
        assert "keeping the last good config" in caplog.text
    assert daemon.tick() is None  # nothing new: waiting, and the status says why the config was not taken
    assert "train_min_feedback" in status(good).daemon.detail  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="train_min_feedback"):
        Daemon(daemon.home, watch=False, control=None).refresh(strict=True)  # a fresh start refuses


def test_a_missing_repo_is_skipped_with_a_warning_and_kept_until_forget(daemon: Daemon, trainer, redline_home,
                                                                        tmp_path: Path, caplog) -> None:
    gone = make_repo(tmp_path / "gone")
    here = make_repo(tmp_path / "here")
    add_feedback(here, 40)
    (gone / "redline.toml").unlink()
    gone.rmdir()
    with caplog.at_level(logging.WARNING, logger="redline.daemon"):
        assert daemon.tick() == str(here.resolve())
    assert "is missing" in caplog.text and str(gone) in caplog.text
    assert [r.root for r in registry.registered(redline_home)] == [str(gone), str(here)]
    registry.forget(redline_home, str(gone))
    assert [r.root for r in registry.registered(redline_home)] == [str(here)]


def test_a_promoted_adapter_kept_less_than_its_predecessor_is_rolled_back_and_served_again(
        daemon: Daemon, tmp_path: Path) -> None:
    from redline.adapters import AdapterRegistry
    from tests.core.test_adapters import fake_adapter
    from tests.core.test_online import offered

    root = make_repo(tmp_path / "r")
    config = load_config(root)
    adapters = AdapterRegistry(config.adapters_dir)
    v1, v2 = adapters.add(fake_adapter(tmp_path / "t1")), adapters.add(fake_adapter(tmp_path / "t2"))
    adapters.promote(v1)
    adapters.promote(v2)
    store = open_store(config)
    offered(store, v1, 40, 30, 0)
    offered(store, v2, 40, 5, 100)
    store.close()
    daemon.control = FakeControl(0)  # type: ignore[assignment]
    daemon.tick()
    assert adapters.current() == v1 and daemon.control.calls == ["reload"]  # type: ignore[union-attr]
    assert (status(root).adapter.note or "").startswith(f"{v2} rolled back")
