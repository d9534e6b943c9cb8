from __future__ import annotations

import pytest
from conftest import chat_generation, failing, fim_generation, raw_generation

from redline.prompts import comment_prefix, encode, render_student, student_prompt_ids
from redline.records import Feedback
from redline.trainer.config import TrainConfig
from redline.trainer.contexts import (
    REPROMPT_FEEDBACK,
    REPROMPT_SOLVE,
    Rendering,
    build_pair,
    render_teacher,
)
from redline.trainer.model import tokenizer_fingerprint


def rendering(**settings: object) -> Rendering:
    """The rendering settings of a `TrainConfig` with these settings (its defaults otherwise)."""
    return Rendering.of(TrainConfig(**settings))


CASES = {
    "chat": (chat_generation, rendering(hindsight="chat")),
    "fim": (fim_generation, rendering(hindsight="fim")),
    "template": (raw_generation, rendering(hindsight="template", template="# {feedback}\n{prompt}")),
    "auto-raw": (raw_generation, rendering()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_completion_ids_identical_in_student_and_teacher(tiny_tokenizer, case: str) -> None:
    make, cfg = CASES[case]
    g = make()
    pair = build_pair(tiny_tokenizer, 0, g, failing(g), cfg)
    assert pair is not None
    # the scored ids are one list spliced after both prompts, equal to the completion tokenized once
    expected = [*encode(tiny_tokenizer, g.completion, False), tiny_tokenizer.eos_token_id]
    assert pair.completion_ids == expected
    student = pair.student_ids + pair.completion_ids
    teacher = pair.teacher_ids + pair.completion_ids
    n = len(pair.completion_ids)
    assert student[-n:] == teacher[-n:] == expected
    assert pair.student_ids == student_prompt_ids(tiny_tokenizer, g)
    assert pair.teacher_ids != pair.student_ids
    assert "add(1, 2) returned -1" in tiny_tokenizer.decode(pair.teacher_ids)
    assert "add(1, 2) returned -1" not in tiny_tokenizer.decode(pair.student_ids)  # no leakage into the student


def test_recorded_token_ids_are_reused_when_tokenizer_matches(tiny_tokenizer) -> None:
    g = raw_generation()
    g.token_ids = [5, 6, 7]
    g.token_logprobs = [-1.0, -2.0, -3.0]
    g.tokenizer_fingerprint = tokenizer_fingerprint(tiny_tokenizer)
    pair = build_pair(tiny_tokenizer, 0, g, failing(g), rendering(), fingerprint=g.tokenizer_fingerprint)
    assert pair.completion_ids == [5, 6, 7] and pair.old_logprobs == [-1.0, -2.0, -3.0]
    other = build_pair(tiny_tokenizer, 0, g, failing(g), rendering(), fingerprint="different")
    assert other.completion_ids != [5, 6, 7] and other.old_logprobs is None


def test_chat_teacher_adds_sdpo_reprompt_turn(tiny_tokenizer) -> None:
    g = chat_generation()
    student, _ = render_student(tiny_tokenizer, g)
    teacher, _ = render_teacher(tiny_tokenizer, g, "- test failed: x", rendering())
    assert student.endswith("<|assistant|>\n") and teacher.endswith("<|assistant|>\n")
    assert teacher.count("<|user|>") == 2
    assert REPROMPT_FEEDBACK in teacher and REPROMPT_SOLVE in teacher
    assert g.completion not in teacher  # the attempt is scored, never pasted


def test_fim_feedback_is_a_comment_block_above_the_cursor_line(tiny_tokenizer) -> None:
    g = fim_generation()
    teacher, _ = render_teacher(tiny_tokenizer, g, "- test failed: wrong sign", rendering())
    assert teacher.startswith("<fim_prefix>") and "<fim_suffix>" in teacher and teacher.endswith("<fim_middle>")
    assert "    # - test failed: wrong sign\n    # Write it correctly.\n    return <fim_suffix>" in teacher
    assert comment_prefix("a/b.ts") == "//" and comment_prefix("x.sql") == "--" and comment_prefix("noext") == "#"


def test_truncation_cuts_feedback_then_old_prompt_never_completion(tiny_tokenizer) -> None:
    g = raw_generation()
    g.prompt.text = "import os\n" * 40 + g.prompt.text
    long_fb = [Feedback(kind="review", source="human", message="please fix " * 300, generation_id=g.id)]
    pair = build_pair(tiny_tokenizer, 0, g, long_fb, rendering(max_length=64, max_feedback_chars=5000))
    assert pair is not None and pair.truncated
    assert len(pair.student_ids) + len(pair.completion_ids) <= 64
    assert len(pair.teacher_ids) + len(pair.completion_ids) <= 64
    assert pair.completion_ids == [*encode(tiny_tokenizer, g.completion, False), tiny_tokenizer.eos_token_id]
    assert pair.student_ids[0] == tiny_tokenizer.bos_token_id


def test_no_feedback_trains_nothing_unless_anchor(tiny_tokenizer) -> None:
    g = raw_generation()
    accept = [Feedback(kind="accept", source="editor", generation_id=g.id)]
    assert build_pair(tiny_tokenizer, 0, g, [], rendering()) is None  # no feedback: not known to be good
    assert build_pair(tiny_tokenizer, 0, g, accept, rendering(), anchors=False) is None
    anchor = build_pair(tiny_tokenizer, 0, g, accept, rendering())
    assert anchor is not None and anchor.anchor and anchor.teacher_ids == anchor.student_ids


def test_rewrites_and_samples_no_longer_than_the_recorded_attempt_was_allowed() -> None:
    from redline.trainer.data import TrainingExample
    from redline.trainer.revisions import rewrite_budget as _budget

    g = raw_generation()
    g.sampling = {"max_new_tokens": 40}
    assert _budget(TrainingExample(g, []), TrainConfig(revision_max_new_tokens=256), 10) == 40
    g.sampling = {}
    assert _budget(TrainingExample(g, []), TrainConfig(revision_max_new_tokens=256, max_length=100), 10) == 90


def test_chat_turn_shows_an_instruct_model_the_code_and_its_feedback_before_the_completion(tiny_tokenizer) -> None:
    g = raw_generation()
    pair = build_pair(tiny_tokenizer, 0, g, failing(g), rendering(hindsight="chat-turn"))
    assert pair is not None
    teacher = tiny_tokenizer.decode(pair.teacher_ids)
    student, _ = render_student(tiny_tokenizer, g)
    assert "<|user|>" in teacher and "add(1, 2) returned -1" in teacher and g.completion.strip() in teacher
    assert teacher.rstrip().endswith(student.rstrip())  # the assistant's turn starts with the prompt itself
    # a chat record asked for chat-turn keeps its own messages (the chat strategy)
    c = chat_generation()
    assert render_teacher(tiny_tokenizer, c, "- x", rendering(hindsight="chat-turn")) == \
        render_teacher(tiny_tokenizer, c, "- x", rendering(hindsight="chat"))


def test_auto_prefers_what_the_record_and_the_model_support(tiny_tokenizer) -> None:
    from redline.trainer.contexts import resolve_strategy, strategies_for, supported

    assert supported(tiny_tokenizer, chat_generation()) == ["chat", "template"]
    assert supported(tiny_tokenizer, raw_generation()) == ["chat-turn", "template"]
    assert supported(tiny_tokenizer, fim_generation()) == ["fim", "template"]  # a FIM model: its own format
    assert resolve_strategy(tiny_tokenizer, raw_generation(), rendering()) == "chat-turn"
    assert resolve_strategy(tiny_tokenizer, fim_generation(), rendering(hindsight="chat")) == "template"
    gens = [raw_generation(), fim_generation()]
    assert strategies_for(tiny_tokenizer, gens, rendering()) == ["chat-turn", "fim", "template"]
    assert strategies_for(tiny_tokenizer, gens, rendering(hindsight="fim")) == ["fim"]


def test_a_model_may_ship_its_own_hindsight_template(tiny_tokenizer, tmp_path) -> None:
    import json

    from transformers import AutoTokenizer

    tiny_tokenizer.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text())
    cfg["hindsight_template"] = "## said: {feedback}\n{prompt}"
    cfg.pop("chat_template", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    text, _ = render_teacher(tok, raw_generation(), "- wrong", rendering())
    assert text.startswith("## said: - wrong\n")
    own, _ = render_teacher(tok, raw_generation(), "- wrong",
                            rendering(hindsight="template", template="{feedback}|{prompt}"))
    assert own.startswith("- wrong|")  # the user's template wins
