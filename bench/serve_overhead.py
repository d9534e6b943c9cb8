"""What `redline serve` and `redline proxy` cost, in one run.

1. The embedded server against plain `model.generate` on the same model, device and prompts (greedy, so both
   write the same tokens): time per answer, tokens/s and time to the first token. The server is a real
   `redline serve` process reached over loopback HTTP (streamed, recorded in the ledger); `generate` runs in
   this process. The two alternate prompt by prompt so a busy machine slows both alike. Goal: ≤ 1.1× the time.
2. `redline proxy` in front of that server: the latency it adds on loopback (direct vs through the proxy, one
   token per answer, alternating), p50 and p99. Goal: p99 ≤ 2 ms added. On a busy machine each extra process
   hop waits for the scheduler, so the proxy's own work is also timed in one process: its ASGI app called
   directly, in front of an upstream that answers at once (httpx MockTransport), against calling that upstream
   directly — parsing, forwarding, recording in the ledger and re-marking the answer, without the hops.

    python bench/serve_overhead.py [--model bench/world/model] [--tokens 64] [--rounds 5] [--proxy-requests 300]
                                   [--json bench/out/serve_overhead.json]
"""

from __future__ import annotations

import argparse
import json
import os
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


def start(args: list[str], repo: Path, env: dict[str, str], ready: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, "-m", "redline", *args], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline().decode()
        if line.startswith(ready):
            import threading

            threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()  # type: ignore[union-attr]
            return proc, line.split()[2]
        if not line and proc.poll() is not None:
            raise SystemExit(f"`redline {' '.join(args)}` did not start")


