"""What every queue backend offers (`Store`) and the values its writes and claims return.

Backend-agnostic: the SQLite queue (`redline.queue.store`) and a team's PostgreSQL (`redline.queue.postgres`)
implement it with the same meaning. Claims follow one rule in both (`redline.queue.claims`): a claim is held while
its process runs on the claimer's host, or while its holder's `heartbeat` renews it; `ack` raises `ClaimLost`
once it was taken over. A write is
two steps so that a record is checked once whatever happens to it next: `prepare` scrubs and validates a batch
(`redline.queue.scrubbing`), then `write` stores it in one transaction or `spool` sets it aside for the next open
(`redline.queue.spool`). `add` is both steps for callers that have no use for the spool.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from redline.queue.scrubbing import Batch
from redline.records import Feedback, Generation, Span


@dataclass(frozen=True, slots=True)
class AddResult:
    """Records a write added (duplicates are skipped, not counted), or, when the queue was busy, how many
    records went to the spool instead (`spool_file`), and what held the queue (`busy`)."""

    generations: int = 0
    feedback: int = 0
    spans: int = 0
    spooled: int = 0
    spool_file: Path | None = None
    busy: str | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    token: str
    generation_ids: list[str]


class Store(Protocol):
    """What harvesters, the CLI and the trainer may ask of a queue."""

    def prepare(
        self,
        generations: Iterable[Generation] = (),
        feedback: Iterable[Feedback] = (),
        spans: Iterable[Span] = (),
    ) -> Batch: ...

    def write(self, batch: Batch) -> AddResult: ...

    def spool(self, batch: Batch) -> Path: ...

    def add(
        self,
        generations: Iterable[Generation] = (),
        feedback: Iterable[Feedback] = (),
        spans: Iterable[Span] = (),
    ) -> AddResult: ...

    def get_generation(self, generation_id: str) -> Generation | None: ...

    def find_generations(self, prefix: str) -> list[Generation]: ...

    def generations_with_completion(self, text: str, *, limit: int = 20) -> list[Generation]: ...

    def recent_completions(self, since: str, *, origins: Iterable[str], limit: int
                           ) -> list[tuple[str, str, str, str | None]]: ...

    def acceptance(self, origins: Iterable[str]) -> list[dict[str, Any]]: ...

    def generations(
        self, *, split: str | None = None, with_feedback: bool | None = None, limit: int | None = None
    ) -> Iterator[Generation]: ...

    def feedback_for(self, generation_id: str) -> list[Feedback]: ...

    def feedback(self, *, unattributed: bool = False, limit: int | None = None) -> Iterator[Feedback]: ...

    def hold_out(self, generation_ids: Iterable[str]) -> int: ...

    def attribute(self, feedback_id: str, generation_id: str) -> bool: ...

    def spans_for_path(self, path: str) -> list[Span]: ...

    def span_paths(self) -> list[str]: ...

    def awaiting(self, prefix: str = "") -> dict[str, int]: ...

    def claim(self, owner: str, *, limit: int = 10_000, stale_after_s: float = 3600) -> Claim: ...

    def heartbeat(self, token: str) -> bool: ...

    def backlog(self) -> tuple[int, str | None]: ...

    def ack(self, token: str) -> int: ...

    def release(self, token: str) -> int: ...

    def release_owner(self, owner: str) -> int: ...

    def prune(self, older_than_days: float) -> int: ...

    def counts(self) -> dict[str, Any]: ...

    def get_meta(self, key: str) -> Any: ...

    def set_meta(self, key: str, value: Any) -> None: ...

    def close(self) -> None: ...
