"""Training examples: a generation with all its feedback, read from the queue."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from redline.queue.store import Store
from redline.records import Feedback, Generation
from redline.trainer.feedback_text import is_accepted, is_passed


@dataclass
class TrainingExample:
    generation: Generation
    feedback: list[Feedback] = field(default_factory=list)


def examples_from_store(store: Store, *, split: str | None = "train", ids: Iterable[str] | None = None,
                        include_passed: bool = False) -> list[TrainingExample]:
    """Generations of `split` with their feedback (only those with feedback unless `include_passed`).

    `ids` restricts to claimed generation ids; the held-out split is never trained on."""
    wanted = None if ids is None else set(ids)
    out = []
    for g in store.generations(split=split, with_feedback=None if include_passed else True):
        if wanted is not None and g.id not in wanted:
            continue
        if g.split == "heldout" and split != "heldout":
            continue
        if g.meta.get("scrubbed"):  # a secret was cut out of the completion: no longer what the model wrote
            continue
        out.append(TrainingExample(g, store.feedback_for(g.id)))
    return out


def top_up_heldout(store: Store, examples: Sequence[TrainingExample], need: int, *, claimed: Iterable[str]
                   ) -> tuple[list[TrainingExample], int]:
    """Hold out the newest claimed records with a red line when the gate has fewer than `need` to judge by.

    The held-out split is fixed by a hash of the prompt (15 % by default), so a young queue leaves the gate too
    few records to decide; the newest mistakes are the ones closest to what the model does now. At most a quarter
    of the claim's mistakes end up held out, so training keeps the rest, and a rerun on the same claim (a resumed
    run) moves nothing more. Returns (the examples left to train on, how many moved)."""
    ids = set(claimed)
    held = [ex for ex in examples_from_store(store, split="heldout") if not is_passed(ex.feedback)]
    held_in_claim = sum(ex.generation.id in ids for ex in held)
    mistakes = [ex for ex in examples if ex.feedback and not is_passed(ex.feedback)]
    take = min(need - len(held), (len(mistakes) + held_in_claim) // 4 - held_in_claim)
    if take <= 0:
        return list(examples), 0
    newest = sorted(mistakes, key=lambda ex: (ex.generation.created_at, ex.generation.id))[-take:]
    moved = {ex.generation.id for ex in newest}
    store.hold_out(moved)
    return [ex for ex in examples if ex.generation.id not in moved], len(moved)


def balance_accepted(examples: Sequence[TrainingExample], seed: int) -> list[TrainingExample]:
    """At most as many accepted records (anchors) as records with mistakes: a seeded choice, in queue order.

    An editor's queue holds far more code kept as written than code that drew feedback. Unbalanced, anchors would
    take most of a run's steps (at most 300) and leave the mistakes fewer than the 3 passes they need; the
    learning benchmark's runs have up to one anchor per mistake."""
    accepted = [i for i, ex in enumerate(examples) if is_accepted(ex.feedback)]
    mistakes = sum(bool(ex.feedback) and not is_accepted(ex.feedback) for ex in examples)
    surplus = len(accepted) - mistakes
    if surplus <= 0:
        return list(examples)
    dropped = set(random.Random(seed).sample(accepted, surplus))
    return [ex for i, ex in enumerate(examples) if i not in dropped]


def data_window(examples: Sequence[TrainingExample]) -> list[str | None]:
    """First and last creation time of the generations used."""
    times = sorted(e.generation.created_at for e in examples)
    return [times[0], times[-1]] if times else [None, None]
