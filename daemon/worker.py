"""`redline worker`: the daemon in team mode, on a GPU machine of a team that shares one queue (docs/team.md).

A worker looks after the repositories checked out on its machine (registered with `redline init`, or named with
`--repo`) whose config sets `queue_url` and `adapter_store`. It decides when each one trains as the daemon does
(`train_window`, `train_min_feedback`, kicks), and trains one when its GPU is idle — but only while it holds that
repository's job in the team queue (`PostgresStore.hold_job`), so two workers never train one repository at
once while different repositories train on different machines side by side. A team scales by adding workers:
each job is one single-GPU run for one repository. The run itself (a child process, as for the daemon) claims
the records with a heartbeat, publishes the adapter into the store (`redline.adapter_store`) and its gate
report with it, and writes the training status into the team queue, where every developer's `redline status`
and `redline serve` read it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from redline.config import load_config
from redline.daemon import registry
from redline.daemon.main import Daemon, Repo, log
from redline.errors import ConfigError, RedlineError
from redline.queue import open_store
from redline.status import DaemonStatus


def worker_name() -> str:
    """How this worker names itself to the team (`host:pid`), in the job's session and in each status."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Worker(Daemon):
    """A `Daemon` over team repositories that takes each repository's job before it trains it."""

    #: checkouts named on the command line, besides the registered ones
    roots: list[Path] = field(default_factory=list)
    watch: bool = False  # CI runners write to the team queue directly: there is no inbox to watch
    name: str = field(default_factory=worker_name)
    _skipped: set[str] = field(default_factory=set)

    def entries(self) -> list[registry.RegisteredRepo]:
        """Registered repositories and `--repo` checkouts, team ones only (each skipped once, with the reason)."""
        entries = {e.root: e for e in registry.registered(self.home)}
        for root in self.roots:
            resolved = str(Path(root).resolve())
            if resolved not in entries:
                try:
                    repo_id = load_config(resolved).repo_id
                except ConfigError:
                    repo_id = resolved
                entries[resolved] = registry.RegisteredRepo(resolved, repo_id, "")
        team = []
        for entry in entries.values():
            why = _not_team(entry.root)
            if why is None:
                team.append(entry)
            elif entry.root not in self._skipped:
                self._skipped.add(entry.root)
                log.warning("%s: not trained by this worker: %s", entry.root, why)
        return team

    def _train(self, repo: Repo) -> bool:
        config = repo.config
        assert config is not None
        store = open_store(config)
        try:
            hold = getattr(store, "hold_job", None)
            if hold is None:
                return False
            with hold(self.name) as held:
                if not held:
                    holder = store.job_holder() if hasattr(store, "job_holder") else None  # type: ignore[attr-defined]
                    log.info("%s: another worker trains it (%s)", config.repo_root, holder or "its job is held")
                    return False
                return super()._train(repo)
        except RedlineError as exc:
            log.warning("%s: %s", config.repo_root, exc.one_line())
            return False
        finally:
            store.close()

    def _sign(self, status: DaemonStatus) -> DaemonStatus:
        """Signed by this worker: in a team queue every worker writes the same status record."""
        return dataclasses.replace(status, detail=f"worker {self.name}: {status.detail or ''}".strip())


def _not_team(root: str) -> str | None:
    """Why the repository at `root` is not one a worker trains, or None when it is."""
    try:
        config = load_config(root)
    except ConfigError as exc:
        return exc.one_line()
    if not config.queue_url:
        return "no `queue_url` (its queue is the local SQLite file: `redline daemon` trains it)"
    if config.adapter_store is None:
        return "no `adapter_store`: its adapters would stay on this machine, where no developer's server reads them"
    return None


def setup_logging(home: Path) -> Path:
    """The daemon's rotating log under `<home>/logs/worker.log`, the queue's warnings (a server out of reach) in
    it too."""
    import logging.handlers

    path = Path(home) / "logs" / "worker.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handlers: list[logging.Handler] = [
        logging.handlers.RotatingFileHandler(path, maxBytes=5 * 2**20, backupCount=3, encoding="utf-8"),
        logging.StreamHandler()]
    for handler in handlers:
        handler.setFormatter(fmt)
    for name in ("redline.daemon", "redline.queue"):
        logger = logging.getLogger(name)
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return path
