from __future__ import annotations

from conftest import failing, raw_generation

from redline.records import Feedback
from redline.trainer.data import TrainingExample, balance_accepted


def _kept(i: int) -> TrainingExample:
    g = raw_generation(i)
    return TrainingExample(g, [Feedback(kind="accept", source="lsp.kept", message="kept", generation_id=g.id)])


def test_accepted_records_are_capped_at_one_per_record_with_a_mistake_in_queue_order() -> None:
    examples = []
    for i in range(12):  # 3 mistakes (0, 4, 8), 9 accepted
        g = raw_generation(i)
        examples.append(TrainingExample(g, failing(g)) if i % 4 == 0 else _kept(i))
    chosen = balance_accepted(examples, seed=0)
    assert [examples.index(ex) for ex in chosen if not ex.feedback[0].kind == "accept"] == [0, 4, 8]
    assert sum(ex.feedback[0].kind == "accept" for ex in chosen) == 3
    assert [examples.index(ex) for ex in chosen] == sorted(examples.index(ex) for ex in chosen)
    assert balance_accepted(examples, seed=0) == chosen  # the same each run
    assert balance_accepted(examples[:2], seed=0) == examples[:2]  # below the cap nothing changes
    no_feedback = TrainingExample(raw_generation(99))  # proves nothing: neither a mistake nor an anchor
    assert balance_accepted([no_feedback, _kept(1)], seed=0) == [no_feedback]


def test_a_young_queue_holds_out_its_newest_mistakes_for_the_gate_and_trains_on_the_rest(tmp_path) -> None:
    import dataclasses

    from redline.queue import SQLiteStore
    from redline.trainer.data import examples_from_store, top_up_heldout

    store = SQLiteStore(tmp_path / "q.db")
    gens = [dataclasses.replace(raw_generation(i), created_at=f"2026-12-0{1 + i // 10}T00:00:{i % 10:02d}Z")
            for i in range(20)] + [raw_generation(50, split="heldout"), raw_generation(51, split="heldout")]
    store.add(gens, [fb for g in gens for fb in failing(g)])
    examples = examples_from_store(store, split="train")
    claim = [g.id for g in gens[:20]]
    left, moved = top_up_heldout(store, examples, need=8, claimed=claim)
    assert moved == 5  # needs 6 more, but never more than a quarter of the claim's 20 mistakes
    assert {ex.generation.id for ex in left} == {g.id for g in gens[:15]}  # the 5 newest moved
    held = examples_from_store(store, split="heldout")
    assert len(held) == 7 and all(ex.generation.split == "heldout" for ex in held)
    again = examples_from_store(store, split="train", ids=claim)
    assert top_up_heldout(store, again, need=8, claimed=claim) == (again, 0)  # a resumed run moves nothing more
    store.close()
