"""Promotion while 8 clients stream: no request fails, each finishes on one adapter (its log-probs are exactly
those of v0001 or of v0002, never a mix), and every request started after the reload returned uses v0002."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from redline.adapters import AdapterRegistry
from tests.serve.conftest import Server, sse_events

BODY = {"prompt": "def add(a, b):\n", "max_tokens": 24, "temperature": 0, "stream": True}


def logprobs_of(server: Server, client: httpx.Client, model: str) -> list[float]:
    r = client.post("/v1/completions", json={**BODY, "stream": False, "model": model})
    return server.world.row(r.json()["id"]).token_logprobs or []


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "clients made no progress"
        time.sleep(0.05)


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) < 1e-4 for x, y in zip(a, b, strict=True))


@pytest.mark.slow
def test_promotion_while_eight_clients_stream(server: Server, client: httpx.Client):
    from redline.serve import control

    world = server.world
    name = world.repo_name
    ref = {"v0001": logprobs_of(server, client, f"{name}@v0001"), "v0002": logprobs_of(server, client, f"{name}@v0002")}
    assert ref["v0001"] and not close(ref["v0001"], ref["v0002"])

    done = threading.Event()
    results: list[dict] = []
    lock = threading.Lock()

    def stream_until_done() -> None:
        with httpx.Client(base_url=server.url, timeout=60.0) as c:
            while not done.is_set():
                started = time.monotonic()
                try:
                    r = c.post("/v1/completions", json=BODY)
                    events = sse_events(r.content)
                    ok = r.status_code == 200 and events[-1]["choices"][0]["finish_reason"] is not None
                    gid = r.headers.get("x-redline-generation")
                except Exception as exc:  # a failed request is what this test looks for
                    ok, gid = False, repr(exc)
                with lock:
                    results.append({"started": started, "ok": ok, "id": gid})

    registry = AdapterRegistry(world.config.adapters_dir)
    threads = [threading.Thread(target=stream_until_done) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(results) >= 8)  # every client is streaming and some answers are on v0001
        registry.promote("v0002")
        assert control.reload(world.config)
        swapped = time.monotonic()
        wait_for(lambda: sum(r["started"] > swapped for r in results) >= 8)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=60)
        registry.promote("v0001")  # later modules expect v0001
        control.reload(world.config)

    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]][:3]
    seen = {"v0001": 0, "v0002": 0}
    for r in results:
        row = world.row(r["id"])
        assert close(row.token_logprobs or [], ref[row.adapter_version]), "mixed or wrong adapter"
        seen[row.adapter_version] += 1
        if r["started"] > swapped:
            assert row.adapter_version == "v0002", "a request started after the swap used the old adapter"
    assert seen["v0001"] >= 8 and seen["v0002"] >= 8, seen
