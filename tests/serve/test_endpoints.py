"""Every endpoint, streamed and not, against a real `redline serve`: the id in the body and header names a ledger
row whose prompt is what the model saw (rendered independently here), whose completion is what the client got,
and whose token ids decode to that completion."""

from __future__ import annotations

import httpx
import pytest
from transformers import AutoTokenizer

from tests.serve.conftest import Server, ndjson_events, sse_events

pytestmark = pytest.mark.slow

CHAT = [{"role": "system", "content": "Write Python."}, {"role": "user", "content": "add a and b"}]
PREFIX, SUFFIX = "import os\n\ndef add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"
RAW = "def mul(a, b):\n"

#: endpoint → (body, the prompt format it must be recorded as)
CASES = {
    "/v1/completions": ({"prompt": RAW, "max_tokens": 12, "temperature": 0}, "raw"),
    "/v1/completions#fim": ({"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 12, "temperature": 0}, "fim"),
    "/v1/chat/completions": ({"messages": CHAT, "max_tokens": 12, "temperature": 0}, "chat"),
    "/completion": ({"prompt": RAW, "n_predict": 12, "temperature": 0}, "raw"),
    "/infill": ({"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 12, "temperature": 0,
                 "path": "src/m.py"}, "fim"),
    "/api/generate": ({"prompt": PREFIX, "suffix": SUFFIX, "options": {"num_predict": 12, "temperature": 0}},
                      "fim"),
    "/api/generate#raw": ({"prompt": RAW, "options": {"num_predict": 12, "temperature": 0}}, "raw"),
    "/api/chat": ({"messages": CHAT, "options": {"num_predict": 12, "temperature": 0}}, "chat"),
}


def client_text(path: str, stream: bool, raw: bytes) -> tuple[str, str]:
    """(completion, id) as an editor plugin would read them from the response."""
    if path.startswith("/api/"):
        events = ndjson_events(raw)
        assert all(not e["done"] for e in events[:-1]) and events[-1]["done"] is True
        key = (lambda e: e["message"]["content"]) if path == "/api/chat" else (lambda e: e["response"])
        return "".join(key(e) for e in events), events[-1]["id"]
    if not stream:
        import json

        body = json.loads(raw)
        if path == "/v1/chat/completions":
            return body["choices"][0]["message"]["content"], body["id"]
        if path == "/v1/completions":
            return body["choices"][0]["text"], body["id"]
        assert body["stop"] is True
        return body["content"], body["id"]
    events = sse_events(raw)
    if path.startswith("/v1/"):
        assert raw.rstrip().endswith(b"data: [DONE]")
        ids = {e["id"] for e in events}
        assert len(ids) == 1
        if path == "/v1/chat/completions":
            return "".join(e["choices"][0]["delta"].get("content", "") for e in events), ids.pop()
        return "".join(e["choices"][0]["text"] for e in events), ids.pop()
    assert events[-1]["stop"] is True and all(e["stop"] is False for e in events[:-1])
    return "".join(e["content"] for e in events), events[-1]["id"]


def rendered(tokenizer, fmt: str, body: dict) -> str:
    if fmt == "chat":
        return tokenizer.apply_chat_template(body["messages"], tokenize=False, add_generation_prompt=True)
    if fmt == "fim":
        prefix = body.get("input_prefix", body.get("prompt"))
        suffix = body.get("input_suffix", body.get("suffix"))
        return f"<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>"
    return body["prompt"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", list(CASES))
def test_endpoint_answer_matches_its_ledger_row(server: Server, client: httpx.Client, case: str, stream: bool):
    path = case.split("#")[0]
    body, fmt = CASES[case]
    body = {**body, "stream": stream}
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(
        "application/x-ndjson" if stream and path.startswith("/api/") else
        "text/event-stream" if stream else "application/json")
    text, gid = client_text(path, stream, r.content)
    assert r.headers["x-redline-generation"] == gid
    row = server.world.row(gid)
    tok = AutoTokenizer.from_pretrained(str(server.world.model), local_files_only=True)
    assert row.prompt_format == fmt
    assert row.prompt.text == rendered(tok, fmt, body)
    assert row.completion == text
    assert row.token_ids and len(row.token_ids) == len(row.token_logprobs or [])
    assert tok.decode(row.token_ids, skip_special_tokens=True) == text
    assert all(lp <= 0 for lp in row.token_logprobs or [])
    assert row.adapter_version == "v0001" and row.origin == "server"
    assert row.sampling["temperature"] == 0 and row.sampling["max_tokens"] == 12
    assert row.tokenizer_fingerprint
    if "path" in body:
        assert row.meta["path"] == "src/m.py" and row.insertion is not None and row.insertion.path == "src/m.py"


def test_streamed_and_whole_answers_agree(client: httpx.Client):
    """Greedy decoding: the streamed pieces add up to the same text the non-streamed answer gives."""
    body = {"prompt": RAW, "max_tokens": 20, "temperature": 0}
    whole = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    streamed, _ = client_text("/v1/completions", True, client.post("/v1/completions", json={**body, "stream": True}
                                                                   ).content)
    assert streamed == whole and whole


def test_stop_strings_cut_the_answer_and_the_recorded_tokens(server: Server, client: httpx.Client):
    body = {"prompt": RAW, "max_tokens": 30, "temperature": 0}
    full = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    stop = full[len(full) // 2: len(full) // 2 + 2]
    assert stop.strip(), full
    for stream in (False, True):
        r = client.post("/v1/completions", json={**body, "stop": [stop], "stream": stream})
        text, gid = client_text("/v1/completions", stream, r.content)
        assert stop not in text and full.startswith(text)
        row = server.world.row(gid)
        tok = AutoTokenizer.from_pretrained(str(server.world.model), local_files_only=True)
        assert row.completion == text == tok.decode(row.token_ids, skip_special_tokens=True)


def test_models_lists_the_repo_base_and_versions(server: Server, client: httpx.Client):
    name = server.world.repo_name
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == [name, f"{name}@base", f"{name}@v0002", f"{name}@v0001"]
    assert [m["name"] for m in client.get("/api/tags").json()["models"]] == ids


def test_model_name_selects_a_version_or_the_base(server: Server, client: httpx.Client):
    name = server.world.repo_name
    logprobs = {}
    for model, version in ((name, "v0001"), (f"{name}@v0002", "v0002"), (f"{name}@base", None)):
        r = client.post("/v1/completions", json={"model": model, "prompt": RAW, "max_tokens": 6, "temperature": 0})
        row = server.world.row(r.json()["id"])
        assert row.adapter_version == version
        logprobs[version] = row.token_logprobs[0]
    assert len({round(v, 4) for v in logprobs.values()}) == 3, logprobs


def test_health_and_control_from_another_process(server: Server):
    from redline.serve import control

    config = server.world.config
    info = control.find_server(config)
    assert info is not None and info.pid == server.proc.pid
    assert control.health(config) == {"model": str(server.world.model), "adapter": "v0001", "state": "serving",
                                      "reason": None, "failed": {}}
    assert control.reload(config) is True


def test_a_users_reply_to_a_recorded_answer_becomes_review_feedback(server: Server, client: httpx.Client):
    """Item 5 wired in: the chat history's reply to an answer this server recorded is queued as a review."""
    first = client.post("/v1/chat/completions", json={"messages": CHAT, "max_tokens": 12, "temperature": 0}).json()
    answer = first["choices"][0]["message"]["content"]
    assert answer.strip()
    reply = {"role": "user", "content": "no, use the retry wrapper"}
    history = [*CHAT, {"role": "assistant", "content": answer}, reply]
    r = client.post("/api/chat", json={"messages": history, "stream": False, "options": {"num_predict": 4}})
    assert r.status_code == 200
    from redline.queue import open_store

    store = open_store(server.world.config)
    try:
        reviews = [f for f in store.feedback_for(first["id"]) if f.kind == "review"]
    finally:
        store.close()
    assert [(f.message, f.trust) for f in reviews] == [("no, use the retry wrapper", "normal")]
