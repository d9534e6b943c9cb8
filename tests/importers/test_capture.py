"""`redline import --from continue|tabby`: files written in the shapes Continue's schemas
(packages/config-yaml/src/schemas/data) and Tabby's `api/event.rs` define, with malformed lines and another
repository's events mixed in. Only this repository's events land; accepted → `accept`, a later rewrite → `edit`,
shown but never taken → a generation with no feedback; a second import adds nothing; `--watch` picks up appends."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from redline.cli import cli
from redline.config import load_config
from redline.importers import import_capture
from redline.importers.common import Report, stable_id
from redline.importers.watch import watch
from redline.queue import Store, open_store

REMOTE = "git@github.com:acme/shop.git"
BASE = {"schema": "0.2.0", "userId": "u-1", "userAgent": "Visual Studio Code/1.96.0 (Continue/1.0.0)",
        "selectedProfileId": "local"}
SETTINGS = {"disable": False, "useFileSuffix": True, "maxPromptTokens": 1024, "debounceDelay": 350,
            "maxSuffixPercentage": 0.2, "prefixPercentage": 0.3, "multilineCompletions": "auto",
            "slidingWindowPrefixPercentage": 0.75, "slidingWindowSize": 500, "useCache": True, "onlyMyCode": True,
            "useRecentlyEdited": True}
ADD = "def add(a, b):\n    return a + b\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text(f'[remote "origin"]\n\turl = {REMOTE}\n\tfetch = +refs/heads/*\n',
                                          encoding="utf-8")
    return root


@pytest.fixture
def store(repo: Path) -> Store:
    s = open_store(load_config(repo))
    yield s
    s.close()


def autocomplete(cid: str, filepath: str, completion: str, accepted: bool | None, **extra: Any) -> dict[str, Any]:
    event = {**BASE, **SETTINGS, "eventName": "autocomplete", "createdAt": "2026-11-30T10:00:00.000Z",
             "time": 412, "prefix": "import os\n\n", "suffix": "\n", "prompt": "<PRE> import os\n\n <SUF>\n <MID>",
             "completion": completion, "modelProvider": "ollama", "modelName": "qwen2.5-coder:1.5b",
             "cacheHit": False, "filepath": filepath, "gitRepo": "https://github.com/acme/shop",
             "completionId": cid, "uniqueId": "machine-1", "timestamp": "2026-11-30T10:00:00.412Z", **extra}
    if accepted is not None:
        event["accepted"] = accepted
    return event


def write_lines(path: Path, lines: list[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line if isinstance(line, str) else json.dumps(line) + "\n" for line in lines),
                    encoding="utf-8")


def kinds(store: Store, gid: str) -> list[str]:
    return sorted(f.kind for f in store.feedback_for(gid))


def test_continue_dev_data(tmp_path: Path, repo: Path, store: Store) -> None:
    data = tmp_path / "continue" / "dev_data" / "0.2.0"
    app = (repo / "app.py").as_uri()
    write_lines(data / "autocomplete.jsonl", [
        autocomplete("c-accepted", app, ADD, True),
        autocomplete("c-shown", str(repo / "util.py"), "x = 1  # never taken\n", False),
        autocomplete("c-other", "/home/u/elsewhere/main.py", "print('other repo')\n", True,
                     gitRepo="https://github.com/acme/other"),
        "{not json at all\n",
        {**autocomplete("c-bad", app, "y = 2\n", True), "completionId": 7},
        [1, 2, 3],
    ])
    write_lines(data / "editOutcome.jsonl", [
        {**BASE, "eventName": "editOutcome", "createdAt": "2026-11-30T10:05:00.000Z", "modelProvider": "ollama",
         "modelName": "qwen2.5-coder:7b", "prompt": "use operator.add", "completion": "```python\n...\n```",
         "previousCode": "import os\n\n" + ADD, "newCode": "import operator\n\nadd = operator.add\n",
         "previousCodeLines": 4, "newCodeLines": 3, "lineChange": -1, "accepted": True,
         "filepath": app},
    ])
    report = import_capture(store, load_config(repo), "continue", data)
    assert (report.files, report.events, report.other_repo, report.skipped) == (2, 4, 1, 3)

    taken, shown = stable_id("continue", "c-accepted"), stable_id("continue", "c-shown")
    gen = store.get_generation(taken)
    assert gen is not None and gen.prompt_format == "fim" and gen.prompt.prefix == "import os\n\n"
    assert gen.completion == ADD and gen.model.id == "qwen2.5-coder:1.5b" and gen.origin == "editor"
    assert gen.insertion is not None and gen.insertion.path == "app.py"
    assert gen.created_at == "2026-11-30T10:00:00.412Z" and gen.meta["rendered_prompt"].startswith("<PRE>")
    assert kinds(store, taken) == ["accept", "edit"]  # accepted, then rewritten by a Continue edit
    (edit,) = [f for f in store.feedback_for(taken) if f.kind == "edit"]
    assert edit.correction == "import operator\n\nadd = operator.add\n" and edit.trust == "low"
    assert store.get_generation(shown) is not None and kinds(store, shown) == []  # shown, not taken: no feedback
    assert store.get_generation(stable_id("continue", "c-other")) is None
    assert store.counts()["generations"] == 3  # two autocompletes and the edit

    again = import_capture(store, load_config(repo), "continue", data)
    assert (again.generations, again.feedback) == (0, 0) and again.duplicates == 6


def tabby_line(ts: int, event: dict[str, Any]) -> dict[str, Any]:
    return {"user": None, "ts": ts, "event": event}


def completion(cid: str, git_url: str, *choices: str, filepath: str = "shop/cart.py") -> dict[str, Any]:
    return {"completion": {"completion_id": cid, "language": "python", "prompt": "<fim_prefix>def total(<fim_suffix>",
                           "segments": {"prefix": "def total(", "suffix": "\n", "git_url": git_url,
                                        "filepath": filepath},
                           "choices": [{"index": i, "text": t} for i, t in enumerate(choices)],
                           "user_agent": "tabby-agent/1.7.0"}}


def test_tabby_event_logs(tmp_path: Path, repo: Path, store: Store) -> None:
    events = tmp_path / "tabby" / "events"
    write_lines(events / "2026-11-29.json", [
        tabby_line(1764410000000, completion("cmpl-1", "https://github.com/acme/shop.git", "items):\n    return 0")),
        tabby_line(1764410000100, {"view": {"completion_id": "cmpl-1", "choice_index": 0}}),
        tabby_line(1764410001000, completion("cmpl-2", "git@github.com:acme/shop.git", "cart, tax):\n  pass")),
        tabby_line(1764410002000, completion("cmpl-9", "https://github.com/acme/other", "x):\n    ...")),
        "\x00\x01 binary garbage\n",
        tabby_line(1764410003000, {"teleport": {"completion_id": "cmpl-1"}}),
    ])
    write_lines(events / "2026-11-30.json", [  # selected the next day, in the next file
        tabby_line(1764500000000, {"select": {"completion_id": "cmpl-1", "choice_index": 0, "elapsed": 900}}),
        tabby_line(1764500000100, {"dismiss": {"completion_id": "cmpl-2", "choice_index": 0}}),
        tabby_line(1764500000200, {"select": {"completion_id": "cmpl-9", "choice_index": 0}}),
        tabby_line(1764500000300, {"select": {"completion_id": "cmpl-2", "choice_index": "first"}}),
    ])
    report = import_capture(store, load_config(repo), "tabby", events)
    assert (report.other_repo, report.skipped, report.generations, report.feedback) == (1, 3, 2, 1)
    picked, dismissed = stable_id("tabby", "cmpl-1", 0), stable_id("tabby", "cmpl-2", 0)
    gen = store.get_generation(picked)
    assert gen is not None and gen.prompt.prefix == "def total(" and gen.completion == "items):\n    return 0"
    assert gen.insertion is not None and gen.insertion.path == "shop/cart.py"
    assert kinds(store, picked) == ["accept"] and kinds(store, dismissed) == []
    assert store.get_generation(stable_id("tabby", "cmpl-9", 0)) is None

    # a select logged after the import still reaches the generation imported before
    with (events / "2026-11-30.json").open("a", encoding="utf-8") as f:
        f.write(json.dumps(tabby_line(1764500009000, {"select": {"completion_id": "cmpl-2", "choice_index": 0,
                                                                 "kind": "line"}})) + "\n")
    again = import_capture(store, load_config(repo), "tabby", events)
    assert (again.generations, again.feedback) == (0, 1)
    assert kinds(store, dismissed) == ["accept"]


def test_watch_imports_what_is_appended(tmp_path: Path, repo: Path, store: Store) -> None:
    data = tmp_path / "dev_data"
    write_lines(data / "autocomplete.jsonl", [autocomplete("w-1", str(repo / "a.py"), ADD, True)])
    rounds: list[Report] = []
    stop = threading.Event()
    follower = threading.Thread(target=watch, args=(store, load_config(repo), "continue", data, rounds.append, stop),
                                kwargs={"settle_s": 0.05})
    follower.start()
    try:
        deadline = time.monotonic() + 20
        while not rounds and time.monotonic() < deadline:
            time.sleep(0.02)
        with (data / "autocomplete.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(autocomplete("w-2", str(repo / "b.py"), "z = 3\n", True)) + "\n")
        while store.get_generation(stable_id("continue", "w-2")) is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        follower.join(10)
    assert store.get_generation(stable_id("continue", "w-2")) is not None
    assert rounds[0].generations == 1 and sum(r.generations for r in rounds) == 2


def test_cli_import_from_and_acceptance_in_status(tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    monkeypatch.chdir(repo)
    data = tmp_path / "dev_data"
    write_lines(data / "autocomplete.jsonl", [
        autocomplete("s-1", str(repo / "a.py"), ADD, True),
        autocomplete("s-2", str(repo / "a.py"), "q = 1\n", False),
        autocomplete("s-3", str(repo / "a.py"), "r = 2\n", None),
        "garbage\n",
    ])
    runner = CliRunner()
    out = runner.invoke(cli, ["import", "--from", "continue", str(data)])
    assert out.exit_code == 0, out.output
    said = " ".join(out.output.split())  # rich wraps long lines
    assert "3 generations, 1 feedback added" in said and "1 line skipped (autocomplete.jsonl:4 not JSON)" in said
    status = json.loads(runner.invoke(cli, ["status", "--json"]).output)
    assert status["acceptance"] == [{"adapter_version": None, "suggested": 3, "accepted": 1}]
    table = " ".join(runner.invoke(cli, ["status"]).output.split())
    assert "completions accepted" in table and "base model │ 3 │ 1 │ 33%" in table

    missing = runner.invoke(cli, ["import", "--from", "tabby", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0 and "no tabby capture directory" in str(missing.exception or missing.output)
    assert runner.invoke(cli, ["import"]).exit_code == 2
    assert runner.invoke(cli, ["import", "--watch", "x.jsonl"]).exit_code == 2


def test_links_and_special_files_in_a_capture_directory_are_not_read(tmp_path: Path, repo: Path,
                                                                     store: Store) -> None:
    """Issue #30: the importer followed symlinks to any readable file; it now reads regular files only (a FIFO
    would also have blocked it forever)."""
    import os

    elsewhere = tmp_path / "elsewhere.jsonl"
    write_lines(elsewhere, [autocomplete("l-1", str(repo / "a.py"), ADD, True)])
    data = tmp_path / "dev_data"
    data.mkdir()
    (data / "autocomplete.jsonl").symlink_to(elsewhere)
    os.mkfifo(data / "editOutcome.jsonl")
    report = import_capture(store, load_config(repo), "continue", data)
    assert (report.events, report.skipped, report.generations) == (0, 2, 0)
    assert "autocomplete.jsonl:0 a symbolic link, not followed" in report.skipped_examples
    assert "editOutcome.jsonl:0 not a regular file" in report.skipped_examples
    tabby = tmp_path / "events"
    tabby.mkdir()
    (tabby / "2026-11-30.json").symlink_to("/etc/passwd")
    assert import_capture(store, load_config(repo), "tabby", tabby).skipped == 1


def test_a_capture_where_no_line_is_an_event_fails_in_one_line(tmp_path: Path, repo: Path, capsys,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #30: `redline import --from continue` on a file where no line parses exited 0."""
    from redline.cli import main

    monkeypatch.chdir(repo)
    data = tmp_path / "dev_data"
    write_lines(data / "autocomplete.jsonl", ["garbage\n", "[1, 2]\n", "{\"not\": \"an event\"}\n"])
    with pytest.raises(SystemExit) as exit_:
        main(["import", "--from", "continue", str(data)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 1 and len(err) == 1
    assert "no line of the continue files here is a continue event (3 skipped" in err[0]
