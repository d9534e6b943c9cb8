"""The generation ledger: the one way harvesters and model front-ends write to the queue.

`record` is the write path. It gives every generation its repo id and its fixed held-out split and makes its
insertion a trackable span, attributes each piece of located feedback to the generation that wrote that code,
has the queue scrub and validate the whole batch once, and writes it in one transaction — or, when another
process holds the queue past the writer's busy timeout, spools it beside the queue for the next open to merge,
so no harvester waits on (or fails for) a stuck process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from redline.attribution import Attributor
from redline.config import Config
from redline.demonstrations import apply_fix, fix_edits
from redline.errors import QueueBusy
from redline.queue.protocol import AddResult, Store
from redline.records import Feedback, Generation, Span, sha256_text


def record(
    store: Store,
    config: Config,
    *,
    generations: Iterable[Generation] = (),
    feedback: Iterable[Feedback] = (),
    spans: Iterable[Span] = (),
    file_texts: dict[str, str] | None = None,
    attributor: Attributor | None = None,
    attributed: bool = False,
    spool: Literal["if busy", "now", "never"] = "if busy",
) -> AddResult:
    """Queue generations, feedback and spans together: all land (or are spooled) or, on a bad record, none do.

    Unattributed feedback with a location is given to the generation whose model-written lines it touches, as
    the queue's spans place them in the file now: `file_texts` maps repo-relative paths to their current text
    (what an editor holds), other files are read from the repo, and a caller writing many batches in one run
    passes its `attributor` so each file is placed once. Feedback no generation covers is kept, unattributed.
    `attributed=True` says the caller has attributed `feedback` by a rule of its own (the pytest plugin walks a
    failure's frames), so it is taken as given. Spans the engine found for served completions (placed by their
    prompt's context: `redline.served_code`) are recorded in the same batch.

    `spool` says when the batch goes to the spool instead: "if busy" once the store's busy timeout has passed;
    "now" without trying the queue (the caller found it locked a moment ago); "never" raises `QueueBusy` (a
    caller with a fallback of its own). A bad record raises `RecordError` naming its field before anything is
    written or spooled.
    """
    generations = list(generations)
    spans = [*spans, *(s for g in generations for s in _fill_in(config, g))]
    if not attributed:
        attributor = attributor or Attributor(store, config.repo_root, dict(file_texts or {}))
        feedback = _attribute(attributor, feedback)
    if attributor is not None:  # served completions the engine found in files: tracked from now on
        spans += attributor.new_spans
        attributor.new_spans = []
    batch = store.prepare(generations, feedback, spans)
    busy = None
    if spool != "now":
        try:
            return store.write(batch)
        except QueueBusy as exc:
            if spool == "never":
                raise
            busy = exc.message
    return AddResult(spooled=len(batch), spool_file=store.spool(batch), busy=busy)


def attribute_feedback(store: Store, config: Config, feedback: Iterable[Feedback]) -> list[Feedback]:
    """`record`'s attribution alone: each unattributed, located piece of feedback given to the generation whose
    model-written lines it touches, the files read from the repo (a team queue's spooled batch, sent later)."""
    return _attribute(Attributor(store, config.repo_root), feedback)


def record_generation(store: Store, config: Config, generation: Generation) -> Generation:
    """`record` one generation; returns it with its repo id and split set (what a front-end answers with)."""
    record(store, config, generations=[generation])
    return generation


def _fill_in(config: Config, generation: Generation) -> list[Span]:
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


def _attribute(engine: Attributor, feedback: Iterable[Feedback]) -> list[Feedback]:
    """Each unattributed, located piece of feedback given to the generation whose model-written lines it
    touches (if any), keyed by its line within that generation's span."""
    ready = []
    for fb in feedback:
        if fb.generation_id is None and fb.path and fb.range is not None:
            matches = engine.attribute(fb.path, fb.range.start_line, fb.range.last_line)
            if matches:
                best = matches[0]
                extra = {}
                if best.confidence == "exact" and (fixed := apply_fix(best.span, fix_edits(fb.meta.get("fix")))):
                    extra["demonstration"] = {"source": f"{fb.source}'s own fix", "text": fixed}
                fb = fb.attributed_to(best.generation_id, span_line=best.span_line, attribution=best.confidence,
                                      **extra)
        ready.append(fb)
    return ready
