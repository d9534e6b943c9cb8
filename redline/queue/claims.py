"""Who holds a training claim, whether that process still runs, and the heartbeat that keeps a claim alive.

A claim token names the claimer, this host, this process's pid and start time, and a fresh id, so a backend can
tell a claim whose process is gone (SIGKILL, out of memory) from one still at work, and a reused pid from the
process it once named. A claim made on another machine cannot be checked that way: it lives as long as its
holder's heartbeat (`Heartbeat`, every `LEASE_S / 5`) keeps renewing its claim time, and is taken over once
`LEASE_S` passed without one (the holder lost power, its network, or was killed). Backend-agnostic: the SQLite
queue and a team's PostgreSQL apply the same rule.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Protocol

from redline.errors import ClaimLost, QueueError
from redline.records import new_id

log = logging.getLogger("redline.queue")

#: seconds a claim whose owner cannot be checked lasts past its last heartbeat: the trainer's `stale_after_s`
LEASE_S = 300.0


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not mistaken for its
    predecessor; "" where /proc is not available (then the pid alone is checked)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


#: this process, as claim tokens name it: host, pid, start time
OWNER = f"{socket.gethostname().replace(':', '-')}:{os.getpid()}:{process_start(os.getpid())}"


def claim_token(owner: str) -> str:
    """A new token for a claim `owner` makes from this process."""
    return f"{owner}:{OWNER}:{new_id()}"


def claim_lost() -> ClaimLost:
    """The one line for an `ack` whose claim another trainer took over."""
    return ClaimLost("the training claim was taken over: its lease ran out while this run was cut off from the "
                     "queue, and another run has its records", fix="nothing to do: this run promotes nothing, the "
                     "run that took the records trains them")


def owner_alive(token: str, claimed_at: str, stale: str) -> bool:
    """Whether a claim's process still runs; for a token that cannot be checked, whether it is younger than
    `stale`."""
    parts = token.rsplit(":", 4)
    if len(parts) == 5 and parts[1] == OWNER.split(":")[0] and parts[2].isdigit():
        pid, start = int(parts[2]), parts[3]
        if pid == os.getpid():
            return start == OWNER.split(":")[2]
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        now = process_start(pid)
        return not (start and now and now != start)
    return claimed_at >= stale


class _Beating(Protocol):
    def heartbeat(self, token: str) -> bool: ...


class Heartbeat:
    """Renew a claim every `every_s` seconds on a thread while a training runs (`with Heartbeat(store, token):`).

    A beat that cannot reach the queue (a team server restarting, the network gone) is retried at the next one:
    the claim survives as long as the outage is shorter than its lease. `lost` is set once the queue answers that
    the claim is no longer held, i.e. it was taken over; the run's `ack` then raises `ClaimLost` too."""

    def __init__(self, store: _Beating, token: str, every_s: float = LEASE_S / 5) -> None:
        self.store = store
        self.token = token
        self.every_s = every_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redline-claim-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                held = self.store.heartbeat(self.token)
            except QueueError as exc:
                log.warning("claim heartbeat failed, retrying in %.0f s: %s", self.every_s, exc.one_line())
                continue
            if not held:
                log.warning("the training claim was taken over (its lease ran out); this run will not promote")
                self.lost.set()
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
