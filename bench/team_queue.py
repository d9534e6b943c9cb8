"""A team's queue under load, on PostgreSQL and on SQLite in one run (docs/team.md, Performance).

For each backend, with secret scrubbing on and every write going through the one write path (`ledger.record`,
batches of `--batch` records as the pytest plugin's writer batches today):

1. throughput: `--writers` concurrent writer processes write for `--seconds`; records/s sustained, and the
   PostgreSQL server's own CPU per record (what one core of a team's database machine sustains);
2. kills: the same writers while random ones are SIGKILLed (and replaced) every `--seconds / --kills`; then every
   acknowledged batch must be there whole, no batch in part, no record twice, and the store's integrity checked
   (SQLite `PRAGMA integrity_check`; PostgreSQL `amcheck` on every index, heap included);
3. claims: `--trainers` concurrent trainer processes claim and ack one queue in small claims until it is empty:
   every generation claimed by exactly one, every feedback record acked exactly once;
4. a trainer killed mid-claim: a trainer on another machine (its hostname is all that tells machines apart in a
   claim) claims with a `--lease` s lease and a heartbeat, and is SIGKILLed: its records stay claimed while it
   heartbeats, and return once the lease has passed since its last beat; one on this machine returns at once.

Without `--url` it starts its own PostgreSQL server in a temporary directory (`tests/team/pgserver.py`).

    python bench/team_queue.py [--writers 64] [--seconds 20] [--kills 16] [--trainers 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


# -- the processes ---------------------------------------------------------------------------------------------


def make_batch(key: str, size: int) -> tuple[list[Any], list[Any]]:
    """`size` records: generations and their test-failure feedback, realistic text, each keyed in `meta.bench`."""
    from redline.records import Feedback, Generation, Message, ModelRef, Prompt

    gens, fbs = [], []
    for i in range(size // 2):
        tag = f"{key}:{i}"
        g = Generation(prompt_format="chat", completion=f"def parse_section(text):  # {tag}\n"
                       "    return dict(line.split('=', 1) for line in text.splitlines())\n",
                       prompt=Prompt(messages=[Message("system", "You write Python for this repository."),
                                               Message("user", f"Parse a config section ({tag}).")]),
                       model=ModelRef("coder-1.5b", "r1"), repo_id="", meta={"bench": tag})
        gens.append(g)
        fbs.append(Feedback(kind="test_failure", source="pytest", generation_id=g.id, rule=f"tests/t.py::{tag}",
                            message=f"ValueError: not enough values to unpack (expected 2, got 1) [{tag}]",
                            detail="Traceback (most recent call last):\n  File \"cfg.py\", line 2, in parse\n",
                            meta={"bench": tag}))
    return gens, fbs


def writer(root: str, name: str, batch: int, seconds: float) -> None:
    """Write batches until `seconds` pass (0: until killed), printing `ack KEY N` once each write returned."""
    from redline import ledger
    from redline.config import load_config
    from redline.queue import open_store

    config = load_config(root)
    store = open_store(config)
    from redline.scrub import scrub

    scrub("warm-up: password = 'x1y2z3w4v5'")
    print("ready", flush=True)
    sys.stdin.readline()  # go
    deadline = time.monotonic() + seconds if seconds else float("inf")
    seq = 0
    while time.monotonic() < deadline:
        key = f"{name}:{seq}"
        gens, fbs = make_batch(key, batch)
        added = ledger.record(store, config, generations=gens, feedback=fbs, attributed=True)
        print(f"ack {key} {len(gens) + len(fbs)} {'spooled' if added.spooled else 'queued'}", flush=True)
        seq += 1
    print("done", flush=True)
    os._exit(0)


def trainer(root: str, owner: str, limit: int) -> None:
    """Claim and ack in claims of `limit` generations until three claims in a row find nothing."""
    from redline.config import load_config
    from redline.queue import open_store

    store = open_store(load_config(root))
    print("ready", flush=True)
    sys.stdin.readline()
    empty = 0
    while empty < 3:
        claim = store.claim(owner, limit=limit)
        if not claim.generation_ids:
            empty += 1
            time.sleep(0.05)
            continue
        empty = 0
        rows = store.ack(claim.token)
        print(json.dumps({"ids": claim.generation_ids, "rows": rows}), flush=True)
    print("done", flush=True)
    os._exit(0)


def holder(root: str, host: str, lease: float) -> None:
    """Claim everything with a `lease` and a heartbeat every `lease / 4`, as a trainer on machine `host`, and hold it
    until told `ack` on stdin (then prints `acked N`, or `lost` when the claim was taken over). The host name is
    set before Redline is imported: it is what names a machine in a claim."""
    import socket

    if host:
        socket.gethostname = lambda: host  # type: ignore[assignment]
    from redline.config import load_config
    from redline.errors import ClaimLost
    from redline.queue import open_store
    from redline.queue.claims import Heartbeat

    store = open_store(load_config(root))
    claim = store.claim("bench-holder", stale_after_s=lease)
    with Heartbeat(store, claim.token, every_s=lease / 4):
        print(json.dumps({"ids": claim.generation_ids}), flush=True)
        for line in sys.stdin:
            if line.strip() == "ack":
                try:
                    print(f"acked {store.ack(claim.token)}", flush=True)
                except ClaimLost:
                    print("lost", flush=True)
    os._exit(0)


# -- the parent ------------------------------------------------------------------------------------------------


@dataclass
class Proc:
    """A child process whose stdout lines are read on a thread, each with the time it arrived."""

    argv: list[str]
    env: dict[str, str]
    lines: list[tuple[float, str]] = field(default_factory=list)
    proc: subprocess.Popen[str] = field(init=False)

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=self.env, cwd=ROOT)
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip() == "ready":
                self.ready.set()
            self.lines.append((time.monotonic(), line.strip()))
        self.ready.set()

    def go(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.thread.join(5)


def repo(base: Path, name: str, url: str | None) -> Path:
    root = base / name
    root.mkdir(parents=True)
    setting = f'queue_url = "{url}"\n' if url else ""
    (root / "redline.toml").write_text(f'repo_id = "bench/{name}"\n{setting}', encoding="utf-8")
    return root


def child_env(home: Path) -> dict[str, str]:
    return dict(os.environ, REDLINE_HOME=str(home), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


def start_writers(root: Path, env: dict[str, str], n: int, batch: int, seconds: float, prefix: str) -> list[Proc]:
    procs = [Proc([PYTHON, "-m", "bench.team_queue", "writer", str(root), f"{prefix}{w}", str(batch),
                   str(seconds)], env) for w in range(n)]
    for p in procs:
        p.ready.wait(600)
    return procs


def acks(procs: list[Proc]) -> list[tuple[float, str, int, str]]:
    out = []
    for p in procs:
        for at, line in list(p.lines):
            if line.startswith("ack "):
                _, key, n, how = line.split()
                out.append((at, key, int(n), how))
    return out


def _ticks(pid: int, children: bool) -> int:
    """CPU clock ticks of a process (and of its children it has waited for, when `children`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15 if children else 13])


