"""The pure shapes module and the torch-free import promise, without a server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from redline.serve import answers, shapes
from redline.serve.proxy import same_model
from redline.serve.shapes import BadRequest, parse_request


def test_each_dialect_reads_to_one_request():
    r = parse_request("llama_infill", {"input_prefix": "a\n", "prompt": "  x", "input_suffix": "\nb",
                                       "input_extra": [{"filename": "u.py", "text": "import u\n"}], "n_predict": -1})
    assert (r.format, r.prefix, r.suffix, r.max_tokens) == ("fim", "import u\na\n  x", "\nb", 256)
    assert r.meta["extra_files"] == ["u.py"] and r.stream is False
    r = parse_request("ollama_generate", {"prompt": "p", "suffix": "s", "options": {"num_predict": 7, "stop": "x"}})
    assert (r.format, r.prefix, r.suffix, r.max_tokens, r.stop, r.stream) == ("fim", "p", "s", 7, ["x"], True)
    r = parse_request("openai_chat", {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                                      "max_completion_tokens": 9, "path": "src/a.py"})
    assert (r.messages, r.max_tokens, r.path) == ([{"role": "user", "content": "hi"}], 9, "src/a.py")
    assert parse_request("openai_completions", {"prompt": ["x"]}).text == "x"
    with pytest.raises(BadRequest, match="top_p"):
        parse_request("openai_completions", {"prompt": "x", "top_p": 0})


def test_inject_id_changes_only_the_id():
    assert answers.inject_id(b'data: {"id": "old", "x": 1}\n\n', "G") == b'data: {"id": "G", "x": 1}\n\n'
    assert answers.inject_id(b'{"done":true}\n', "G") == b'{"id":"G","done":true}\n'
    assert answers.inject_id(b"data: [DONE]\n\n", "G") == b"data: [DONE]\n\n"


def test_split_events_keeps_the_unfinished_rest():
    events, rest = answers.split_events("openai_chat", b'data: {"a": 1}\n\ndata: {"b"')
    assert events == [b'data: {"a": 1}\n\n'] and rest == b'data: {"b"'
    assert answers.is_final("openai_chat", b"data: [DONE]\n\n", None)
    assert answers.is_final("ollama_chat", b"", {"done": True}) and not answers.is_final("llama_infill", b"", {})


def test_streamed_chunks_add_up_to_the_whole_answer():
    req = parse_request("openai_chat", {"messages": [{"role": "user", "content": "x"}], "stream": True})
    result = shapes.Result("ab", "stop", 3, 2)
    wire = answers.chunk(req, "G", "m", "a", first=True) + answers.chunk(req, "G", "m", "b") + \
        answers.final_chunk(req, "G", "m", result)
    events, _ = answers.split_events(req.endpoint, wire.encode())
    objs = [o for e in events if (o := answers.event_json(e))]
    assert "".join(answers.delta_text(req.endpoint, o) for o in objs) == "ab"
    whole = answers.response(req, "G", "m", result)
    assert answers.delta_text(req.endpoint, whole) == "ab" and whole["id"] == "G"
    assert json.loads(wire.split("\n\n")[0][6:])["choices"][0]["delta"]["role"] == "assistant"


@pytest.mark.parametrize(("upstream", "base", "same"), [
    ("qwen2.5-coder:1.5b", "/models/Qwen2.5-Coder-1.5B", True),
    ("qwen2.5-coder-1.5b-q4_k_m.gguf", "Qwen/Qwen2.5-Coder-1.5B", True),
    ("qwen2.5-coder:7b", "Qwen/Qwen2.5-Coder-1.5B", False),
    ("llama3", "/m/tiny-llama", False),
])
def test_same_model(upstream: str, base: str, same: bool):
    assert same_model(upstream, base) is same


def test_http_side_and_control_import_without_torch():
    code = ("import sys; import redline.cli.serve, redline.serve.app, redline.serve.proxy, "
            "redline.serve.control; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_proxy_marks_a_chat_prompt_unrendered_without_a_local_tokenizer(tmp_path):
    from redline.config import load_config
    from redline.queue import open_store
    from redline.serve.proxy import Proxy

    (tmp_path / ".git").mkdir()
    config = load_config(tmp_path)
    store = open_store(config)
    proxy = Proxy(config, store, "http://127.0.0.1:1", {"m": "m"}, None)
    req = parse_request("ollama_chat", {"messages": [{"role": "user", "content": "add"}], "path": "a.py"})
    proxy.record(req, "0" * 32, "def add(): ...")
    row = store.get_generation("0" * 32)
    assert row.meta["prompt_unrendered"] is True and row.prompt.text is None and row.meta["path"] == "a.py"
    assert [(m.role, m.content) for m in row.prompt.messages] == [("user", "add")] and row.token_ids is None


def test_proxy_writes_on_the_loop_and_waits_in_a_thread_when_the_queue_is_locked(tmp_path, monkeypatch):
    """The row is written before the answer goes out either way; while another process holds the queue's lock
    the write waits for it off the event loop, so the loop keeps serving."""
    import asyncio
    import sqlite3
    import threading
    import time

    import httpx

    from redline.config import load_config
    from redline.queue import open_store
    from redline.serve.proxy import Proxy, build_proxy_app, open_quick_store

    (tmp_path / ".git").mkdir()
    monkeypatch.setenv("REDLINE_HOME", str(tmp_path / "home"))
    config = load_config(tmp_path)
    store = open_store(config)
    answer = {"choices": [{"index": 0, "text": "    return 1", "finish_reason": "stop"}]}
    proxy = Proxy(config, store, "http://up", {"m": "m"}, None, quick_store=open_quick_store(config),
                  transport=httpx.MockTransport(lambda request: httpx.Response(200, json=answer)))
    threads: list[str] = []
    record = proxy.record
    monkeypatch.setattr(proxy, "record", lambda *a, **k: (threads.append(threading.current_thread().name),
                                                          record(*a, **k))[1])

    async def ask(client: httpx.AsyncClient) -> tuple[str, float]:
        t0 = time.perf_counter()
        r = await client.post("/v1/completions", json={"prompt": "def f():\n"})
        assert r.status_code == 200
        return r.headers["x-redline-generation"], time.perf_counter() - t0

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_proxy_app(proxy)),
                                     base_url="http://127.0.0.1") as client:
            gid, _ = await ask(client)  # a free queue: written on the event loop's thread
            assert store.get_generation(gid) is not None and threads == [threading.current_thread().name]
            lock = sqlite3.connect(config.db_path, isolation_level=None, check_same_thread=False)
            lock.execute("BEGIN IMMEDIATE")  # another writer holds the queue
            threading.Timer(0.5, lock.rollback).start()
            gid, took = await ask(client)
            assert store.get_generation(gid) is not None and took >= 0.4  # waited for the lock, then wrote
            assert len(threads) == 3 and threads[2] != threads[0]  # the quick try, then a worker thread
            lock.close()

    asyncio.run(run())
