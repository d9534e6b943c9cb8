"""Issue #30: no web page can use `redline serve` or `redline proxy`. The attack requests of the adversarial pass,
sent to real processes on 127.0.0.1: a rebound Host, a page's Origin, a `text/plain` simple request, a `no-cors`
GET, control endpoints without the token — each refused with 403/415 in one line, and none writes a row (through
the proxy, none reaches the upstream). What a user allows on purpose (`--allow-origin`) works, with CORS answers,
and the proxy passes that Origin on; credentials in `--upstream` are sent as a header and shown nowhere."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest

from redline.queue import open_store
from redline.serve import control
from tests.serve.conftest import Server, World, start, stop

GOOD = {"prompt": "def f(", "max_tokens": 3, "temperature": 0, "path": "src/app.py"}
EVIL = "http://evil.example"

#: (headers, status, a word of the message): what a page can send without a preflight, or after DNS rebinding
ATTACKS = {
    "the repro": ({"Host": "evil.example", "Origin": EVIL, "Content-Type": "text/plain"}, 403, "loopback"),
    "rebound host": ({"Host": "evil.example:8012", "Content-Type": "application/json"}, 403, "DNS rebinding"),
    "page origin": ({"Origin": EVIL, "Content-Type": "application/json"}, 403, "--allow-origin"),
    "null origin": ({"Origin": "null", "Content-Type": "application/json"}, 403, "web pages"),
    "text/plain": ({"Content-Type": "text/plain"}, 415, "application/json"),
    "form": ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
    "no type": ({}, 415, "application/json"),
}


def rows(world: World) -> int:
    store = open_store(world.config)
    try:
        return store.counts()["generations"]
    finally:
        store.close()


def refused(r: httpx.Response, status: int, needle: str) -> None:
    assert r.status_code == status, r.text
    assert "\n" not in r.text.strip() and needle in r.json()["error"]["message"], r.text


def post(url: str, path: str, headers: dict[str, str], body: object = GOOD) -> httpx.Response:
    """Send the exact headers given (httpx would add a Content-Type for `json=`)."""
    return httpx.post(url + path, content=json.dumps(body).encode(), headers=headers, timeout=60)


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("path", ["/v1/completions", "/infill", "/api/generate", "/v1/chat/completions"])
def test_a_web_page_request_is_refused_and_writes_nothing(server: Server, attack: str, path: str):
    headers, status, needle = ATTACKS[attack]
    body = {**GOOD, "messages": [{"role": "user", "content": "hi"}]} if "chat" in path else GOOD
    before = rows(server.world)
    refused(post(server.url, path, headers, body), status, needle)
    assert rows(server.world) == before


def test_after_rebinding_nothing_answers_in_full(server: Server):
    """`/v1/models` and `/redline/health` named the absolute model path to any Host."""
    for path in ("/v1/models", "/api/tags", "/redline/health"):
        r = httpx.get(server.url + path, headers={"Host": "evil.example"}, timeout=30)
        refused(r, 403, "Host")
        assert str(server.world.model) not in r.text
    for host in ("127.0.0.1", "localhost", "[::1]:8012", "LOCALHOST:1"):
        assert httpx.get(server.url + "/v1/models", headers={"Host": host}, timeout=30).status_code == 200


def test_a_no_cors_get_from_another_site_is_refused(server: Server):
    """An `<img src>` or `<script src>` sends no Origin, but a browser says where it came from."""
    for site in ("cross-site", "same-site"):
        refused(httpx.get(server.url + "/v1/models", headers={"Sec-Fetch-Site": site}, timeout=30), 403,
                "another site")
    for site in ("none", "same-origin"):  # typed into the address bar; a page of this server's own (none exist)
        assert httpx.get(server.url + "/v1/models", headers={"Sec-Fetch-Site": site}, timeout=30).status_code == 200


def test_three_hundred_page_requests_write_no_row(server: Server):
    """The pass wrote 300 rows in 1.6 s with `fetch(url, {mode: "no-cors", body})`."""
    before = rows(server.world)
    with httpx.Client(timeout=60) as c:
        for _ in range(300):
            r = c.post(server.url + "/v1/completions", content=json.dumps(GOOD).encode(),
                       headers={"Origin": EVIL, "Content-Type": "text/plain;charset=UTF-8"})
            assert r.status_code == 403
    assert rows(server.world) == before


def test_control_endpoints_need_the_token(server: Server):
    """A page (or another user) cannot unload the model: yield, resume and reload need serve.json's token."""
    url = server.url
    for token in (None, "", "not-the-token"):
        headers = {"Content-Type": "application/json", **({"X-Redline-Token": token} if token is not None else {})}
        for action in ("yield", "resume", "reload"):
            refused(post(url, f"/redline/{action}", headers, {"reason": "pwned"}), 403, "token")
    refused(post(url, "/redline/yield", {"Origin": EVIL, "Content-Type": "text/plain"}, {"reason": "pwned"}), 403,
            "web pages")
    health = control.health(server.world.config)
    assert health is not None and health["state"] == "serving" and health["reason"] is None
    assert httpx.post(url + "/v1/completions", json=GOOD, timeout=60).status_code == 200


def test_serve_json_holds_the_token_and_only_its_user_reads_it(server: Server):
    path = server.world.config.state_dir / "serve.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    info = control.find_server(server.world.config)
    assert info is not None and len(info.token) >= 32
    assert control.reload(server.world.config)  # the daemon's calls carry it


