"""The daemon's loop: watch every registered repository's inbox, decide when to train, train one at a time.

Each tick re-reads the repository list and each repository's config (a typo keeps the last good config, with a
warning), counts the new attributed feedback, writes the daemon part of the repository's training status, and
trains the first due repository (kicked first, then oldest feedback first) when the device is free. Everything
that can vary — the clock, the device probe, the trainer, the `redline serve` control — is a parameter.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import logging.handlers
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import IO

from redline.adapter_store import registry_for
from redline.config import Config, load_config
from redline.daemon import registry
from redline.daemon.child import ChildOutcome, run_child
from redline.daemon.device import DeviceState, Probe
from redline.daemon.device import probe as gpu_probe
from redline.daemon.schedule import Decision, RepoState, Window, decide, order
from redline.errors import ConfigError, RedlineError
from redline.inbox import InboxResult, InboxWatcher
from redline.online import roll_back_if_worse
from redline.queue import Store, open_store
from redline.records import utc_now
from redline.status import DaemonState, DaemonStatus, LastTraining, write_daemon, write_last

log = logging.getLogger("redline.daemon")

#: below this much free space in a repository's state dir a training is skipped (adapters + checkpoints)
MIN_FREE_BYTES = 2 * 2**30

Clock = Callable[[], datetime]
Trainer = Callable[[Config, threading.Event], ChildOutcome]


def local_now() -> datetime:
    return datetime.now().astimezone()


def daemon_dir(home: Path) -> Path:
    return Path(home) / "daemon"


def kick_file(home: Path, root: str) -> Path:
    return daemon_dir(home) / "kicks" / hashlib.sha256(root.encode()).hexdigest()[:16]


def kick(home: Path, which: str) -> registry.RegisteredRepo:
    """Ask the daemon to train `which` (a root or repo id) at its next tick, window and threshold aside."""
    repo = registry.find(registry.registered(home), which)
    path = kick_file(home, repo.root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(utc_now() + "\n", encoding="utf-8")
    return repo


def child_trainer(config: Config, stop: threading.Event) -> ChildOutcome:
    return run_child(config.repo_root, time_limit_s=config.train_time_limit_minutes * 60, stop=stop)


def serve_control() -> ModuleType | None:
    """`redline.serve.control` when installed (stdlib only), else None: no server to talk to."""
    try:
        from redline.serve import control
    except ImportError:
        return None
    return control


@dataclass
class Repo:
    entry: registry.RegisteredRepo
    config: Config | None = None
    watcher: InboxWatcher | None = None
    failures: int = 0
    failed_at: datetime | None = None
    missing: bool = False
    config_error: str | None = None


@dataclass
class Daemon:
    home: Path
    clock: Clock = local_now
    probe: Probe = gpu_probe
    trainer: Trainer = child_trainer
    control: ModuleType | None = field(default_factory=serve_control)
    watch: bool = True
    min_free_bytes: int = MIN_FREE_BYTES
    stop: threading.Event = field(default_factory=threading.Event)
    repos: dict[str, Repo] = field(default_factory=dict)

    # -- per tick ----------------------------------------------------------------------------------------------

    def entries(self) -> list[registry.RegisteredRepo]:
        """The repositories to look after: those `redline init` registered in this home."""
        return registry.registered(self.home)

    def refresh(self, *, strict: bool = False) -> None:
        """Re-read the repository list and each config. `strict` (at start): a bad config is an error."""
        try:
            entries = self.entries()
        except ConfigError as exc:
            if strict:
                raise
            log.warning("keeping the last repository list: %s", exc.one_line())
            return
        for root in set(self.repos) - {e.root for e in entries}:
            self._close(self.repos.pop(root))  # forgotten
        for entry in entries:
            repo = self.repos.setdefault(entry.root, Repo(entry))
            repo.entry = entry
            if not Path(entry.root).is_dir():
                if not repo.missing:
                    log.warning("repository %s is missing (deleted or moved); skipped until it is back or "
                                "`redline daemon forget %s`", entry.root, entry.root)
                repo.missing = True
                self._close(repo)
                continue
            repo.missing = False
            try:
                config = load_config(entry.root)
            except ConfigError as exc:
                if strict:
                    raise
                if repo.config_error != exc.one_line():
                    log.warning("%s: %s; keeping the last good config", entry.root, exc.one_line())
                repo.config_error = exc.one_line()
                continue
            repo.config_error = None
            if repo.config != config:
                if repo.config is not None:
                    log.info("%s: config reloaded", entry.root)
                if repo.watcher is not None and repo.config is not None and repo.config.inbox_dir != config.inbox_dir:
                    self._close(repo)
                repo.config = config
            if self.watch and repo.watcher is None:
                repo.watcher = InboxWatcher(config, on_result=_inbox_logger(entry.root))
                repo.watcher.start()

    def tick(self) -> str | None:
        """One pass over every repository; trains at most one. Returns the root trained, if any."""
        self.refresh()
        now = self.clock()
        due: list[tuple[str, RepoState]] = []
        for root, repo in self.repos.items():
            if repo.missing or repo.config is None:
                continue
            try:
                state, decision = self._decide(repo, now)
            except RedlineError as exc:  # the queue cannot be opened: say so, keep going
                log.warning("%s: %s", root, exc.one_line())
                continue
            if decision.train:
                due.append((root, state))
        for root, _ in order(due):
            if self._train(self.repos[root]):
                return root
        return None

    def _decide(self, repo: Repo, now: datetime) -> tuple[RepoState, Decision]:
        config = repo.config
        assert config is not None
        store = open_store(config)
        try:
            self._watch_online(config, store)
            backlog, oldest = store.backlog()
            state = RepoState(backlog, oldest, kick_file(self.home, repo.entry.root).exists(), repo.failures,
                              repo.failed_at)
            decision = decide(now, Window.parse(config.train_window), config.train_min_feedback, state)
            status: DaemonState = "backoff" if repo.failures and "backing off" in decision.reason else "waiting"
            detail = decision.reason + (f"; config error kept the last good config: {repo.config_error}"
                                        if repo.config_error else "")
            write_daemon(store, self._sign(DaemonStatus("idle" if decision.train else status, detail,
                                                        None if decision.next_at is None
                                                        else decision.next_at.isoformat(), utc_now())))
        finally:
            store.close()
        return state, decision

    def _watch_online(self, config: Config, store: Store) -> None:
        """Roll back a promoted adapter whose suggestions developers keep less often than its predecessor's."""
        rolled = roll_back_if_worse(store, registry_for(config))
        if rolled is not None:
            log.warning("%s: %s rolled back: %s", config.repo_root, rolled.version, rolled.line())
            if self.control is not None:
                self.control.reload(config)

    def _train(self, repo: Repo) -> bool:
        """Train `repo` if the disk and the device allow it; False (with the reason in its status) if not."""
        config = repo.config
        assert config is not None
        config.state_dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(config.state_dir).free
        if free < self.min_free_bytes:
            reason = (f"training skipped: only {free / 2**30:.1f} GiB free in {config.state_dir} "
                      f"(needs {self.min_free_bytes / 2**30:.1f})")
            self._note(config, LastTraining(utc_now(), "skipped", reason), DaemonStatus("waiting", reason))
            log.warning("%s: %s", config.repo_root, reason)
            return False
        device, yielded = self._device(config)
        if not device.idle or (device.kind == "cpu" and not config.train_on_cpu):
            reason = device.detail if not device.idle else "no GPU, and train_on_cpu is off"
            self._resume(yielded)
            self._note(config, None, DaemonStatus("waiting", reason))
            log.info("%s: waiting: %s", config.repo_root, reason)
            return False
        with self._device_lock(device.kind) as held:
            if not held:
                self._resume(yielded)
                self._note(config, None, DaemonStatus("waiting", f"another training holds the {device.kind} lock"))
                return False
            kick_file(self.home, repo.entry.root).unlink(missing_ok=True)
            self._note(config, None, DaemonStatus("training", f"on {device.kind}"))
            log.info("%s: training on %s", config.repo_root, device.kind)
            try:
                outcome = self.trainer(config, self.stop)
            finally:
                self._resume(yielded)
        self._finish(repo, outcome)
        return True

    def _finish(self, repo: Repo, outcome: ChildOutcome) -> None:
        config = repo.config
        assert config is not None
        if outcome.ok:
            repo.failures, repo.failed_at = 0, None
            log.info("%s: %s", config.repo_root, f"adapter {outcome.version} promoted" if outcome.promoted
                     else f"not promoted: {outcome.reason}")
            if outcome.promoted and self.control is not None:
                self.control.reload(config)
            self._note(config, None, DaemonStatus("idle", "last training finished"))
            return
        repo.failures += 1
        repo.failed_at = self.clock()
        log.warning("%s: training failed: %s", config.repo_root, outcome.reason)
        self._note(config, LastTraining(utc_now(), "failed", outcome.reason),
                   DaemonStatus("backoff", f"last training failed: {outcome.reason}"))

    # -- the device ------------------------------------------------------------------------------------------

    def _device(self, config: Config) -> tuple[DeviceState, list[Config]]:
        """The device state, after asking running servers to yield when they are all that holds the GPU."""
        state = self.probe(())
        if state.idle or state.kind != "cuda" or self.control is None:
            return state, []
        servers = {}
        for repo in self.repos.values():
            if repo.config is not None and (info := self.control.find_server(repo.config)) is not None:
                servers[info.pid] = repo.config
        if not servers or not set(state.busy_pids) <= set(servers):
            return state, []
        if config.serve_during_training != "yield":
            return DeviceState("cuda", False, f"{state.detail} (redline serve; serve_during_training = wait)",
                               state.busy_pids, state.free_mb), []
        yielded = [c for c in servers.values() if self.control.yield_gpu(c, f"training {config.repo_id}")]
        return self.probe(tuple(servers)), yielded

    def _resume(self, yielded: list[Config]) -> None:
        for config in yielded:
            if self.control is not None:
                self.control.resume(config)

    @contextmanager
    def _device_lock(self, kind: str) -> Iterator[bool]:
        """One training per device across repositories (and across daemons sharing a home)."""
        path = daemon_dir(self.home) / f"train-{kind}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- helpers ---------------------------------------------------------------------------------------------

    def _note(self, config: Config, last: LastTraining | None, daemon: DaemonStatus) -> None:
        try:
            store = open_store(config)
        except RedlineError as exc:
            log.warning("%s: cannot record the status: %s", config.repo_root, exc.one_line())
            return
        try:
            if last is not None:
                write_last(store, last)
            write_daemon(store, self._sign(DaemonStatus(daemon.state, daemon.detail, daemon.next_training,
                                                        utc_now())))
        except RedlineError as exc:
            log.warning("%s: cannot record the status: %s", config.repo_root, exc.one_line())
        finally:
            store.close()

    def _sign(self, status: DaemonStatus) -> DaemonStatus:
        """The daemon's status as written into the repository's queue (a worker signs it with its name)."""
        return status

    def _close(self, repo: Repo) -> None:
        if repo.watcher is not None:
            repo.watcher.stop()
            repo.watcher = None

    def close(self) -> None:
        for repo in self.repos.values():
            self._close(repo)

    def run(self, tick_s: float = 60.0) -> None:
        """Tick until `stop` is set; a kick file wakes it within a second."""
        self.refresh(strict=True)
        log.info("redline daemon started (pid %d), %d repositories", os.getpid(), len(self.repos))
        try:
            while not self.stop.is_set():
                try:
                    self.tick()
                except Exception:  # one bad tick must not end the service; the log has the traceback
                    log.exception("tick failed")
                waited = 0.0
                while waited < tick_s and not self.stop.wait(1.0):
                    waited += 1.0
                    if any((daemon_dir(self.home) / "kicks").glob("*")):
                        break
        finally:
            self.close()
            log.info("redline daemon stopped")


