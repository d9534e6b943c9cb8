"""The pytest plugin's writer, run as a separate process (`python -m redline.ci_hook.sidecar ROOTPATH [BLAME_FILES]`).

Started with the session, it imports Redline, opens the queue and warms the secret scrubber on another core
while the tests run. The plugin sends each failure as one JSON line on stdin as it happens; the sidecar
attributes it and queues the failures in small batches, so when the run ends only the last batch is left. When
stdin closes it prints one JSON line,
`{"recorded": N, "records": R, "new": K, "generations": M, "unattributed": U}` (N failures became R records, K of
them new to the queue) or
`{"problem": "one line"}`, and exits. A reader thread drains stdin at once, so the plugin's writes never wait on
the queue.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any

#: a batch is written when this many failures are waiting, or when none has arrived for `IDLE_FLUSH_S`: small
#: batches leave little for the end of the run to wait on (bench/pytest_overhead.py)
BATCH = 10
IDLE_FLUSH_S = 0.2
#: the longest a batch waits for another process's write lock before it is spooled beside the queue instead
LOCK_WAIT_S = 2.0


class Writer:
    """Attributes failures and queues them in batches; remembers the first problem and then only drains."""

    def __init__(self, rootpath: Path, *, blame_files: int = 0) -> None:
        from redline.ci_hook.failures import FailureFeedback
        from redline.config import load_config
        from redline.queue import open_store

        self.rootpath = rootpath
        self.config = load_config(rootpath)
        self.store = open_store(self.config, busy_timeout_s=LOCK_WAIT_S)
        self.builder = FailureFeedback(self.store, self.config.repo_root, rootpath, blame_files=blame_files)
        self.pending: list[list[Any]] = []  # each failure's records
        self.recorded = self.records = self.new = self.unattributed = self.skipped = self.spooled = 0
        self.spool_note: str | None = None
        self.lock_holder: str | None = None
        self.generations: set[str] = set()
        if self.config.scrub_secrets:
            from redline.scrub import scrub

            scrub("warm-up: password = 'x1y2z3w4v5'")  # compiles the detectors now, during the run

    def add(self, failure: dict[str, Any]) -> None:
        """Build one failure's records (attributed frame by frame); one whose building fails (a shape nobody
        foresaw) is skipped and counted, so the run's other failures still land."""
        self.recorded += 1
        try:
            self.pending.append(list(self.builder.feedback(failure)))
        except Exception:
            self.skipped += 1

    def flush(self) -> None:
        """Queue the pending batch through the ledger. If a record cannot be stored (a lone surrogate in its
        message), the batch is written again one failure at a time and that failure is skipped and counted."""
        from redline.errors import RecordError

        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            self._write([fb for built in batch for fb in built])
        except RecordError:
            for built in batch:
                try:
                    self._write(built)
                except RecordError:
                    self.skipped += 1

    def _write(self, feedback: list[Any]) -> None:
        """One ledger call; only records the queue did not hold yet count as new. Once the queue was found
        locked, later batches go to the spool at once: the run never waits on a stuck process twice."""
        from redline import ledger

        added = ledger.record(self.store, self.config, feedback=feedback, attributed=True,
                              attributor=self.builder.attributor,
                              spool="if busy" if self.spool_note is None else "now")
        if added.spool_file is not None:
            self.spooled += len(feedback)
            self.lock_holder = self.lock_holder or added.busy
            self.spool_note = f"{self.lock_holder}; {self.spooled} records spooled to {added.spool_file.parent}, " \
                              "merged on the next open"
        else:
            self.new += added.feedback
            self.records += len(feedback)  # written (spooled ones are not: they are not "already queued")
        for fb in feedback:
            if fb.generation_id:
                self.generations.add(fb.generation_id)
            else:
                self.unattributed += 1

    def summary(self) -> dict[str, Any]:
        out = {"recorded": self.recorded, "records": self.records, "new": self.new,
               "generations": len(self.generations), "unattributed": self.unattributed}
        if self.skipped:
            out["skipped"] = self.skipped
        if self.spool_note:
            out["spooled"] = self.spool_note
        return out

    def close(self) -> None:
        self.store.close()


def record(rootpath: Path, failures: list[dict[str, Any]], *, blame_files: int = 0) -> dict[str, Any]:
    """Attribute and queue `failures` in this process (the plugin's fallback); raises on a broken queue."""
    writer = Writer(rootpath, blame_files=blame_files)
    try:
        for failure in failures:
            writer.add(failure)
        writer.flush()
    finally:
        writer.close()
    return writer.summary()


def main(argv: list[str]) -> int:
    rootpath = Path(argv[0])
    blame_files = int(argv[1]) if len(argv) > 1 else 0
    inbox: queue.Queue[bytes | None] = queue.Queue()

    def drain() -> None:
        for line in sys.stdin.buffer:
            inbox.put(line)
        inbox.put(None)

    threading.Thread(target=drain, daemon=True).start()
    writer: Writer | None = None
    problem: str | None = None
    try:
        writer = Writer(rootpath, blame_files=blame_files)
    except Exception as exc:  # reported once the plugin asks, so the run shows one warning
        problem = _one_line(exc)
    seen = 0
    while True:
        try:
            line = inbox.get(timeout=IDLE_FLUSH_S)
        except queue.Empty:
            line = b""
        if line is None:
            break
        if writer is None or problem is not None:
            seen += bool(line)
            continue
        try:
            if line:
                seen += 1
                writer.add(json.loads(line))
            if not line or len(writer.pending) >= BATCH:
                writer.flush()
        except Exception as exc:
            problem = _one_line(exc)
    if seen == 0:
        return 0
    if writer is not None and problem is None:
        try:
            writer.flush()
        except Exception as exc:
            problem = _one_line(exc)
    result = {"problem": problem} if problem is not None else writer.summary() if writer else {"problem": "?"}
    sys.stdout.write(json.dumps(result) + "\n")
    # no close: every batch is committed, and closing the last connection checkpoints the WAL, which the run
    # would wait on; the next process to open the queue does that
    return 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)  # the queue is closed and the answer sent: skip the interpreter's teardown the run waits on