def test_an_abandoned_unstreamed_request_stops_and_leaves_no_row(server: Server):
    """10 clients that send and hang up cost 7.2 CPU-s and left 10 rows; now the worker stops at the next token."""
    body = {"prompt": "def f():\n", "max_tokens": 480, "temperature": 0}
    t0 = time.monotonic()
    full = httpx.post(server.url + "/v1/completions", json={**body, "path": "reference.py"}, timeout=300)
    whole = time.monotonic() - t0
    assert full.status_code == 200 and full.json()["usage"]["completion_tokens"] > 20, "pick a longer answer"
    raw = json.dumps({**body, "path": "abandoned.py"}).encode()
    socks = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(raw) + raw)
        socks.append(s)
    time.sleep(min(0.3, whole / 4))
    for s in socks:
        s.close()
    t0 = time.monotonic()
    assert httpx.post(server.url + "/v1/completions", json={**GOOD, "max_tokens": 1}, timeout=300).status_code == 200
    assert time.monotonic() - t0 < 3 * whole + 5, "the abandoned answers were generated in full"
    store = open_store(server.world.config)
    try:
        assert not [g for g in store.generations() if g.meta.get("path") == "abandoned.py"]
    finally:
        store.close()


# -- what the user allows on purpose ----------------------------------------------------------------------------

EDITOR = "https://editor.example"


@pytest.fixture(scope="module")
def open_to_editor(serve_world: World) -> Iterator[str]:
    proc = start(["serve", "--port", "0", "--allow-origin", EDITOR, "--allow-host", "devbox.lan"], serve_world,
                 ready="redline serve:")
    url = proc.ready_line.split()[2]  # type: ignore[attr-defined]
    yield url
    stop(proc)


def test_an_allowed_origin_gets_cors_answers(serve_world: World, open_to_editor: str):
    url = open_to_editor
    pre = httpx.options(url + "/v1/completions", timeout=30, headers={
        "Origin": EDITOR, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == EDITOR
    r = httpx.post(url + "/v1/completions", json=GOOD, headers={"Origin": EDITOR}, timeout=60)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == EDITOR
    assert "x-redline-generation" in r.headers["access-control-expose-headers"].lower()
    assert serve_world.row(r.headers["x-redline-generation"]).completion == r.json()["choices"][0]["text"]
    refused(httpx.post(url + "/v1/completions", json=GOOD, headers={"Origin": EVIL}, timeout=60), 403, "web pages")
    pre = httpx.options(url + "/redline/yield", timeout=30, headers={
        "Origin": EDITOR, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-redline-token"})
    assert pre.status_code == 400  # even an allowed page may not send the control token
    assert httpx.get(url + "/v1/models", headers={"Host": "devbox.lan:8012"}, timeout=30).status_code == 200
    refused(httpx.get(url + "/v1/models", headers={"Host": "evil.example"}, timeout=30), 403, "Host")


def test_a_bad_allow_origin_is_one_line(serve_world: World):
    import subprocess

    from tests.serve.conftest import REDLINE

    r = subprocess.run([*REDLINE, "serve", "--port", "0", "--allow-origin", "https://editor.example/path"],
                       cwd=serve_world.repo, env=serve_world.env, capture_output=True, text=True, timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "scheme://host" in lines[0], r.stderr


# -- the proxy -----------------------------------------------------------------------------------------------------


class Upstream(BaseHTTPRequestHandler):
    """A model server that lists `tiny-llama`, answers every completion, and keeps the headers it was sent."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        self._send({"data": [{"id": "tiny-llama"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.seen.append(dict(self.headers))
        self._send({"id": "u-1", "choices": [{"index": 0, "text": "x)", "finish_reason": "stop"}]})

    def _send(self, obj: object) -> None:
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    handler = type("U", (Upstream,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{httpd.server_address[1]}", handler.seen
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def proxied(serve_world: World, upstream: tuple[str, list[dict[str, str]]]) -> Iterator[tuple[str, str]]:
    """`redline proxy` with credentials in --upstream and one allowed origin: (its url, its start-up line)."""
    proc = start(["proxy", "--upstream", f"http://admin:S3cr%40tPW@{upstream[0]}", "--port", "0",
                  "--allow-origin", EDITOR], serve_world, ready="redline proxy:")
    yield proc.ready_line.split()[2], proc.ready_line  # type: ignore[attr-defined]
    stop(proc)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_the_proxy_refuses_the_same_before_forwarding(serve_world: World, upstream, proxied, attack: str):
    headers, status, needle = ATTACKS[attack]
    seen = upstream[1]
    before, forwarded = rows(serve_world), len(seen)
    refused(post(proxied[0], "/v1/completions", headers), status, needle)
    assert rows(serve_world) == before and len(seen) == forwarded


def test_the_proxy_forwards_an_allowed_origin_and_hides_credentials(serve_world: World, upstream, proxied):
    """Forwarding only its own fixed headers laundered a page's request for upstreams that check Origin
    (Ollama's OLLAMA_ORIGINS); the start-up line printed the upstream's password."""
    url, line = proxied
    seen = upstream[1]
    assert "S3cr" not in line and "admin" not in line
    r = httpx.post(url + "/v1/completions", json=GOOD, headers={"Origin": EDITOR}, timeout=60)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == EDITOR
    assert seen[-1].get("Origin") == EDITOR
    assert seen[-1].get("Authorization") == "Basic " + __import__("base64").b64encode(b"admin:S3cr@tPW").decode()
    assert httpx.post(url + "/v1/completions", json=GOOD, timeout=60).status_code == 200
    assert "Origin" not in seen[-1]  # an editor plugin's request (no Origin) goes on without one
    row = serve_world.row(r.headers["x-redline-generation"])
    assert "S3cr" not in json.dumps(row.to_dict()) and row.meta["upstream"] == f"http://{upstream[0]}"
