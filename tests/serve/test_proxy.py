"""`redline proxy` in front of a second real process (`redline serve`): the bytes a client gets are the ones the
upstream sent for that request (read off the wire between the two) except the id, and the id names a ledger row
holding what the client got; an upstream that is down, answers garbage or runs another model is refused with one
line."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import h11
import httpx
import pytest
from transformers import AutoTokenizer

from tests.serve.conftest import REDLINE, Server, World, start, stop
from tests.serve.test_endpoints import CASES, client_text, rendered

pytestmark = pytest.mark.slow


def proxy_for(upstream: str, world: World) -> tuple[subprocess.Popen[bytes], str]:
    proc = start(["proxy", "--upstream", upstream, "--port", "0"], world, ready="redline proxy:")
    return proc, proc.ready_line.split()[2]  # type: ignore[attr-defined]


class Tee:
    """A TCP relay between the proxy and the upstream that keeps every byte the upstream sends, so a test can
    compare what the client got with what the upstream sent for the same request (the server streams pieces as
    they are ready, so two separate calls may frame the same text differently)."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sent = bytearray()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return
            far = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(near, far, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(far, near, self.sent), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, keep: bytearray | None) -> None:
        try:
            while data := src.recv(65536):
                if keep is not None:
                    keep += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def body(self, method: str, path: str) -> bytes:
        """The body of the one response the upstream sent since `sent` was cleared (chunked or not)."""
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method=method, target=path, headers=[("Host", "upstream"), ("Content-Length", "0")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(bytes(self.sent))
        body = b""
        while not isinstance(event := conn.next_event(), h11.EndOfMessage):
            assert event is not h11.NEED_DATA, "the upstream's response is incomplete"
            if isinstance(event, h11.Data):
                body += event.data
        return body

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def tee(server: Server) -> Iterator[Tee]:
    relay = Tee(server.url)
    yield relay
    relay.close()


@pytest.fixture(scope="module")
def proxy(tee: Tee, server: Server) -> Iterator[str]:
    proc, url = proxy_for(tee.url, server.world)
    yield url
    stop(proc)


# the id is dropped wherever it stands (the proxy adds one to events that had none, e.g. Ollama's pieces)
_IDS = [re.compile(rb'"id": ?"[0-9a-f]{32}", ?'), re.compile(rb', ?"id": ?"[0-9a-f]{32}"')]


def normalised(raw: bytes) -> bytes:
    for pattern in _IDS:
        raw = pattern.sub(b"", raw)
    return raw


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", list(CASES))
def test_proxied_bytes_are_the_upstreams_but_the_id(server: Server, tee: Tee, proxy: str, case: str, stream: bool):
    path = case.split("#")[0]
    body = {**CASES[case][0], "stream": stream}
    tee.sent.clear()
    via = httpx.post(proxy + path, json=body, timeout=60)
    assert via.status_code == 200
    upstream = tee.body("POST", path)
    assert normalised(via.content) == normalised(upstream)
    text, gid = client_text(path, stream, via.content)
    upstream_text, upstream_id = client_text(path, stream, upstream)
    assert via.headers["x-redline-generation"] == gid != upstream_id and text == upstream_text
    row = server.world.row(gid)
    assert row.completion == text and row.meta["proxy"] is True and row.meta["upstream"] == tee.url
    tok = AutoTokenizer.from_pretrained(str(server.world.model), local_files_only=True)
    fmt = CASES[case][1]
    # the base model's tokenizer is local (redline.toml names it), so chat and FIM prompts are rendered
    assert row.prompt.text == rendered(tok, fmt, body) and "prompt_unrendered" not in row.meta


def test_proxy_passes_the_upstreams_model_list(server: Server, proxy: str):
    def listed(url: str) -> dict:
        """The list less each model's `created`: `redline serve` stamps it with the time of the answer (as vLLM
        does), so two answers a second apart differ there."""
        answer = httpx.get(url + "/v1/models").json()
        return {**answer, "data": [{k: v for k, v in m.items() if k != "created"} for m in answer["data"]]}

    assert listed(proxy) == listed(server.url)


class Fake(BaseHTTPRequestHandler):
    """An upstream that lists `models` and answers completions with `answer`."""

    models: ClassVar[list[str]] = []
    answer = b""

    def do_GET(self) -> None:
        self._send(json.dumps({"data": [{"id": m} for m in self.models]}).encode())

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self._send(self.answer)

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def fake(models: list[str], answer: bytes) -> ThreadingHTTPServer:
    handler = type("F", (Fake,), {"models": models, "answer": answer})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.mark.slow
def test_upstream_garbage_then_down_is_502_one_line(serve_world: World):
    httpd = fake(["tiny-llama"], b"<html>oops</html>")
    proc, url = proxy_for(f"http://127.0.0.1:{httpd.server_address[1]}", serve_world)
    try:
        for stream in (False, True):
            r = httpx.post(url + "/v1/completions", json={"prompt": "x", "stream": stream}, timeout=30)
            if stream:  # the headers went out before the garbage: the stream ends with one error event
                assert r.status_code == 200 and b'"code": 502' in r.content
            else:
                assert r.status_code == 502 and "not JSON" in r.json()["error"]["message"]
        httpd.shutdown()
        httpd.server_close()
        r = httpx.post(url + "/v1/completions", json={"prompt": "x"}, timeout=30)
        assert r.status_code == 502 and "\n" not in r.text.strip()
        assert "not answering" in r.json()["error"]["message"]
    finally:
        stop(proc)


def test_upstream_running_another_model_is_refused(serve_world: World):
    httpd = fake(["qwen2.5-coder:7b"], b"{}")
    try:
        r = subprocess.run([*REDLINE, "proxy", "--upstream", f"http://127.0.0.1:{httpd.server_address[1]}",
                            "--port", "0"], cwd=serve_world.repo, env=serve_world.env, capture_output=True,
                           text=True, timeout=60)
    finally:
        httpd.shutdown()
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "qwen2.5-coder:7b" in lines[0] and "tiny-llama" in lines[0]


def test_upstream_down_at_start_is_refused(serve_world: World):
    r = subprocess.run([*REDLINE, "proxy", "--upstream", "http://127.0.0.1:9", "--port", "0"], cwd=serve_world.repo,
                       env=serve_world.env, capture_output=True, text=True, timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "--upstream" in lines[0]