def served(client: Any, url: str, prompt: str, tokens: int) -> tuple[float, float, int]:
    """(seconds to the last byte, seconds to the first token, tokens) for one streamed answer."""
    body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True}
    t0 = time.perf_counter()
    first = None
    with client.stream("POST", url + "/v1/completions", json=body) as r:
        for line in r.iter_lines():
            if first is None and line.startswith("data: {"):
                first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    gid = r.headers["x-redline-generation"]
    return total, first or total, gid


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

    from redline.trainer.serve.proxy import Proxy, build_proxy_app

    answer = {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "m",
              "choices": [{"index": 0, "text": "    return 1", "finish_reason": "stop", "logprobs": None}]}
    upstream = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, json=answer)))
    px = Proxy(config=config, store=store, upstream="http://upstream", upstream_models={"m": "m"}, base_model=None,
               client=upstream)
    body = {"prompt": "def f():\n", "max_tokens": 8, "temperature": 0}
    direct, via = [], []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_proxy_app(px)),
                                 base_url="http://proxy") as client:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "bench/world/model"))
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--proxy-requests", type=int, default=300)
    ap.add_argument("--json", default=str(ROOT / "bench/out/serve_overhead.json"))
    args = ap.parse_args()

    import httpx

    from redline.config import load_config
    from redline.queue import open_store
    from redline.trainer.model import load_base

    tmp = Path(tempfile.mkdtemp(prefix="redline-serve-bench-"))
    repo = tmp / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "redline.toml").write_text(f'model = "{Path(args.model).resolve()}"\n', encoding="utf-8")
    env = {**os.environ, "REDLINE_HOME": str(tmp / "home")}
    server, url = start(["serve", "--port", "0"], repo, env, "redline serve:")
    proxy, purl = start(["proxy", "--upstream", url, "--port", "0"], repo, env, "redline proxy:")
    try:
        model, tok = load_base(args.model)
        store = open_store(load_config(repo, env={"REDLINE_HOME": str(tmp / "home")}))
        rows: list[dict[str, Any]] = []
        with httpx.Client(timeout=120) as client:
            for prompt in PROMPTS[:2]:  # warm both paths (first CUDA kernels, first HTTP connection)
                served(client, url, prompt, args.tokens)
                plain(model, tok, prompt, args.tokens)
            for r in range(args.rounds):
                for i, prompt in enumerate(PROMPTS):
                    order = [("server", served), ("plain", plain)]
                    if (r + i) % 2:
                        order.reverse()
                    got: dict[str, Any] = {}
                    for name, fn in order:
                        got[name] = fn(client, url, prompt, args.tokens) if name == "server" else \
                            fn(model, tok, prompt, args.tokens)
                    s_total, s_first, gid = got["server"]
                    n = len(store.get_generation(gid).token_ids or [])
                    p_total, p_first, p_n = got["plain"]
                    rows.append({"prompt": i, "server_s": s_total, "server_ttft_s": s_first, "server_tokens": n,
                                 "plain_s": p_total, "plain_ttft_s": p_first, "plain_tokens": p_n})

            direct, via = [], []
            body = {"prompt": "def f():\n", "max_tokens": 1, "temperature": 0}
            for _ in range(20):
                client.post(url + "/v1/completions", json=body)
                client.post(purl + "/v1/completions", json=body)
            for k in range(args.proxy_requests):
                for target, sink in ([(url, direct), (purl, via)] if k % 2 else [(purl, via), (url, direct)]):
                    t0 = time.perf_counter()
                    assert client.post(target + "/v1/completions", json=body).status_code == 200
                    sink.append(time.perf_counter() - t0)
        import asyncio

        config = load_config(repo, env={"REDLINE_HOME": str(tmp / "home")})
        in_direct, in_via = asyncio.run(proxy_in_process(config, store, args.proxy_requests))
    finally:
        for proc in (proxy, server):
            proc.terminate()
            proc.wait(timeout=30)

    s_time, p_time = sum(r["server_s"] for r in rows), sum(r["plain_s"] for r in rows)
    s_tok, p_tok = sum(r["server_tokens"] for r in rows), sum(r["plain_tokens"] for r in rows)
    result = {
        "model": args.model, "device": str(model.device), "answers": len(rows), "max_tokens": args.tokens,
        "server_tokens_per_s": s_tok / s_time, "plain_tokens_per_s": p_tok / p_time,
        "time_ratio": (s_time / s_tok) / (p_time / p_tok),
        "server_ttft_ms_p50": 1e3 * statistics.median(r["server_ttft_s"] for r in rows),
        "plain_ttft_ms_p50": 1e3 * statistics.median(r["plain_ttft_s"] for r in rows),
        "same_token_counts": all(r["server_tokens"] == r["plain_tokens"] for r in rows),
        "proxy_requests": len(via),
        "direct_ms_p50": 1e3 * percentile(direct, 50), "direct_ms_p99": 1e3 * percentile(direct, 99),
        "proxy_ms_p50": 1e3 * percentile(via, 50), "proxy_ms_p99": 1e3 * percentile(via, 99),
    }
    result["proxy_added_ms_p50"] = result["proxy_ms_p50"] - result["direct_ms_p50"]
    result["proxy_added_ms_p99"] = result["proxy_ms_p99"] - result["direct_ms_p99"]
    result["inproc_direct_ms_p50"] = 1e3 * percentile(in_direct, 50)
    result["inproc_proxy_added_ms_p50"] = 1e3 * (percentile(in_via, 50) - percentile(in_direct, 50))
    result["inproc_proxy_added_ms_p99"] = 1e3 * (percentile(in_via, 99) - percentile(in_direct, 99))
    result["rows"] = rows
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"model {args.model} on {result['device']}, {len(rows)} answers of up to {args.tokens} tokens "
          f"(same token counts: {result['same_token_counts']})")
    print(f"tokens/s: server {result['server_tokens_per_s']:.1f}, plain generate {result['plain_tokens_per_s']:.1f}"
          f" → server time per token {result['time_ratio']:.2f}× generate's (goal ≤ 1.1×)")
    print(f"time to first token p50: server {result['server_ttft_ms_p50']:.1f} ms (over HTTP), "
          f"plain {result['plain_ttft_ms_p50']:.1f} ms")
    print(f"proxy, {len(via)} one-token answers: direct p50 {result['direct_ms_p50']:.2f} / p99 "
          f"{result['direct_ms_p99']:.2f} ms, through the proxy p50 {result['proxy_ms_p50']:.2f} / p99 "
          f"{result['proxy_ms_p99']:.2f} ms → added p50 {result['proxy_added_ms_p50']:.2f} ms, "
          f"p99 {result['proxy_added_ms_p99']:.2f} ms (goal p99 ≤ 2 ms)")
    print(f"proxy's own work, in one process (mock upstream, {len(in_via)} answers): added p50 "
          f"{result['inproc_proxy_added_ms_p50']:.2f} ms, p99 {result['inproc_proxy_added_ms_p99']:.2f} ms")
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
