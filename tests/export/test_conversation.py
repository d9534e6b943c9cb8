"""Chat histories as feedback: recorded assistant turns are found by their text, the next user turn becomes review."""

from __future__ import annotations

from pathlib import Path

import pytest

from redline.config import load_config
from redline.queue.store import SQLiteStore
from redline.records import Generation, Message, ModelRef, Prompt
from redline.serve.conversation import feedback_from_history, is_correction

CODE = "def fetch(url):\n    return requests.get(url)\n"


def chat_gen(messages: list[tuple[str, str]], completion: str = CODE) -> Generation:
    return Generation(prompt_format="chat", prompt=Prompt(messages=[Message(r, c) for r, c in messages]),
                      completion=completion, model=ModelRef("tiny"), repo_id="test/repo", origin="server")


@pytest.fixture
def store(tmp_path: Path):
    with SQLiteStore(tmp_path / "q.sqlite3") as s:
        yield s


@pytest.fixture
def config(tmp_path: Path):
    return load_config(tmp_path)


def history(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in turns]


def test_the_user_turn_after_a_recorded_answer_is_review_feedback_on_it(store, config) -> None:
    gen = chat_gen([("user", "fetch a url")])
    store.add(generations=[gen])
    # clients strip or keep whitespace as they like; the match is on the text
    msgs = history(("user", "fetch a url"), ("assistant", "\n" + CODE.strip() + "  "),
                   ("user", "no, use the retry wrapper instead"))
    [fb] = feedback_from_history(store, config, msgs)
    assert (fb.kind, fb.source, fb.generation_id) == ("review", "chat", gen.id)
    assert fb.message == "no, use the retry wrapper instead" and fb.trust == "normal"


def test_a_plain_follow_up_is_low_trust(store, config) -> None:
    gen = chat_gen([("user", "fetch a url")])
    store.add(generations=[gen])
    [fb] = feedback_from_history(store, config, history(("user", "fetch a url"), ("assistant", CODE),
                                                        ("user", "shorter")))
    assert fb.trust == "low" and fb.rule == "chat.follow-up"


def test_the_same_history_sent_again_adds_no_duplicate(store, config) -> None:
    gen = chat_gen([("user", "fetch a url")])
    store.add(generations=[gen])
    msgs = history(("user", "fetch a url"), ("assistant", CODE), ("user", "that test still fails: E assert 1 == 2"))
    assert store.add(feedback=feedback_from_history(store, config, msgs)).feedback == 1
    # the next request repeats the whole conversation plus a new turn
    later = [*msgs, {"role": "assistant", "content": "something new"}, {"role": "user", "content": "ok"}]
    assert store.add(feedback=feedback_from_history(store, config, later)).feedback == 0
    assert len(store.feedback_for(gen.id)) == 1


def test_unrecorded_turns_and_turns_without_a_reply_give_nothing(store, config) -> None:
    store.add(generations=[chat_gen([("user", "fetch a url")])])
    assert feedback_from_history(store, config, history(("user", "hi"), ("assistant", "not ours"),
                                                        ("user", "no"))) == []
    # the recorded answer is the last turn: the user has not answered it yet
    assert feedback_from_history(store, config, history(("user", "fetch a url"), ("assistant", CODE))) == []
    # an empty reply (an image-only turn) is not feedback
    image_only = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}
    assert feedback_from_history(store, config, [*history(("assistant", CODE)), image_only]) == []


def test_openai_content_parts_are_read(store, config) -> None:
    gen = chat_gen([("user", "q")])
    store.add(generations=[gen])
    msgs = [{"role": "assistant", "content": [{"type": "text", "text": CODE}]},
            {"role": "user", "content": [{"type": "text", "text": "wrong: "}, {"type": "text", "text": "use httpx"}]}]
    [fb] = feedback_from_history(store, config, msgs)
    assert fb.generation_id == gen.id and fb.message == "wrong: use httpx" and fb.trust == "normal"


def test_same_text_twice_picks_the_generation_whose_prompt_was_this_conversation(store, config) -> None:
    ours = chat_gen([("system", "s"), ("user", "fetch a url")])
    newer_elsewhere = chat_gen([("user", "something else")])
    ours.created_at, newer_elsewhere.created_at = "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z"
    store.add(generations=[ours, newer_elsewhere])
    msgs = history(("system", "s"), ("user", "fetch a url"), ("assistant", CODE), ("user", "shorter"))
    [fb] = feedback_from_history(store, config, msgs)
    assert fb.generation_id == ours.id
    # a history that matches neither prompt goes to the newest
    [fb] = feedback_from_history(store, config, history(("user", "?"), ("assistant", CODE), ("user", "shorter")))
    assert fb.generation_id == newer_elsewhere.id


def test_lookup_finds_long_completions_that_share_their_first_64_characters(store) -> None:
    head = "x" * 64
    a, b = chat_gen([("user", "a")], head + "A"), chat_gen([("user", "b")], head + "B")
    store.add(generations=[a, b])
    assert [g.id for g in store.generations_with_completion(head + "B")] == [b.id]
    assert store.generations_with_completion(head) == []


def test_the_lookup_uses_the_completion_index(store) -> None:
    from redline.queue.store import _COMPLETION_HEAD

    plan = store._conn().execute(f"EXPLAIN QUERY PLAN SELECT body FROM generations WHERE {_COMPLETION_HEAD} = ?",
                                 ("x",)).fetchall()
    assert "generations_completion_head" in str(plan)


@pytest.mark.parametrize("text", [
    "no, use the retry wrapper",
    "Don't use requests here",
    "use httpx instead",
    "That test still fails: assert 1 == 2",
    "it doesn't work",
    "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\nNameError: name 'x'",
    "here:\nValueError: bad value",
    "src/m.py:3:1: E501 line too long",
    "error[E0308]: mismatched types",
    "FAILED tests/test_a.py::test_x - assert 0",
])
def test_corrections(text: str) -> None:
    assert is_correction(text)


@pytest.mark.parametrize("text", ["shorter", "thanks! now add a docstring", "can you also handle errors?",
                                  "explain how the error handling works"])
def test_follow_ups_that_are_not_corrections(text: str) -> None:
    assert not is_correction(text)
