"""Exactly-once claims across processes and machines, on a real PostgreSQL server and real processes.

"Another machine" is a trainer process whose host name differs (`bench/team_queue.py holder`): the host name is
the only thing that tells machines apart in a claim, so such a process is, to every other, a trainer whose pid
cannot be checked and whose claim lives by its heartbeat alone.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from redline.config import load_config
from redline.queue import open_store
from tests.core.helpers import make_feedback, make_generation
from tests.team.conftest import PYTHON, python_env

LEASE = 2.0


def _seed(root: Path, n: int) -> list[str]:
    store = open_store(load_config(root))
    gens = [make_generation(i) for i in range(n)]
    store.add(gens, [make_feedback(g.id, i) for i, g in enumerate(gens)])
    store.close()
    return sorted(g.id for g in gens)


def _start(root: Path, role: str, *args: str):  # type: ignore[no-untyped-def]
    import subprocess

    return subprocess.Popen([PYTHON, "-m", "bench.team_queue", role, str(root), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=python_env(), cwd=Path(__file__).parents[2])


def test_four_trainer_processes_claim_every_record_exactly_once(team_repo: Path) -> None:
    ids = _seed(team_repo, 400)
    trainers = [_start(team_repo, "trainer", f"trainer-{t}", "10") for t in range(4)]
    for p in trainers:
        assert p.stdout.readline().strip() == "ready"
    for p in trainers:
        p.stdin.write("go\n")
        p.stdin.flush()
    claimed, rows = [], 0
    for p in trainers:
        out, _ = p.communicate(timeout=300)
        for line in out.splitlines():
            if line.startswith("{"):
                got = json.loads(line)
                claimed += got["ids"]
                rows += got["rows"]
    assert sorted(claimed) == ids  # each generation once, none left out
    assert rows == 400
    store = open_store(load_config(team_repo))
    assert store.counts()["states"] == {"trained": 400}
    store.close()


def _holder(root: Path, host: str):  # type: ignore[no-untyped-def]
    p = _start(root, "holder", host, str(LEASE))
    return p, set(json.loads(p.stdout.readline())["ids"])


def test_a_trainer_on_another_machine_keeps_its_claim_by_heartbeat_and_loses_it_when_killed(team_repo: Path) -> None:
    ids = set(_seed(team_repo, 30))
    holder, held = _holder(team_repo, "gpu-box-2")
    assert held == ids
    store = open_store(load_config(team_repo))
    time.sleep(2.5 * LEASE)  # well past the lease: only its heartbeat keeps the claim
    assert store.claim("taker", stale_after_s=LEASE).generation_ids == []
    assert store.backlog()[0] == 0
    os.kill(holder.pid, signal.SIGKILL)  # power gone: no release, no more heartbeats
    holder.wait()
    killed = time.monotonic()
    assert store.claim("taker", stale_after_s=LEASE).generation_ids == []  # its pid means nothing here
    while not (got := store.claim("taker", stale_after_s=LEASE)).generation_ids:
        assert time.monotonic() - killed < 4 * LEASE, "the claim never came back"
        time.sleep(0.1)
    assert set(got.generation_ids) == ids  # all of them, back once the lease passed since the last beat
    assert time.monotonic() - killed >= LEASE / 2
    store.close()


def test_a_trainer_killed_on_this_machine_gives_its_claim_back_at_once(team_repo: Path) -> None:
    ids = set(_seed(team_repo, 10))
    holder, held = _holder(team_repo, "")
    store = open_store(load_config(team_repo))
    assert store.claim("taker").generation_ids == []  # it runs: its claim stands, lease or not
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert set(store.claim("taker").generation_ids) == ids == held
    store.close()


def test_a_trainer_cut_off_past_its_lease_finds_its_claim_lost_and_cannot_ack(team_repo: Path) -> None:
    _seed(team_repo, 12)
    holder, held = _holder(team_repo, "gpu-box-3")
    os.kill(holder.pid, signal.SIGSTOP)  # frozen, as behind a dead network: no heartbeat reaches the queue
    try:
        time.sleep(LEASE + 1.5)
        store = open_store(load_config(team_repo))
        taken = store.claim("taker", stale_after_s=LEASE)
        assert set(taken.generation_ids) == held
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    holder.stdin.write("ack\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "lost"  # it must not promote what it trained
    assert store.ack(taken.token) == 12
    assert store.counts()["states"] == {"trained": 12}
    holder.kill()
    holder.wait()
    store.close()
