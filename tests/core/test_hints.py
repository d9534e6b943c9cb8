"""Hints: the repository's recurring red lines, ranked, one per rule, where each kind of prompt reads them."""

from __future__ import annotations

from redline.hints import HEADER, recurring, with_hints
from redline.records import Feedback, Message, Prompt
from redline.serve.hinting import Hints
from redline.serve.shapes import parse_request

JSON_RULE = "JSON files are not opened by hand in this repository: write `data = read_json(path)`"


def lint(gid: str, rule: str, message: str, kind: str = "diagnostic") -> Feedback:
    return Feedback(kind=kind, source="ruff", message=message, rule=rule, generation_id=gid)  # type: ignore[arg-type]


def test_the_most_frequent_rules_first_counted_once_per_generation() -> None:
    fb = [lint("g1", "RL1", JSON_RULE), lint("g1", "RL1", JSON_RULE), lint("g2", "RL1", JSON_RULE),
          lint("g3", "RL1", JSON_RULE), lint("g1", "RL2", "no print(): use `log.info`"),
          lint("g4", "RL2", "no print(): use `log.info`"), lint("g5", "RL3", "once only"),
          lint("g6", "t::a", "assert 1 == 2", "test_failure"), lint("g7", "t::a", "assert 1 == 2", "test_failure")]
    hints = recurring(fb, limit=5)
    assert [(h.text, h.count) for h in hints] == [(f"{JSON_RULE} [RL1]", 3),
                                                  ("no print(): use `log.info` [RL2]", 2)]
    assert len(recurring(fb, limit=1)) == 1


def test_hints_are_a_system_turn_for_chat_and_a_comment_above_the_cursor_for_code() -> None:
    hints = recurring([lint("g1", "RL1", JSON_RULE), lint("g2", "RL1", JSON_RULE)])
    chat = with_hints("chat", Prompt(messages=[Message("user", "load the config")]), hints)
    assert chat.messages is not None and chat.messages[0].role == "system"
    assert chat.messages[0].content.startswith(HEADER) and chat.messages[1].content == "load the config"
    merged = with_hints("chat", Prompt(messages=[Message("system", "Be brief."), Message("user", "x")]), hints)
    assert merged.messages is not None and merged.messages[0].content.startswith("Be brief.\n\n" + HEADER)
    fim = with_hints("fim", Prompt(prefix="import os\n\ndef load(path):\n    ", suffix="\n"), hints, "app/c.py")
    assert fim.prefix == ("import os\n\ndef load(path):\n    # " + HEADER + "\n    # - " + JSON_RULE + " [RL1]\n    ")
    ts = with_hints("raw", Prompt(text="function f() {\n  "), hints, "web/a.ts")
    assert ts.text is not None and "  // " + HEADER in ts.text
    assert with_hints("raw", Prompt(text="x"), []).text == "x"


class Queue:
    def feedback(self) -> list[Feedback]:
        return [lint("g1", "RL1", JSON_RULE), lint("g2", "RL1", JSON_RULE)]


def test_the_proxy_puts_the_same_hints_in_each_dialects_own_fields() -> None:
    hints = recurring(Queue().feedback())
    bodies = {
        "openai_completions": {"prompt": "def f(p):\n    ", "suffix": "\n", "max_tokens": 4},
        "openai_chat": {"messages": [{"role": "user", "content": "hi", "name": "me"}]},
        "llama_completion": {"prompt": "def f(p):\n    "},
        "llama_infill": {"input_prefix": "def f(p):\n", "prompt": "    ", "input_suffix": "\n",
                         "input_extra": [{"filename": "u.py", "text": "# util\n"}]},
        "ollama_generate": {"prompt": "def f(p):\n    "},
        "ollama_chat": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]},
    }
    for endpoint, body in bodies.items():
        req = parse_request(endpoint, body)  # type: ignore[arg-type]
        hinted = with_hints(req.format, req.prompt(), hints)
        sent = Hints(Queue(), 3).apply(req, body)
        assert sent is not None and req.prompt() == hinted and req.meta["hints"] == 1, endpoint
        assert parse_request(endpoint, sent).prompt() == hinted, endpoint  # upstream reads what Redline records
        if endpoint == "openai_chat":
            assert sent["messages"][1]["name"] == "me"  # the client's other fields stay
