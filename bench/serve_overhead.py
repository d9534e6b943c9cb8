"""What `redline serve` and `redline proxy` cost, in one run.

1. The embedded server against plain `model.generate` on the same model, device and prompts (greedy, so both
   write the same tokens): time per answer, tokens/s and time to the first token. The server is a real
   `redline serve` process reached over loopback HTTP (streamed, recorded in the ledger); `generate` runs in
   this process. The arms take turns prompt by prompt, in a fresh random order each time, so a busy machine slows
   all alike and no arm always runs just after another (one that runs right after `generate` pays for torch's
   threads still spinning; a fixed rotation once put the streamed arm there every time). Goal: ≤ 1.1× the time.
   The client is the standard library's `http.client`, reading a stream line by line, about as light as the curl
   that llama.vim and minuet-ai.nvim use: on a 2-core machine the client's own work runs beside the model, so
   a heavy client is charged to the server. The same answers not streamed are timed too (the difference is what
   streaming costs), and streamed again read with httpx's `iter_lines` (the difference is that client's own
   work). Two models: the demo's tiny model (~2 ms a token on a CPU, so every fixed cost of a request shows),
   and a random-weight 58M-parameter Llama built here with the same tokenizer, whose ~20 ms a token on such a CPU
   is what a 7B model gives on a 24 GB card: the overhead a user would feel. `--model` (repeatable) replaces
   both.
2. `redline proxy`: the latency it adds on loopback (direct vs through the proxy, one token per answer,
   alternating, the same `http.client` client), p50 and p99. Goal: p99 ≤ 2 ms added. Measured in front of
   `redline serve` with the tiny model (on a 2-core box the proxy's work then competes with torch's threads for
   the cores, so the figure includes that contention); in front of an upstream process that answers at once (the
   proxy's own cost across real processes and sockets), beside a bare forwarder on the same stack in its place
   (the floor: what one more HTTP hop through Starlette and httpx costs on this machine); and in one process, its
   ASGI app called directly in front of an httpx MockTransport upstream, against calling that upstream directly —
   parsing, forwarding, recording in the ledger and re-marking the answer, without the hops.

    python bench/serve_overhead.py [--model DIR ...] [--tokens 64] [--rounds 5] [--proxy-requests 1000]
                                   [--json bench/out/serve_overhead.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "def add(a, b):\n",
    "import os\n\ndef read_config(path):\n",
    "class Stack:\n    def __init__(self):\n",
    "def fibonacci(n):\n    ",
    "for i in range(10):\n",
    "def parse(line: str) -> dict:\n",
    "import json\n\ndef load(path):\n    with open(path) as f:\n",
    "def test_add():\n    assert",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def start(cmd: list[str], repo: Path, env: dict[str, str], ready: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(cmd, cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline().decode()
        if line.startswith(ready):
            import threading

            threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()  # type: ignore[union-attr]
            return proc, line.split()[len(ready.split())]
        if not line and proc.poll() is not None:
            raise SystemExit(f"`{' '.join(cmd[:5])}` did not start")


class Lean:
    """A keep-alive HTTP/1.1 client from the standard library, reading a stream line by line: about as little
    work per answer as curl does for llama.vim and minuet-ai.nvim. On a 2-core machine the client's own parsing
    runs beside the model, so a heavy client makes the server look slower than it is; httpx is timed too."""

    def __init__(self, url: str) -> None:
        host, _, port = url.split("//", 1)[1].partition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)

    def post(self, path: str, body: dict[str, Any]) -> tuple[float, float, str]:
        """(seconds to the last byte, seconds to the first streamed token, generation id)."""
        data = json.dumps(body).encode()
        for attempt in (1, 2):  # the server closes a connection idle for 5 s: then reconnect, and time that try
            t0 = time.perf_counter()
            try:
                self.conn.request("POST", path, data, {"Content-Type": "application/json"})
                r = self.conn.getresponse()
                break
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self.conn.close()
                if attempt == 2:
                    raise
        first = None
        if body.get("stream"):
            while line := r.readline():
                if first is None and line.startswith(b"data: {"):
                    first = time.perf_counter() - t0
        r.read()
        total = time.perf_counter() - t0
        assert r.status == 200, r.status
        return total, first or total, r.getheader("x-redline-generation") or ""

    def close(self) -> None:
        self.conn.close()


def served(client: Lean, prompt: str, tokens: int) -> tuple[float, float, str]:
    """(seconds to the last byte, seconds to the first token, generation id) for one streamed answer."""
    return client.post("/v1/completions", {"prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True})


def served_whole(client: Lean, prompt: str, tokens: int) -> float:
    """Seconds for the same answer not streamed: what streaming itself costs is the difference."""
    return client.post("/v1/completions", {"prompt": prompt, "max_tokens": tokens, "temperature": 0})[0]


def served_httpx(client: Any, url: str, prompt: str, tokens: int) -> float:
    """Seconds for the same answer streamed and read with httpx (`iter_lines`), a heavier Python client."""
    body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True}
    t0 = time.perf_counter()
    with client.stream("POST", url + "/v1/completions", json=body) as r:
        for _ in r.iter_lines():
            pass
    return time.perf_counter() - t0


def plain(model: Any, tok: Any, prompt: str, tokens: int) -> tuple[float, float, int]:
    """The same answer with `model.generate`; time to first token = a one-token `generate`."""
    import torch

    ids = torch.tensor([tok(prompt)["input_ids"]], device=model.device)
    kwargs = {"do_sample": False, "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id,
              "temperature": None, "top_p": None, "top_k": None}
    with torch.inference_mode():
        t0 = time.perf_counter()
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, **kwargs)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, **kwargs)
        total = time.perf_counter() - t0
    return total, first, out.shape[1] - ids.shape[1]


async def proxy_in_process(config: Any, store: Any, n: int) -> tuple[list[float], list[float]]:
    """(direct, through the proxy) seconds per answer, all in this process (see the module doc)."""
    import httpx

    from redline.serve.proxy import Proxy, build_proxy_app, open_quick_store

    answer = {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "m",
              "choices": [{"index": 0, "text": "    return 1", "finish_reason": "stop", "logprobs": None}]}
    mock = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    upstream = httpx.AsyncClient(transport=mock)
    px = Proxy(config=config, store=store, upstream="http://upstream", upstream_models={"m": "m"}, base_model=None,
               transport=mock, quick_store=open_quick_store(config))  # as `Proxy.start` sets it up
    body = {"prompt": "def f():\n", "max_tokens": 8, "temperature": 0}
    direct, via = [], []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_proxy_app(px)),
                                 base_url="http://127.0.0.1") as client:
        for k in range(n + 20):
            for target in ("direct", "via") if k % 2 else ("via", "direct"):
                t0 = time.perf_counter()
                if target == "via":
                    r = await client.post("/v1/completions", json=body)
                else:
                    r = await upstream.post("http://upstream/v1/completions", json=body)
                assert r.status_code == 200
                if k >= 20:  # the first 20 warm up
                    (via if target == "via" else direct).append(time.perf_counter() - t0)
    await upstream.aclose()
    return direct, via


def paced_model(out: Path, world_model: Path) -> Path:
    """A random-weight 58M-parameter Llama with the world model's tokenizer (see the module doc)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(world_model)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=768, num_hidden_layers=8, intermediate_size=2048,
                      num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def server_vs_plain(model_path: str, tmp: Path, tokens: int, rounds: int) -> dict[str, Any]:
    """The embedded server against `model.generate`, alternating prompt by prompt (module doc, part 1)."""
    import httpx

    from redline.config import load_config
    from redline.queue import open_store
    from redline.trainer.model import load_base

    repo, env = make_repo(tmp, model_path)
    server, url = start([sys.executable, "-m", "redline", "serve", "--port", "0"], repo, env, "redline serve:")
    try:
        model, tok = load_base(model_path)
        store = open_store(load_config(repo, env={"REDLINE_HOME": env["REDLINE_HOME"]}))
        rows: list[dict[str, Any]] = []
        lean = Lean(url)
        arms = ("server", "whole", "httpx", "plain")
        order = random.Random(0)
        with httpx.Client(timeout=600) as client:
            for prompt in PROMPTS[:2]:  # warm every path (first CUDA kernels, first HTTP connections)
                served(lean, prompt, tokens)
                served_httpx(client, url, prompt, tokens)
                plain(model, tok, prompt, tokens)
            for _ in range(rounds):
                for i, prompt in enumerate(PROMPTS):
                    got: dict[str, Any] = {}
                    # a fresh random order every time: what runs just before an arm matters on a small machine
                    # (torch's threads spin a while after `generate` returns and take a core from the server), and
                    # a rotation would keep the same arm always just after `generate`
                    for name in order.sample(arms, len(arms)):
                        got[name] = served(lean, prompt, tokens) if name == "server" else \
                            served_whole(lean, prompt, tokens) if name == "whole" else \
                            served_httpx(client, url, prompt, tokens) if name == "httpx" else \
                            plain(model, tok, prompt, tokens)
                    s_total, s_first, gid = got["server"]
                    p_total, p_first, p_n = got["plain"]
                    rows.append({"prompt": i, "server_s": s_total, "server_ttft_s": s_first,
                                 "server_tokens": len(store.get_generation(gid).token_ids or []),
                                 "server_unstreamed_s": got["whole"], "server_httpx_s": got["httpx"],
                                 "plain_s": p_total, "plain_ttft_s": p_first, "plain_tokens": p_n})
        lean.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    s_time, p_time = sum(r["server_s"] for r in rows), sum(r["plain_s"] for r in rows)
    s_tok, p_tok = sum(r["server_tokens"] for r in rows), sum(r["plain_tokens"] for r in rows)
    return {
        "model": model_path, "device": str(model.device), "answers": len(rows), "max_tokens": tokens,
        "plain_ms_per_token": 1e3 * p_time / p_tok,
        "server_tokens_per_s": s_tok / s_time, "plain_tokens_per_s": p_tok / p_time,
        "time_ratio": (s_time / s_tok) / (p_time / p_tok),
        "unstreamed_time_ratio": sum(r["server_unstreamed_s"] for r in rows) / p_time,
        "httpx_time_ratio": sum(r["server_httpx_s"] for r in rows) / p_time,
        "httpx_cost_ms_p50": 1e3 * statistics.median(r["server_httpx_s"] - r["server_s"] for r in rows),
        "stream_cost_ms_p50": 1e3 * statistics.median(r["server_s"] - r["server_unstreamed_s"] for r in rows),
        "server_ttft_ms_p50": 1e3 * statistics.median(r["server_ttft_s"] for r in rows),
        "plain_ttft_ms_p50": 1e3 * statistics.median(r["plain_ttft_s"] for r in rows),
        "same_token_counts": all(r["server_tokens"] == r["plain_tokens"] for r in rows),
        "rows": rows,
    }


