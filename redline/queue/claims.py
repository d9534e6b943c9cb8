"""Who holds a training claim, and whether that process still runs.

A claim token names the claimer, this host, this process's pid and start time, and a fresh id, so a backend can
tell a claim whose process is gone (SIGKILL, out of memory) from one still at work, and a reused pid from the
process it once named. Backend-agnostic: a team backend checks its own host's claims the same way.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from redline.records import new_id


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
