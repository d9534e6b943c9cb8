"""The generation ledger: the one way harvesters and model front-ends write to the queue.

Writing through here (not `store.add` directly) guarantees every record gets its repo id and its fixed held-out
split, every insertion becomes a trackable span, and every piece of feedback with a location is attributed to
the generation that wrote that code before it is queued.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from redline.attribution import attribute, read_text
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
) -> AddResult:
    """Attribute located feedback to the generation that wrote the code, then queue it all in one transaction.

    `file_texts` maps repo-relative paths to their current text (what an editor holds); otherwise the file is
    read from the repo. Feedback that no generation covers is kept, unattributed.
    """
    return store.add(feedback=attribute_feedback(store, config, feedback, file_texts=file_texts))


def attribute_feedback(
    store: Store,
    config: Config,
    feedback: Iterable[Feedback],
    *,
    file_texts: dict[str, str] | None = None,
) -> list[Feedback]:
    """Each unattributed, located piece of feedback given to the generation whose span covers it (if any)."""
    texts = dict(file_texts or {})
    ready = []
    for fb in feedback:
        if fb.generation_id is None and fb.path and fb.range is not None:
            if fb.path not in texts:  # read each file once per batch
                texts[fb.path] = read_text(config.repo_root / fb.path)
            matches = attribute(store, fb.path, fb.range.start_line, fb.range.last_line, file_text=texts[fb.path])
            if matches:
                best = matches[0]
                # an empty fingerprint is recomputed, now keyed by the generation
                fb = replace(fb, generation_id=best.generation_id, fingerprint="",
                             meta={**fb.meta, "attribution": best.confidence})
        ready.append(fb)
    return ready
