"""Would generation in its own process take away what streaming costs? One run, both ways.

`bench/serve_overhead.py` finds that a streamed answer costs a fixed ~2 ms more than the same answer unstreamed
on the tiny world model. One explanation: the event loop's work for a stream holds the GIL that the generating
thread needs. This script puts the same `Engine` behind a minimal Starlette app twice: on a worker thread (as
`redline serve` does) and in its own process with the pieces sent over a pipe (vLLM's API-server split). If the
GIL were the cause, the process arm's streaming cost would be near zero. Nothing is recorded in the ledger here:
both arms leave out the same work.

    python bench/stream_split.py [--rounds 9] [--pairs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.serve_overhead import PROMPTS, make_repo  # noqa: E402

MODEL = ROOT / "bench/world/model"


def make_engine(tmp: str) -> Any:
    from redline.config import load_config
    from redline.trainer.serve.engine import Engine

    repo, env = make_repo(Path(tmp), str(MODEL))
    return Engine(load_config(repo, env={"REDLINE_HOME": env["REDLINE_HOME"]}), MODEL)


def child(conn: Any, tmp: str) -> None:
    """The process arm's generation loop: (job, request) in; pieces and the result out."""
    engine = make_engine(tmp)
    conn.send(("up", 0, None))
    while True:
        job, req = conn.recv()
        on_tokens = (lambda text, job=job: conn.send(("piece", job, text))) if req.stream else None
        out = engine.generate(engine.prepare(req), req, None, on_tokens=on_tokens)
        conn.send(("done", job, out.result))


def serve(mode: str, port: int, tmp: str) -> None:
    """The server process of one arm: uvicorn + Starlette, generation on a thread or in a child process."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from redline.trainer.serve import shapes

    queues: dict[int, asyncio.Queue[tuple[str, Any]]] = {}
    if mode == "process":
        ctx = mp.get_context("spawn")
        conn, theirs = ctx.Pipe()
        ctx.Process(target=child, args=(theirs, tmp), daemon=True).start()
        conn.recv()

        def on_readable() -> None:
            while conn.poll():
                kind, job, value = conn.recv()
                queues[job].put_nowait((kind, value))

        def submit(loop: asyncio.AbstractEventLoop, job: int, req: Any) -> None:
            if not getattr(submit, "reading", False):
                loop.add_reader(conn.fileno(), on_readable)
                submit.reading = True  # type: ignore[attr-defined]
            conn.send((job, req))
    else:
        from concurrent.futures import ThreadPoolExecutor

        executor = ThreadPoolExecutor(1)
        engine = make_engine(tmp)

        def submit(loop: asyncio.AbstractEventLoop, job: int, req: Any) -> None:
            put = queues[job].put_nowait

            def run() -> None:
                on_tokens = (lambda text: loop.call_soon_threadsafe(put, ("piece", text))) if req.stream else None
                out = engine.generate(engine.prepare(req), req, None, on_tokens=on_tokens)
                loop.call_soon_threadsafe(put, ("done", out.result))

            executor.submit(run)

    jobs = iter(range(1, 1 << 62))

    async def handle(request: Any) -> Response:
        req = shapes.parse_request("openai_completions", json.loads(await request.body()))
        job = next(jobs)
        queue = queues[job] = asyncio.Queue()
        submit(asyncio.get_running_loop(), job, req)
        if not req.stream:
            while (got := await queue.get())[0] != "done":
                pass
            return JSONResponse(shapes.response(req, "g", "m", got[1]))

        async def pieces() -> Any:
            first = True
            while True:
                kind, value = await queue.get()
                if kind == "done":
                    yield shapes.final_chunk(req, "g", "m", value)
                    return
                yield shapes.chunk(req, "g", "m", value, first=first)
                first = False

        return StreamingResponse(pieces(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/completions", handle, methods=["POST"])])
    print("up", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def measure(mode: str, rounds: int) -> dict[str, float]:
    """Streamed and unstreamed answers to the same prompts, alternating which goes first; the first round warms."""
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, str(port), tmp],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"up", f"{mode} server did not start"
            url = f"http://127.0.0.1:{port}/v1/completions"
            streamed, whole = [], []
            with httpx.Client(timeout=60) as client:
                for _ in range(100):  # until uvicorn listens
                    try:
                        client.post(url, json={"prompt": "x", "max_tokens": 1, "temperature": 0})
                        break
                    except httpx.TransportError:
                        time.sleep(0.1)
                for r in range(rounds):
                    for i, prompt in enumerate(PROMPTS):
                        body = {"prompt": prompt, "max_tokens": 64, "temperature": 0}
                        got = {}
                        for arm in (("s", "w") if (r + i) % 2 == 0 else ("w", "s")):
                            t0 = time.perf_counter()
                            if arm == "s":
                                with client.stream("POST", url, json={**body, "stream": True}) as resp:
                                    for _ in resp.iter_lines():
                                        pass
                            else:
                                client.post(url, json=body).raise_for_status()
                            got[arm] = time.perf_counter() - t0
                        if r:
                            streamed.append(got["s"])
                            whole.append(got["w"])
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {"answers": len(streamed),
            "stream_cost_ms_p50": 1e3 * statistics.median(s - w for s, w in zip(streamed, whole, strict=True)),
            "ratio": sum(streamed) / sum(whole)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=9, help="rounds over the 8 prompts (the first warms up)")
    ap.add_argument("--pairs", type=int, default=3, help="thread / process runs, alternating")
    args = ap.parse_args()
    for _ in range(args.pairs):
        for mode in ("thread", "process"):
            m = measure(mode, args.rounds)
            print(f"{mode:8} {m['answers']} answers: streaming's own cost p50 {m['stream_cost_ms_p50']:+.2f} ms an "
                  f"answer, streamed / unstreamed time {m['ratio']:.3f}", flush=True)


if __name__ == "__main__":
    main()
