"""Queue throughput: Redline's batched and single-record writes against bare `sqlite3.executemany`, one run.

The baseline is the least a hand-written queue must do: serialise each record (with the same JSON encoder Redline
uses, so the ratio isolates the store's own work) and `executemany` the rows into the same schema (same indexes,
WAL settings and batch transactions), with no idempotency or scrubbing. Redline's figures are `SQLiteStore.add`,
with and without secret scrubbing.

    python bench/queue_bench.py [--records 20000] [--batch 500]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from redline.queue.migrations import migrate
from redline.queue.store import SQLiteStore
from redline.records import Feedback, Generation, Message, ModelRef, Prompt, to_json
from redline.scrub import scrub


def make_records(n: int) -> list[tuple[Generation, Feedback]]:
    out = []
    for i in range(n):
        g = Generation(
            prompt_format="chat",
            prompt=Prompt(messages=[Message("system", "You write Python for this repo."),
                                    Message("user", f"Write a function that parses config section {i}.")]),
            completion=(f"def parse_section_{i}(text):\n"
                        "    return dict(line.split('=', 1) for line in text.splitlines())\n"),
            model=ModelRef("tiny-llama", "r1"),
            repo_id="github.com/org/repo",
        )
        f = Feedback(kind="test_failure", source="pytest", generation_id=g.id,
                     message=f"ValueError: not enough values to unpack (expected 2, got 1) in case {i}",
                     detail="Traceback (most recent call last):\n  File \"cfg.py\", line 2, in parse\n")
        out.append((g, f))
    return out


def bare_sqlite(path: Path, records: list[tuple[Generation, Feedback]], batch: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    migrate(conn)
    start = time.perf_counter()
    for i in range(0, len(records), batch):
        chunk = [((g.id, g.repo_id, g.created_at, g.split, None, to_json(g)),
                  (f.id, f.fingerprint, f.generation_id, f.kind, f.source, f.created_at, f.path,
                   to_json(f)))
                 for g, f in records[i:i + batch]]
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?)", [r[0] for r in chunk])
        conn.executemany("INSERT INTO feedback (id, fingerprint, generation_id, kind, source, created_at, path, body)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [r[1] for r in chunk])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def redline_batched(path: Path, records: list[tuple[Generation, Feedback]], batch: int, scrubbed: bool) -> float:
    store = SQLiteStore(path, scrubber=scrub if scrubbed else None)
    start = time.perf_counter()
    for i in range(0, len(records), batch):
        chunk = records[i:i + batch]
        store.add([g for g, _ in chunk], [f for _, f in chunk])
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def redline_single(path: Path, records: list[tuple[Generation, Feedback]]) -> float:
    store = SQLiteStore(path)
    start = time.perf_counter()
    for g, f in records:
        store.add([g], [f])
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--single", type=int, default=2_000, help="records for the one-per-transaction case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        n = args.records
        base = bare_sqlite(d / "bare.db", make_records(n), args.batch)
        batched = redline_batched(d / "batched.db", make_records(n), args.batch, scrubbed=False)
        scrubbed = redline_batched(d / "scrubbed.db", make_records(n), args.batch, scrubbed=True)
        base_single = bare_sqlite(d / "bare1.db", make_records(args.single), 1)
        single = redline_single(d / "single.db", make_records(args.single))
    rows = [
        ("bare sqlite3 executemany (baseline)", n, base, base),
        ("redline batched", n, batched, base),
        ("redline batched + secret scrubbing", n, scrubbed, base),
        ("bare sqlite3, one record per transaction", args.single, base_single, base_single),
        ("redline, one record per add()", args.single, single, base_single),
    ]
    print(f"{'path':44} {'records':>8} {'records/s':>11} {'time vs baseline':>17}")
    for name, count, elapsed, ref in rows:
        print(f"{name:44} {count:8d} {count / elapsed:11.0f} {elapsed / ref:16.2f}x")
    print(f"\nbatched ratio: {batched / base:.2f}x of bare SQLite (goal ≤ 2.00x)")


if __name__ == "__main__":
    main()