def proxy_latency(model_path: str, tmp: Path, requests: int) -> dict[str, Any]:
    """What `redline proxy` adds on loopback: in front of `redline serve`, in front of an upstream process that
    answers at once (the proxy's cost without a model competing for the CPU), and in one process."""
    import asyncio

    from redline.config import load_config
    from redline.queue import open_store

    result: dict[str, Any] = {}
    repo, env = make_repo(tmp, model_path)
    for label, cmd in (("serve", [sys.executable, "-m", "redline", "serve", "--port", "0"]),
                       ("canned", [sys.executable, "-c", CANNED, str(Path(model_path).resolve())])):
        upstream, url = start(cmd, repo, env, "redline serve:" if label == "serve" else "canned upstream:")
        fronts = [("", [sys.executable, "-m", "redline", "proxy", "--upstream", url, "--port", "0"], "redline proxy:")]
        if label == "canned":  # the floor: what the same HTTP stack adds when it only forwards
            fronts.append(("bare", [sys.executable, "-c", BARE, url], "bare forwarder:"))
        try:
            for name, front_cmd, ready in fronts:
                front, furl = start(front_cmd, repo, env, ready)
                try:
                    direct, via = hop_latency(url, furl, requests)
                finally:
                    front.terminate()
                    front.wait(timeout=30)
                key = f"{label}_{name}" if name else label
                result[key] = {"requests": len(via),
                               "direct_ms_p50": 1e3 * percentile(direct, 50),
                               "direct_ms_p99": 1e3 * percentile(direct, 99),
                               "proxy_ms_p50": 1e3 * percentile(via, 50), "proxy_ms_p99": 1e3 * percentile(via, 99)}
                result[key]["added_ms_p50"] = result[key]["proxy_ms_p50"] - result[key]["direct_ms_p50"]
                result[key]["added_ms_p99"] = result[key]["proxy_ms_p99"] - result[key]["direct_ms_p99"]
        finally:
            upstream.terminate()
            upstream.wait(timeout=30)
    config = load_config(repo, env={"REDLINE_HOME": env["REDLINE_HOME"]})
    in_direct, in_via = asyncio.run(proxy_in_process(config, open_store(config), requests))
    result["in_process"] = {"requests": len(in_via),
                            "added_ms_p50": 1e3 * (percentile(in_via, 50) - percentile(in_direct, 50)),
                            "added_ms_p99": 1e3 * (percentile(in_via, 99) - percentile(in_direct, 99))}
    return result


