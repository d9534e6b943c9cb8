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