def server_cpu_s(postmaster: int | None) -> float:
    """CPU seconds the PostgreSQL server has used: the postmaster, the backends it has reaped, and the ones that
    still run (WAL writer, checkpointer, …)."""
    if postmaster is None:
        return 0.0
    ticks = _ticks(postmaster, True)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    ticks += _ticks(int(proc.name), False)
            except (OSError, ValueError, IndexError):
                continue
    return ticks / os.sysconf("SC_CLK_TCK")


def throughput(root: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    procs = start_writers(root, env, args.writers, args.batch, args.seconds, "w")
    postmaster = args.postmaster if "queue_url" in (root / "redline.toml").read_text() else None
    server_before = server_cpu_s(postmaster)
    t0 = time.monotonic()
    for p in procs:
        p.go()
    for p in procs:
        p.proc.wait(args.seconds + 600)
    server = server_cpu_s(postmaster) - server_before
    got = acks(procs)
    window = [n for at, _, n, _ in got if at <= t0 + args.seconds]
    for p in procs:
        p.kill()
    records = sum(n for *_, n, _ in got)
    # the server's CPU per record: what one core of a team's own database machine sustains, whatever the
    # writers (each on its own machine in a team, all on this one here) spend scrubbing
    return {"records": records, "records_per_s": round(sum(window) / args.seconds),
            "spooled_batches": sum(how == "spooled" for *_, how in got),
            "server_cpu_ms_per_record": round(1000 * server / records, 3) if postmaster else None}


def kills(root: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    procs = start_writers(root, env, args.writers, args.batch, 0, "k0-")
    for p in procs:
        p.go()
    done: list[Proc] = []
    killed = 0
    rng = random.Random(7)
    every = args.seconds / max(1, args.kills)
    deadline = time.monotonic() + args.seconds
    incarnation = 1
    while time.monotonic() < deadline:
        time.sleep(every * rng.uniform(0.5, 1.5))
        victim = rng.randrange(len(procs))
        procs[victim].kill()
        killed += 1
        done.append(procs[victim])
        replacement = Proc([PYTHON, "-m", "bench.team_queue", "writer", str(root), f"k{incarnation}-{victim}",
                            str(args.batch), "0"], env)
        incarnation += 1
        replacement.ready.wait(600)
        replacement.go()
        procs[victim] = replacement
    for p in procs:  # the end of the run is a SIGKILL too
        p.kill()
    got = acks(done + procs)
    return {"killed": killed + len(procs), "acknowledged_batches": len(got),
            "acknowledged_records": sum(n for _, _, n, _ in got), **verify(root, env, {k for _, k, _, _ in got},
                                                                          args.batch)}


def verify(root: Path, env: dict[str, str], acked: set[str], batch: int) -> dict[str, Any]:
    """Every acknowledged batch whole, none in part, no record twice; the store's own integrity check."""
    from redline.config import load_config
    from redline.queue import open_store

    os.environ["REDLINE_HOME"] = env["REDLINE_HOME"]
    config = load_config(root)
    open_store(config).close()  # merges anything a writer spooled
    rows = _keys(config)
    per_batch: dict[str, int] = {}
    seen: dict[str, int] = {}
    for kind, tag in rows:
        seen[f"{kind}:{tag}"] = seen.get(f"{kind}:{tag}", 0) + 1
        key = tag.rsplit(":", 1)[0]
        per_batch[key] = per_batch.get(key, 0) + 1
    lost = [k for k in acked if per_batch.get(k, 0) != batch]
    partial = [k for k, n in per_batch.items() if n != batch]
    return {"lost_acknowledged_records": sum(batch - per_batch.get(k, 0) for k in lost),
            "partial_batches": len(partial), "duplicated_records": sum(n - 1 for n in seen.values() if n > 1),
            "stored_records": len(rows), "integrity": _integrity(config)}


def _keys(config: Any) -> list[tuple[str, str]]:
    if config.queue_url:
        import psycopg

        from redline.queue.postgres import schema_for

        s = schema_for(config.repo_id)
        with psycopg.connect(config.queue_url, autocommit=True) as conn:
            rows = conn.execute(f"SELECT 'g', (body::json) -> 'meta' ->> 'bench' FROM {s}.generations UNION ALL"
                                f" SELECT 'f', (body::json) -> 'meta' ->> 'bench' FROM {s}.feedback").fetchall()
    else:
        import sqlite3

        conn = sqlite3.connect(config.db_path)
        rows = conn.execute("SELECT 'g', json_extract(body, '$.meta.bench') FROM generations UNION ALL"
                            " SELECT 'f', json_extract(body, '$.meta.bench') FROM feedback").fetchall()
        conn.close()
    return [(k, t) for k, t in rows]


def _integrity(config: Any) -> str:
    if config.queue_url:
        import psycopg

        from redline.queue.postgres import schema_for

        with psycopg.connect(config.queue_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            indexes = [r[0] for r in conn.execute(
                "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
                (schema_for(config.repo_id),))]
            for index in indexes:
                conn.execute("SELECT bt_index_check(%s::regclass, true)", (index,))
        return f"ok (amcheck: {len(indexes)} indexes with their heaps)"
    import sqlite3

    conn = sqlite3.connect(config.db_path)
    result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    return str(result)


def seed(root: Path, env: dict[str, str], n: int) -> int:
    from redline.config import load_config
    from redline.queue import open_store

    os.environ["REDLINE_HOME"] = env["REDLINE_HOME"]
    store = open_store(load_config(root))
    for start in range(0, n, 250):
        gens, fbs = make_batch(f"seed:{start}", 2 * min(250, n - start))
        store.add(gens, fbs)
    store.close()
    return n


def claims(root: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    n = seed(root, env, args.claim_records)
    procs = [Proc([PYTHON, "-m", "bench.team_queue", "trainer", str(root), f"trainer-{t}", "25"], env)
             for t in range(args.trainers)]
    for p in procs:
        p.ready.wait(600)
    t0 = time.monotonic()
    for p in procs:
        p.go()
    for p in procs:
        p.proc.wait(600)
    seconds = time.monotonic() - t0
    per: list[list[str]] = []
    rows = 0
    for p in procs:
        mine = []
        for _, line in p.lines:
            if line.startswith("{"):
                got = json.loads(line)
                mine += got["ids"]
                rows += got["rows"]
        per.append(mine)
        p.kill()
    every = [i for mine in per for i in mine]
    return {"generations": n, "claimed": len(every), "claimed_twice": len(every) - len(set(every)),
            "never_claimed": n - len(set(every)), "feedback_acked": rows, "per_trainer": [len(m) for m in per],
            "seconds": round(seconds, 2)}


def lease(root: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    from redline.config import load_config
    from redline.queue import open_store

    out: dict[str, Any] = {"lease_s": args.lease}
    store = open_store(load_config(root))
    for case, host in (("other_machine", "bench-other-machine"), ("this_machine", "")):
        seed(root, env, 100)
        p = Proc([PYTHON, "-m", "bench.team_queue", "holder", str(root), host, str(args.lease)], env)
        while not any(line.startswith("{") for _, line in p.lines):
            if p.proc.poll() is not None:
                raise SystemExit(f"holder failed: {p.lines}")
            time.sleep(0.05)
        held = set(json.loads(next(line for _, line in p.lines if line.startswith("{")))["ids"])
        time.sleep(2 * args.lease)  # its heartbeat keeps the claim past its lease
        kept = not store.claim("bench-taker", stale_after_s=args.lease).generation_ids
        p.kill()
        killed = time.monotonic()
        while True:
            got = store.claim("bench-taker", stale_after_s=args.lease)
            if got.generation_ids or time.monotonic() - killed > 10 * args.lease:
                break
            time.sleep(0.1)
        back = time.monotonic() - killed
        store.ack(got.token)
        out[case] = {"held": len(held), "kept_while_beating": kept, "returned": len(set(got.generation_ids)),
                     "same_records": set(got.generation_ids) == held, "returned_after_s": round(back, 2)}
    store.close()
    return out


def run_backend(name: str, url: str | None, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    home = base / name / "home"
    env = child_env(home)
    result = {}
    for phase, fn in (("throughput", throughput), ("kills", kills), ("claims", claims), ("lease", lease)):
        if phase not in args.phases.split(","):
            continue
        print(f"{name}: {phase} …", file=sys.stderr, flush=True)
        result[phase] = fn(repo(base / name, phase, url), env, args)
        print(f"{name}: {phase}: {json.dumps(result[phase])}", file=sys.stderr, flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a PostgreSQL URL to use (default: start a server in a temporary directory)")
    ap.add_argument("--writers", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--batch", type=int, default=10, help="records per write (the pytest plugin's writer: 10)")
    ap.add_argument("--kills", type=int, default=16)
    ap.add_argument("--trainers", type=int, default=4)
    ap.add_argument("--claim-records", type=int, default=2000, help="generations (each with one feedback) to claim")
    ap.add_argument("--lease", type=float, default=3.0)
    ap.add_argument("--backends", default="postgres,sqlite")
    ap.add_argument("--phases", default="throughput,kills,claims,lease")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    server = None
    if args.url is None and "postgres" in args.backends:
        sys.path.insert(0, str(ROOT))
        from tests.team.pgserver import start_server

        server = start_server(settings={"max_connections": "300"})
        args.url = server.url()
    args.postmaster = int((server.data / "postmaster.pid").read_text().split()[0]) if server else None
    results: dict[str, Any] = {"cpus": os.cpu_count(), "writers": args.writers, "seconds": args.seconds,
                               "batch": args.batch, "scrubbing": True}
    try:
        with tempfile.TemporaryDirectory(prefix="redline-team-bench-") as tmp:
            for backend in args.backends.split(","):
                results[backend] = run_backend(backend, args.url if backend == "postgres" else None, args, Path(tmp))
    finally:
        if server is not None:
            server.close()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("writer", "trainer", "holder"):
        role, rest = sys.argv[1], sys.argv[2:]
        if role == "writer":
            writer(rest[0], rest[1], int(rest[2]), float(rest[3]))
        elif role == "trainer":
            trainer(rest[0], rest[1], int(rest[2]))
        else:
            holder(rest[0], rest[1], float(rest[2]))
    else:
        main()