CANNED = """
import json, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from redline.serve.listen import bind

MODELS = json.dumps({"object": "list", "data": [{"id": sys.argv[1], "object": "model"}]}).encode()
CHOICE = {"index": 0, "text": "    return 1", "finish_reason": "stop", "logprobs": None}
ANSWER = json.dumps({"id": "cmpl-1", "object": "text_completion", "created": 0, "model": sys.argv[1],
                     "choices": [CHOICE]}).encode()

async def models(request):
    return Response(MODELS, media_type="application/json")

async def complete(request):
    await request.body()
    return Response(ANSWER, media_type="application/json")

sock = bind("127.0.0.1", 0, allow_remote=False)
print(f"canned upstream: http://127.0.0.1:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
app = Starlette(routes=[Route("/v1/models", models), Route("/v1/completions", complete, methods=["POST"])])
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
"""


BARE = """
import sys
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from redline.serve.listen import bind

client = httpx.AsyncClient()

async def forward(request):
    r = await client.post(sys.argv[1] + request.url.path, content=await request.body(),
                          headers={"Content-Type": "application/json"})
    return Response(r.content, r.status_code, media_type="application/json")

sock = bind("127.0.0.1", 0, allow_remote=False)
print(f"bare forwarder: http://127.0.0.1:{sock.getsockname()[1]}", file=sys.stderr, flush=True)
app = Starlette(routes=[Route("/v1/completions", forward, methods=["POST"])])
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
"""