def _inbox_logger(root: str) -> Callable[[InboxResult], None]:
    def report(result: InboxResult) -> None:
        for path in result.imported:
            log.info("%s: imported %s", root, path.name)
        for path, reason in result.failed:
            log.warning("%s: bad bundle %s moved to failed/: %s", root, path.name, reason)

    return report


# -- process-level: one daemon per home, a rotating log --------------------------------------------------------


class AlreadyRunning(RedlineError):
    pass


@contextmanager
def single_instance(home: Path, name: str = "daemon") -> Iterator[IO[str]]:
    """Hold `daemon/<name>.pid` locked while the daemon (or the worker) runs; a second one fails naming the
    first's pid."""
    path = daemon_dir(home) / f"{name}.pid"
    path.parent.mkdir(parents=True, exist_ok=True)
    f = path.open("a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip() or "?"
            raise AlreadyRunning(f"another redline {name} is running (pid {pid})",
                                 fix=f"stop it first (`kill {pid}`, or `redline daemon uninstall` for the service)",
                                 path=path) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield f
    finally:
        f.close()


def running_pid(home: Path) -> int | None:
    """The pid of the daemon holding this home's lock, None when none runs."""
    path = daemon_dir(home) / "daemon.pid"
    try:
        f = path.open("r")
    except OSError:
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = f.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def setup_logging(home: Path, *, to_stderr: bool = True) -> Path:
    """`<home>/logs/daemon.log`, rotated at 5 MB with 3 old files kept."""
    path = Path(home) / "logs" / "daemon.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=5 * 2**20, backupCount=3, encoding="utf-8")
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handler.setFormatter(fmt)
    log.addHandler(handler)
    if to_stderr:
        err = logging.StreamHandler()
        err.setFormatter(fmt)
        log.addHandler(err)
    log.setLevel(logging.INFO)
    return path

