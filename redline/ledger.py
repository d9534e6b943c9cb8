"""The generation ledger: the one way harvesters and model front-ends write to the queue.

Writing through here (not `store.add` directly) guarantees every record gets its repo id and its fixed held-out
split, every insertion becomes a trackable span, and every piece of feedback with a location is attributed to
the generation that wrote that code before it is queued.
"""

from __future__ import annotations

from collections.abc import Iterable

from redline.attribution import Attributor
from redline.config import Config
from redline.queue.store import AddResult, Store
from redline.records import Feedback, Generation, Range, Span, sha256_text


def record_generation(store: Store, config: Config, generation: Generation) -> Generation:
    """Queue a generation (and a span for where it was inserted, when known); returns it with id and split set."""
    store.add(generations=[generation], spans=prepare_generation(config, generation))
    return generation


def prepare_generation(config: Config, generation: Generation) -> list[Span]:
    """Fill in repo id, split and content hash; return the span to track for its insertion, if any."""
    if not generation.repo_id:
        generation.repo_id = config.repo_id
    generation.assign_split(config.heldout_fraction)
    ins = generation.insertion
    if ins is None or ins.range is None:
        return []
    if ins.content_hash is None:
        ins.content_hash = sha256_text(generation.completion)
    return [Span(generation.id, ins.path, ins.range, generation.completion, commit=ins.commit)]


def record_insertion(
    store: Store, generation_id: str, path: str, rng: Range, text: str, *, commit: str | None = None
) -> Span:
    """Track text a model wrote at `path`/`rng` (the generation may be unknown: the span keeps its text)."""
    span = Span(generation_id, path, rng, text, commit=commit)
    store.add(spans=[span])
    return span


def record_feedback(
    store: Store,
    config: Config,
    feedback: Iterable[Feedback],
    *,
    file_texts: dict[str, str] | None = None,
    attributor: Attributor | None = None,
) -> AddResult:
    """Attribute located feedback to the generation that wrote the code, then queue it all in one transaction.

    `file_texts` maps repo-relative paths to their current text (what an editor holds); otherwise the file is
    read from the repo. A caller writing many batches in one run passes its `attributor` so each file is placed
    once. Feedback that no generation covers is kept, unattributed.
    """
    ready = attribute_feedback(store, config, feedback, file_texts=file_texts, attributor=attributor)
    return store.add(feedback=ready)


def attribute_feedback(
    store: Store,
    config: Config,
    feedback: Iterable[Feedback],
    *,
    file_texts: dict[str, str] | None = None,
    attributor: Attributor | None = None,
) -> list[Feedback]:
    """Each unattributed, located piece of feedback given to the generation whose model-written lines it
    touches (if any), keyed by its line within that generation's span."""
    engine = attributor or Attributor(store, config.repo_root, dict(file_texts or {}))
    ready = []
    for fb in feedback:
        if fb.generation_id is None and fb.path and fb.range is not None:
            matches = engine.attribute(fb.path, fb.range.start_line, fb.range.last_line)
            if matches:
                best = matches[0]
                fb = fb.attributed_to(best.generation_id, span_line=best.span_line, attribution=best.confidence)
        ready.append(fb)
    return ready