def hop_latency(url: str, purl: str, requests: int) -> tuple[list[float], list[float]]:
    """(direct, through the proxy) seconds per one-token answer, alternating which goes first."""
    direct, via = [], []
    body = {"prompt": "def f():\n", "max_tokens": 1, "temperature": 0}
    to_upstream, to_proxy = Lean(url), Lean(purl)
    for _ in range(20):
        to_upstream.post("/v1/completions", body)
        to_proxy.post("/v1/completions", body)
    for k in range(requests):
        for client, sink in ([(to_upstream, direct), (to_proxy, via)] if k % 2 else
                             [(to_proxy, via), (to_upstream, direct)]):
            sink.append(client.post("/v1/completions", body)[0])
    to_upstream.close()
    to_proxy.close()
    return direct, via


def make_repo(tmp: Path, model_path: str) -> tuple[Path, dict[str, str]]:
    repo = Path(tempfile.mkdtemp(prefix="repo-", dir=tmp))
    (repo / ".git").mkdir()
    (repo / "redline.toml").write_text(f'model = "{Path(model_path).resolve()}"\n', encoding="utf-8")
    return repo, {**os.environ, "REDLINE_HOME": str(repo / "home")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="model folder (repeatable; default: see the module doc)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--proxy-requests", type=int, default=1000)
    ap.add_argument("--json", default=str(ROOT / "bench/out/serve_overhead.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="redline-serve-bench-"))
    world = ROOT / "bench/world/model"
    models = args.model or [str(world), str(paced_model(tmp / "paced-58m", world))]
    runs = [server_vs_plain(m, tmp, args.tokens, args.rounds) for m in models]
    proxy = proxy_latency(models[0], tmp, args.proxy_requests)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"models": runs, "proxy": proxy}, indent=2) + "\n", encoding="utf-8")
    for run in runs:
        print(f"model {run['model']} on {run['device']} ({run['plain_ms_per_token']:.1f} ms a token with "
              f"generate), {run['answers']} answers of up to {run['max_tokens']} tokens (same token counts: "
              f"{run['same_token_counts']})")
        print(f"  tokens/s: server {run['server_tokens_per_s']:.1f}, plain generate {run['plain_tokens_per_s']:.1f}"
              f" → server time per token {run['time_ratio']:.2f}× generate's (goal ≤ 1.1×); the same answers "
              f"not streamed {run['unstreamed_time_ratio']:.2f}×; streaming's own cost (streamed - unstreamed, "
              f"same prompt) p50 {run['stream_cost_ms_p50']:+.2f} ms an answer")
        print(f"  read with httpx instead (iter_lines): {run['httpx_time_ratio']:.2f}×, the client's own work "
              f"p50 {run['httpx_cost_ms_p50']:+.2f} ms an answer")
        print(f"  time to first token p50: server {run['server_ttft_ms_p50']:.1f} ms (over HTTP), "
              f"plain {run['plain_ttft_ms_p50']:.1f} ms")
    for label, what in (("serve", "proxy in front of `redline serve` (tiny model)"),
                        ("canned", "proxy in front of an upstream process that answers at once"),
                        ("canned_bare", "floor: a bare Starlette + httpx forwarder (no recording) in its place")):
        p = proxy[label]
        print(f"{what}, {p['requests']} one-token answers: direct p50 {p['direct_ms_p50']:.2f} / p99 "
              f"{p['direct_ms_p99']:.2f} ms, through it p50 {p['proxy_ms_p50']:.2f} / p99 "
              f"{p['proxy_ms_p99']:.2f} ms → added p50 {p['added_ms_p50']:.2f} ms, p99 {p['added_ms_p99']:.2f} ms"
              + (" (goal p99 ≤ 2 ms)" if label != "canned_bare" else ""))
    p = proxy["in_process"]
    print(f"proxy's own work, in one process (mock upstream, {p['requests']} answers): added p50 "
          f"{p['added_ms_p50']:.2f} ms, p99 {p['added_ms_p99']:.2f} ms")
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
