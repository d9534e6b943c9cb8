"""didChange latency of the Redline language server: 10,000-line file, 500 tracked spans and 1,000 recently served
completions in the link index, versus the same server with span tracking and linking off, in one run.

Each edit is a real JSON-RPC body that goes through the server's own protocol object (parse, structure,
pygls's document update, Redline's handler), timed from raw bytes to handled; the two servers get the same edits,
interleaved and alternating who goes first, so noise from a busy machine hits both alike. Stdio transfer is
left out: it is the same for both and not the server's work.

With `--pastes F`, a share F of the edits inserts a whole line shaped like the file's: half of them are
recently served completions (linked as they land, a span tracked and queued), half only start like one (looked up
and compared, not linked); the rest is typing.

    python bench/lsp_latency.py [--lines 10000] [--spans 500] [--completions 1000] [--pastes 0] [--edits 3000]
                                [--json out.json]

Goal: p99 ≤ 5 ms and ≤ 1.5× the untracked server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class NullWriter:
    """Where the servers' answers go (the bench reads nothing back)."""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def completion_text(i: int) -> str:
    """The i-th recently served completion: a line shaped like the bench file's own."""
    return f"    served_{i} = compute({i}, 'y' * {i % 80})\n"


def make_edits(n: int, lines: int, completions: int, pastes: float, seed: int = 7
               ) -> list[tuple[int, int, int, int, str]]:
    """A typing-like mix: characters typed, a few deleted, lines broken and joined, anywhere in the file; and a
    share of whole-line inserts, half of them a served completion, half a line that only starts like one."""
    rng = random.Random(seed)
    edits = []
    total = lines
    for _ in range(n):
        line = rng.randrange(total)
        roll = rng.random()
        if completions and roll < pastes:
            i = rng.randrange(completions)
            text = completion_text(i) if rng.random() < 0.5 else completion_text(i).replace("'y'", "'z'")
            edits.append((line, 0, line, 0, text))
            total += 1
        elif roll < 0.70:
            edits.append((line, 2, line, 2, rng.choice("abcdefgh(),.= ")))
        elif roll < 0.85:
            edits.append((line, 2, line, 3, ""))
        elif roll < 0.95:
            edits.append((line, 4, line, 4, "\n    "))
            total += 1
        else:
            edits.append((line, 0, line + 1, 0, ""))
            total -= 1
    return edits


