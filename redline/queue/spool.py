"""The spool: batches a writer could not queue because another process held the queue's write lock (or a team
queue's server could not be reached), kept in files beside the queue until the next open merges them.

The ledger (`redline.ledger.record`) sets a batch aside here when the queue stays locked past the writer's busy
timeout, instead of failing. Batches arrive prepared (`redline.queue.scrubbing`), so no secret reaches the disk.
Backend-agnostic: any store that can be locked or unreachable spools the same files and merges them on open (a
team queue also as soon as a write reaches its server again). A batch spooled while the team queue could not be
reached was built without the queue's spans, so its file is marked (`*.attribute.jsonl`) and its unattributed
feedback is attributed when it is merged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redline.errors import QueueBusy, RecordError
from redline.private import private_dir, private_file
from redline.queue.protocol import Store
from redline.queue.scrubbing import Batch
from redline.records import Feedback, Generation, Span, new_id

#: the folder beside the queue that holds spooled batches, one `*.jsonl` file each
SPOOL_DIR = "spool"
#: the name ending of a batch whose feedback is to be attributed when it is merged
ATTRIBUTE = ".attribute.jsonl"


def spool_dir(queue_path: Path) -> Path:
    return queue_path.parent / SPOOL_DIR


def write(folder: Path, batch: Batch, *, attribute: bool = False) -> Path:
    """Write `batch` to a new file in `folder` (0600), whole or not at all; returns the file. `attribute` marks
    it for attribution on merge (its feedback was built while the queue's spans could not be read).

    One record a line, in the exchange format's shape (`{"generation": …, "feedback": […]}`), spans as
    `{"span": …}`."""
    folder = private_dir(folder)
    target = folder / f"{os.getpid()}-{new_id()}{ATTRIBUTE if attribute else '.jsonl'}"
    part = target.with_name(target.name + ".part")
    lines: list[dict[str, Any]] = [{"generation": g.to_dict(), "feedback": []} for g in batch.generations]
    lines += [{"generation": None, "feedback": [f.to_dict()]} for f in batch.feedback]
    lines += [{"span": s.to_dict()} for s in batch.spans]
    with open(part, "w", encoding="utf-8", opener=private_file) as out:
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    part.replace(target)
    return target


def read(path: Path) -> tuple[list[Generation], list[Feedback], list[Span]]:
    """The records of one spool file, each validated as read; raises on a file that does not parse."""
    generations: list[Generation] = []
    feedback: list[Feedback] = []
    spans: list[Span] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        if obj.get("generation") is not None:
            generations.append(Generation.from_dict(obj["generation"]))
        feedback.extend(Feedback.from_dict(f) for f in obj.get("feedback", []))
        if obj.get("span") is not None:
            spans.append(Span.from_dict(obj["span"]))
    return generations, feedback, spans


def merge(store: Store, folder: Path,
          attribute: Callable[[list[Feedback]], list[Feedback]] | None = None) -> int:
    """Queue each spooled batch in one transaction and delete its file; returns the number of files merged.
    A file marked for attribution has its feedback passed through `attribute` first (when given).

    Files that do not parse are left for `redline doctor`; a queue still locked leaves the rest for later."""
    if not folder.is_dir():
        return 0
    merged = 0
    for path in sorted(folder.glob("*.jsonl")):
        try:
            generations, feedback, spans = read(path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecordError):
            continue
        try:
            if attribute is not None and path.name.endswith(ATTRIBUTE):
                # the batch's own spans first, so its feedback can land on the code it was written with (both
                # writes are idempotent: a file cut off between them is merged again whole)
                store.add(generations, (), spans)
                store.add(feedback=attribute(feedback))
            else:
                store.add(generations, feedback, spans)
        except QueueBusy:
            return merged
        path.unlink(missing_ok=True)
        merged += 1
    return merged