async def start(repo: Path, path: Path, text: str, spans: int, span_lines: int, track: bool) -> Any:
    from redline.lsp_server import inserts
    from redline.lsp_server.server import create_server

    server = create_server()
    server.protocol.set_writer(NullWriter())
    uri = path.as_uri()
    feed(server, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"processId": None, "rootUri": repo.as_uri(), "capabilities": {},
                             "initializationOptions": {"trackSpans": track, "linkCompletions": track,
                                                       "manualClock": True, "builtinCheckers": False}}})
    feed(server, {"jsonrpc": "2.0", "method": "textDocument/didOpen",
                  "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}})
    while uri not in server.docs or not server.docs[uri].ready.is_set():
        await asyncio.sleep(0.01)
    lines = text.count("\n")
    step = lines // spans
    for i in range(spans):
        await inserts.insert(server, {"uri": uri, "generationId": f"bench-{i:04d}",
                             "range": {"start": {"line": i * step + 1, "character": 0},
                                       "end": {"line": i * step + 1 + span_lines, "character": 0}}})
    assert len(server.docs[uri].spans) == spans
    if track:
        await inserts.refresh_recent(server)
    return server


def record_completions(repo: Path, n: int) -> None:
    """`n` completions as `redline serve` records them (origin "server"), in the queue the servers open."""
    from redline.config import load_config
    from redline.ledger import record
    from redline.queue import open_store
    from redline.records import Generation, ModelRef, Prompt

    config = load_config(repo)
    gens = [Generation(prompt_format="raw", prompt=Prompt(text=f"# {i}\n"), completion=completion_text(i),
                       model=ModelRef("bench"), origin="server") for i in range(n)]
    store = open_store(config)
    record(store, config, generations=gens)
    store.close()


def feed(server: Any, message: dict[str, Any]) -> None:
    server.protocol.handle_message(server.protocol.structure_message(message))


def change_body(uri: str, version: int, edit: tuple[int, int, int, int, str]) -> bytes:
    l1, c1, l2, c2, text = edit
    return json.dumps({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
        "textDocument": {"uri": uri, "version": version},
        "contentChanges": [{"range": {"start": {"line": l1, "character": c1}, "end": {"line": l2, "character": c2}},
                            "text": text}]}}).encode()


def handle(server: Any, body: bytes) -> tuple[float, float]:
    """Wall time and this thread's CPU time for one message (CPU time leaves out time the OS gave to others)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    server.protocol.handle_message(server.protocol.structure_message(json.loads(body)))
    return time.perf_counter() - t0, time.thread_time() - c0


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["REDLINE_HOME"] = str(Path(tmp) / "home")
        repo = Path(tmp) / "repo"
        (repo / ".git").mkdir(parents=True)
        text = "".join(f"    value_{i} = compute({i}, 'x' * {i % 80})\n" for i in range(args.lines))
        record_completions(repo, args.completions)
        servers = {}
        for name, track in (("tracked", True), ("untracked", False)):
            path = repo / f"{name}.py"
            path.write_text(text, encoding="utf-8")
            servers[name] = (await start(repo, path, text, args.spans, 3, track), path.as_uri())
        edits = make_edits(args.edits + args.warmup, args.lines, args.completions, args.pastes)
        samples: dict[str, list[float]] = {"tracked": [], "untracked": []}
        cpu: dict[str, list[float]] = {"tracked": [], "untracked": []}
        for i, edit in enumerate(edits):
            order = ("tracked", "untracked") if i % 2 == 0 else ("untracked", "tracked")
            for name in order:
                server, uri = servers[name]
                wall, spent = handle(server, change_body(uri, i + 2, edit))
                if i >= args.warmup:
                    samples[name].append(wall)
                    cpu[name].append(spent)
        tracked_server = servers["tracked"][0]
        tracked_doc = tracked_server.docs[servers["tracked"][1]]
        states = {s: sum(sp.state == s for sp in tracked_doc.spans) for s in ("live", "edited", "deleted")}
        index = len(tracked_doc.repo.recent)
        linked = sum(sp.generation_id.startswith("bench-") is False for sp in tracked_doc.spans)
        await asyncio.sleep(0)  # let the queued span writes start before the pools shut down
        for server, _ in servers.values():
            server.shutdown_pools()
    result: dict[str, Any] = {"lines": args.lines, "spans": args.spans, "edits": args.edits, "span_states": states,
                              "link_index": index, "linked_spans": linked, "pastes": args.pastes}
    for name, xs in samples.items():
        result[name] = {"p50_ms": round(pct(xs, 50), 3), "p99_ms": round(pct(xs, 99), 3),
                        "mean_ms": round(statistics.fmean(xs) * 1000, 3), "max_ms": round(max(xs) * 1000, 3),
                        "cpu_p50_ms": round(pct(cpu[name], 50), 3), "cpu_p99_ms": round(pct(cpu[name], 99), 3)}
    for key in ("p50_ms", "p99_ms", "cpu_p50_ms", "cpu_p99_ms"):
        result[f"ratio_{key[:-3]}"] = round(result["tracked"][key] / result["untracked"][key], 3)
    result["goal_met"] = result["tracked"]["p99_ms"] <= 5.0 and result["ratio_p99"] <= 1.5
    result["load_avg"] = os.getloadavg()[0]
    result["cpus"] = os.cpu_count()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--spans", type=int, default=500)
    parser.add_argument("--completions", type=int, default=1000, help="recent completions in the link index")
    parser.add_argument("--pastes", type=float, default=0.0,
                        help="share of edits that insert a whole line (half of them a served completion)")
    parser.add_argument("--edits", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    ns = parser.parse_args()
    out = asyncio.run(main(ns))
    print(f"{out['lines']} lines, {out['spans']} spans, {out['link_index']} completions in the link index,"
          f" {out['edits']} edits each ({out['pastes']:.0%} whole-line inserts, {out['linked_spans']} linked);"
          f" load average {out['load_avg']:.1f} on {out['cpus']} CPUs")
    for name in ("tracked", "untracked"):
        r = out[name]
        print(f"{name:>9}: wall p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  max {r['max_ms']:.3f} ms"
              f"  | cpu p50 {r['cpu_p50_ms']:.3f} ms  p99 {r['cpu_p99_ms']:.3f} ms")
    print(f"    ratio: wall p50 {out['ratio_p50']:.2f}x  p99 {out['ratio_p99']:.2f}x"
          f"  | cpu p50 {out['ratio_cpu_p50']:.2f}x  p99 {out['ratio_cpu_p99']:.2f}x   spans now {out['span_states']}")
    print(f"     goal: p99 <= 5 ms and <= 1.5x untracked: {'met' if out['goal_met'] else 'NOT met'}")
    if ns.json:
        ns.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
