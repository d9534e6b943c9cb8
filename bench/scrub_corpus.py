"""Secret scrubbing measured end to end: the corpus of `bench/scrub_corpus_data.py` (synthetic secrets in their
providers' real formats, and ordinary code that only looks random) sent through every entry point into every
location a record has, then read back from the queue.

Entry points and the locations each one fills:
  serve      prompt, FIM suffix, chat message, llama.cpp `input_extra`, `Authorization` header (a real
             `redline serve` process over a tiny model; the row each answer's id names)
  proxy      prompt, FIM suffix, chat message, and the completion (an upstream that answers with the value),
             through a real `redline proxy` process
  import     completion, prompt, feedback message, feedback detail, review comment, meta   (`import_jsonl`)
  ci ingest  review comment and its diff hunk (GitHub JSON), test failure message/detail (JUnit XML)
  pytest     a failing test holding the value: message, detail, meta.assertion          (`pytest --redline`)
  lsp        completion (the inserted text) and prompt (text above it)   (the server's `redline.recordInsert`)

A secret counts as caught when neither it nor any 12-character piece of it is left anywhere in the stored record;
an ordinary snippet counts as a false positive when a `[REDACTED:` marker shows up in its location. Goals: 100 %
caught in every location, ≤ 2 % false positives, none inside a completion. The first part of the corpus was
written alongside the detectors; its second part (`MORE_SECRETS`, `MORE_ORDINARY`, issue #30) was written before
reading them, and its figures are reported apart ("apart" columns). The script also scrubs the source lines of a
few installed packages (real code, no secrets) and prints the share of lines changed: a false-positive rate on
code nobody tuned for.

    python bench/scrub_corpus.py [--json out.json] [--entries serve,proxy,import,ci,pytest,lsp]
    python bench/scrub_corpus.py --against 603a67b   # the part written apart, bare, then and now
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scrub_corpus_data import MORE_ORDINARY, MORE_SECRETS, ORDINARY, SECRETS  # noqa: E402

MARK = "[REDACTED:"
_APART_SECRETS = {s for _, _, s in MORE_SECRETS}
_APART_ORDINARY = set(MORE_ORDINARY)


def leaked(stored: str, secret: str) -> bool:
    """The secret, or a 12-character piece of it, is still in `stored` (JSON-escaped forms included)."""
    escaped = json.dumps(secret)[1:-1]
    for s in {secret, escaped}:
        if s in stored or (len(s) >= 16 and any(s[i:i + 12] in stored for i in range(len(s) - 11))):
            return True
    return False


class Tally:
    """Per (entry point, location): secrets caught of total, ordinary snippets redacted of total; the same for the
    entries written apart from the detectors (`apart_*`)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(self, entry: str, location: str) -> dict[str, Any]:
        return self.rows.setdefault((entry, location), {
            "secrets": 0, "caught": 0, "ordinary": 0, "redacted": 0, "apart_secrets": 0, "apart_caught": 0,
            "apart_ordinary": 0, "apart_redacted": 0, "missed": [], "false_positives": []})

    def secret(self, entry: str, location: str, provider: str, stored: str, secret: str) -> None:
        r = self.row(entry, location)
        apart = secret in _APART_SECRETS
        r["secrets"] += 1
        r["apart_secrets"] += apart
        if leaked(stored, secret):
            r["missed"].append(provider + (" (apart)" if apart else ""))
        else:
            r["caught"] += 1
            r["apart_caught"] += apart

    def ordinary(self, entry: str, location: str, text: str, stored_field: str | None) -> None:
        r = self.row(entry, location)
        apart = text in _APART_ORDINARY
        r["ordinary"] += 1
        r["apart_ordinary"] += apart
        if stored_field is not None and MARK in stored_field:
            r["redacted"] += 1
            r["apart_redacted"] += apart
            r["false_positives"].append(text[:60])


def _repo(base: Path, name: str) -> Path:
    root = base / name
    (root / ".git").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("".join(f"line_{i} = {i}\n" for i in range(400)))
    return root


def _open(root: Path) -> Any:
    from redline.config import load_config
    from redline.queue import open_store

    return open_store(load_config(root))


# -- redline serve and redline proxy ------------------------------------------------------------------------------


def _items() -> list[tuple[str, str, str, str]]:
    return [("s", p, t, s) for p, t, s in SECRETS] + [("o", "", t, "") for t in ORDINARY]


def _bench_model(base: Path) -> Path | None:
    """The committed tiny model of bench/world with a long context (so every corpus entry fits a prompt)."""
    import shutil

    from bench.world.pretrain import MODEL_DIR, verify

    source = Path(os.environ.get("REDLINE_DEMO_MODEL") or MODEL_DIR)
    if not (source / "config.json").is_file() or (source == MODEL_DIR and not verify(MODEL_DIR)):
        return None
    model = base / "serve-model"
    shutil.copytree(source, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 8192}))
    return model


def _start(args: list[str], root: Path, ready: str) -> tuple[subprocess.Popen[bytes], str]:
    """A redline process in `root`; (process, its URL) once its start-up line is out."""
    proc = subprocess.Popen([sys.executable, "-m", "redline", *args], cwd=root, env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    while line := proc.stderr.readline().decode():
        if line.startswith(ready):
            import threading

            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
            return proc, line.split()[2]
    raise RuntimeError(f"`redline {' '.join(args)}` did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


#: location → (endpoint, body for the text, the stored field a false positive shows in)
_SERVED: dict[str, tuple[str, Callable[[str], dict[str, Any]], Callable[[Any], str | None]]] = {
    "prompt": ("/v1/completions", lambda t: {"prompt": t}, lambda g: g.prompt.text),
    "fim suffix": ("/v1/completions", lambda t: {"prompt": "def f():\n", "suffix": t}, lambda g: g.prompt.suffix),
    "chat message": ("/v1/chat/completions", lambda t: {"messages": [{"role": "user", "content": t}]},
                     lambda g: g.prompt.messages[0].content if g.prompt.messages else g.prompt.text),
    "input_extra": ("/infill", lambda t: {"input_prefix": "x = ", "input_extra": [{"filename": "a.py", "text": t}]},
                    lambda g: g.prompt.prefix),
}


def _ask(url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> str | None:
    """The generation id of one answer (None when it was refused)."""
    import httpx

    r = httpx.post(url + path, json={**body, "max_tokens": 1, "n_predict": 1, "temperature": 0, "stream": False},
                   headers=headers, timeout=120)
    return r.headers.get("x-redline-generation") if r.status_code == 200 else None


def _tally_rows(tally: Tally, entry: str, root: Path, asked: list[tuple[str, str, str, str, str, str | None]],
                fields: dict[str, Callable[[Any], str | None]]) -> None:
    store = _open(root)
    for kind, provider, text, secret, location, gid in asked:
        g = store.get_generation(gid) if gid else None
        whole = json.dumps(g.to_dict() if g else None, ensure_ascii=False)
        if kind == "s":
            if g is None:
                tally.row(entry, location)["missed"].append(f"{provider} (refused, not recorded)")
                tally.row(entry, location)["secrets"] += 1
            else:
                tally.secret(entry, location, provider, whole, secret)
        else:
            tally.ordinary(entry, location, text, fields[location](g) if g else None)
    store.close()


def run_serve(base: Path, tally: Tally) -> None:
    """Every corpus entry through a real `redline serve` in every place a request carries text."""
    model = _bench_model(base)
    if model is None:
        print("serve: skipped (no tiny model: bench/world/model is missing; set REDLINE_DEMO_MODEL=DIR)")
        return
    root = _repo(base, "serve")
    proc, url = _start(["serve", "--model", str(model), "--port", "0"], root, "redline serve:")
    asked = []
    try:
        for kind, provider, text, secret in _items():
            for location, (path, body, _) in _SERVED.items():
                asked.append((kind, provider, text, secret, location, _ask(url, path, body(text))))
            if text.isascii() and "\n" not in text and "\r" not in text and text == text.strip():
                # a header holds one line of ASCII, and is never recorded
                gid = _ask(url, "/v1/completions", {"prompt": "x"}, {"Authorization": f"Bearer {text}"})
                asked.append((kind, provider, text, secret, "authorization header", gid))
    finally:
        _stop(proc)
    _tally_rows(tally, "serve", root, asked, {**{k: v[2] for k, v in _SERVED.items()},
                                              "authorization header": lambda g: json.dumps(g.to_dict())})


def _echo_upstream() -> Any:
    """A model server that lists one model and answers every completion with the request's `echo` field."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._send({"data": [{"id": "bench"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            text = body.get("echo", "")
            if self.path == "/v1/chat/completions":
                self._send({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})
            elif self.path == "/infill":
                self._send({"content": text, "stop": True})
            else:
                self._send({"choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})

        def _send(self, obj: object) -> None:
            data = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def run_proxy(base: Path, tally: Tally) -> None:
    """Every corpus entry through a real `redline proxy`, in the request and in the upstream's answer."""
    root = _repo(base, "proxy")
    httpd = _echo_upstream()
    proc, url = _start(["proxy", "--upstream", f"http://127.0.0.1:{httpd.server_address[1]}", "--port", "0"], root,
                       "redline proxy:")
    places = {k: v for k, v in _SERVED.items() if k != "input_extra"}
    asked = []
    try:
        for kind, provider, text, secret in _items():
            for location, (path, body, _) in places.items():
                asked.append((kind, provider, text, secret, location, _ask(url, path, body(text))))
            gid = _ask(url, "/v1/completions", {"prompt": "def f():\n", "echo": text})
            asked.append((kind, provider, text, secret, "completion", gid))
    finally:
        _stop(proc)
        httpd.shutdown()
    _tally_rows(tally, "proxy", root, asked, {**{k: v[2] for k, v in places.items()},
                                              "completion": lambda g: g.completion})


# -- import -------------------------------------------------------------------------------------------------------


def run_import(base: Path, tally: Tally) -> None:
    from redline.config import load_config
    from redline.records import Feedback, Generation, Message, ModelRef, Prompt
    from redline.transfer import import_jsonl

    root = _repo(base, "import")
    items = [("s", p, t, s) for p, t, s in SECRETS] + [("o", "", t, "") for t in ORDINARY]
    locations: dict[str, Callable[[str], tuple[Generation, list[Feedback]]]] = {
        "completion": lambda t: (_gen(completion=t), []),
        "prompt": lambda t: (_gen(prompt=t), []),
        "feedback message": lambda t: (_gen(), [Feedback(kind="test_failure", source="pytest", message=t)]),
        "feedback detail": lambda t: (_gen(), [Feedback(kind="test_failure", source="pytest", message="failed",
                                                        detail=t)]),
        "review comment": lambda t: (_gen(), [Feedback(kind="review", source="github-review", message=t)]),
        "meta": lambda t: (_gen(meta={"notes": [{"text": t}]}), [Feedback(kind="diagnostic", source="ruff",
                                                                          message="E1", meta={"context": t})]),
    }

    def _gen(completion: str = "return 1\n", prompt: str = "write f", meta: dict | None = None) -> Generation:
        return Generation(prompt_format="chat", prompt=Prompt(messages=[Message("user", prompt)]),
                          completion=completion, model=ModelRef("bench"), meta=meta or {})

    config = load_config(root)
    store = _open(root)
    for location, make in locations.items():
        made = []
        for kind, provider, text, secret in items:
            g, fbs = make(text)
            made.append((kind, provider, text, secret, g))
        path = base / f"import-{location.replace(' ', '-')}.jsonl"
        path.write_text("".join(json.dumps({"generation": g.to_dict(), "feedback": [f.to_dict() for f in fbs]})
                                + "\n" for (_, _, _, _, g), (_, fbs) in zip(made, (make(m[2]) for m in made),
                                                                             strict=True)))
        import_jsonl(store, config, path)
        for kind, provider, text, secret, g in made:
            stored_g = store.get_generation(g.id)
            fbs = store.feedback_for(g.id)
            whole = json.dumps([stored_g.to_dict() if stored_g else None, [f.to_dict() for f in fbs]],
                               ensure_ascii=False)
            if kind == "s":
                tally.secret("import", location, provider, whole, secret)
            else:
                tally.ordinary("import", location, text, _field(location, stored_g, fbs))
    store.close()


def _field(location: str, g: Any, fbs: list[Any]) -> str | None:
    if location == "completion":
        return g.completion if g else None
    if location == "prompt":
        return g.prompt.messages[0].content if g else None
    if location in ("feedback message", "review comment"):
        return fbs[0].message if fbs else None
    if location == "feedback detail":
        return fbs[0].detail if fbs else None
    return json.dumps([g.meta if g else None, fbs[0].meta if fbs else None], ensure_ascii=False)


# -- ci ingest ----------------------------------------------------------------------------------------------------


def run_ci_ingest(base: Path, tally: Tally) -> None:
    from xml.sax.saxutils import escape, quoteattr

    from redline.ci_hook.ingest import ingest_files
    from redline.config import load_config

    root = _repo(base, "ingest")
    items = [("s", p, t, s) for p, t, s in SECRETS] + [("o", "", t, "") for t in ORDINARY]
    comments = [{"path": "src/app.py", "line": i + 1, "body": text, "diff_hunk": f"@@ -1 +1 @@\n+{text}",
                 "author_association": "OWNER", "user": {"login": "reviewer"}, "id": i}
                for i, (_, _, text, _) in enumerate(items)]
    github = base / "comments.json"
    github.write_text(json.dumps(comments))
    cases = "".join(f'<testcase classname="tests.test_x" name="t_{i}"><failure message={quoteattr(text)}>'
                    f"{escape(text)}</failure></testcase>" for i, (_, _, text, _) in enumerate(items))
    junit = base / "junit.xml"
    junit.write_text(f'<?xml version="1.0"?><testsuite name="x">{cases}</testsuite>')
    config = load_config(root)
    store = _open(root)
    summary = ingest_files(store, config, [github, junit], hints=False)
    assert not summary.failed, [f.error for f in summary.failed]
    by_line = {f.range.start_line: f for f in store.feedback() if f.source == "github-review" and f.range}
    by_test = {f.meta.get("test"): f for f in store.feedback() if f.source == "junit"}
    for i, (kind, provider, text, secret) in enumerate(items):
        review, failure = by_line.get(i), by_test.get(f"t_{i}")
        for location, fb, field in (("review comment", review, review and review.message),
                                    ("meta (diff hunk)", review, review and review.meta.get("diff_hunk")),
                                    ("feedback message", failure, failure and failure.message),
                                    ("feedback detail", failure, failure and failure.detail)):
            whole = json.dumps(fb.to_dict() if fb else None, ensure_ascii=False)
            if kind == "s":
                tally.secret("ci ingest", location, provider, whole, secret)
            else:
                tally.ordinary("ci ingest", location, text, field)
    store.close()


# -- pytest --redline ---------------------------------------------------------------------------------------------


def run_pytest(base: Path, tally: Tally) -> None:
    root = _repo(base, "pytest")
    items = [("s", p, t, s) for p, t, s in SECRETS] + [("o", "", t, "") for t in ORDINARY]
    tests = "".join(f"def test_{i}():\n    value = {text!r}\n    assert value == 'x'\n\n"
                    for i, (_, _, text, _) in enumerate(items))
    (root / "test_corpus.py").write_text(tests)
    lean = ["-p", "no:hypothesispytest", "-p", "no:pytest-lsp", "-p", "no:asyncio", "-p", "no:anyio",
            "-p", "no:cacheprovider", "-p", "no:xdist"]
    subprocess.run([sys.executable, "-m", "pytest", "-q", "--redline", *lean, "test_corpus.py"], cwd=root,
                   capture_output=True, env={**os.environ, "PYTHONPATH": ""}, timeout=600, check=False)
    store = _open(root)
    found = {f.rule.split("::")[-1]: f for f in store.feedback() if f.rule}
    found.update({f.rule.split("::")[-1]: f for g in store.generations() for f in store.feedback_for(g.id)
                  if f.rule})
    for i, (kind, provider, text, secret) in enumerate(items):
        fb = found.get(f"test_{i}")
        whole = json.dumps(fb.to_dict() if fb else None, ensure_ascii=False)
        for location, field in (("pytest assertion", fb and fb.meta.get("assertion")),
                                ("feedback message", fb and fb.message), ("feedback detail", fb and fb.detail)):
            if kind == "s":
                if fb is None:
                    tally.row("pytest", location)["missed"].append(f"{provider} (not recorded)")
                    tally.row("pytest", location)["secrets"] += 1
                else:
                    tally.secret("pytest", location, provider, whole, secret)
            else:
                tally.ordinary("pytest", location, text, field)
    store.close()


# -- the language server's recordInsert ---------------------------------------------------------------------------


class _NullWriter:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def run_lsp(base: Path, tally: Tally) -> None:
    asyncio.run(_lsp(base, tally))


async def _lsp(base: Path, tally: Tally) -> None:
    from redline.lsp_server import inserts
    from redline.lsp_server.server import create_server

    root = _repo(base, "lsp")
    server = create_server()
    server.protocol.set_writer(_NullWriter())
    _feed(server, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                   "params": {"processId": None, "rootUri": root.as_uri(), "capabilities": {},
                              "initializationOptions": {"manualClock": True, "builtinCheckers": False}}})
    items = [("s", p, t, s) for p, t, s in SECRETS] + [("o", "", t, "") for t in ORDINARY]
    made = []
    for i, (kind, provider, text, secret) in enumerate(items):
        path = root / "src" / f"mod_{i}.py"
        body = text if text.endswith("\n") else text + "\n"
        doc = f"import os\n\n{body}\nresult = compute(1)\n"
        path.write_text(doc)
        uri = path.as_uri()
        _feed(server, {"jsonrpc": "2.0", "method": "textDocument/didOpen",
                       "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": doc}}})
        while uri not in server.docs or not server.docs[uri].ready.is_set():
            await asyncio.sleep(0.005)
        n = body.count("\n")
        as_completion = await inserts.insert(server, {"uri": uri, "text": body,
                                                      "range": {"start": {"line": 2, "character": 0}}})
        as_prompt = await inserts.insert(server, {"uri": uri, "text": "result = compute(1)\n",
                                                  "range": {"start": {"line": 3 + n, "character": 0}}})
        made.append((kind, provider, text, secret, as_completion["generationId"], as_prompt["generationId"]))
    await asyncio.sleep(0)
    repo = next(iter(server.repos.values()))
    store = repo.store
    for kind, provider, text, secret, gid_c, gid_p in made:
        for location, gid in (("completion", gid_c), ("prompt", gid_p)):
            g = store.get_generation(gid)
            spans = [s.text for s in store.spans_for_path(g.insertion.path)] if g and g.insertion else []
            whole = json.dumps([g.to_dict() if g else None, spans], ensure_ascii=False)
            field = None if g is None else (g.completion if location == "completion" else g.prompt.prefix)
            if kind == "s":
                tally.secret("lsp", location, provider, whole, secret)
            else:
                tally.ordinary("lsp", location, text, field)
    server.shutdown_pools()


def _feed(server: Any, message: dict[str, Any]) -> None:
    server.protocol.handle_message(server.protocol.structure_message(message))


# -- real code: lines of installed packages, which hold no secrets ----------------------------------------------


def run_real_code(tally: Tally, packages: list[str], max_files: int) -> dict[str, Any]:
    """Every non-blank line of the installed packages' sources through both strengths: the share changed."""
    import importlib.util

    from redline.scrub import scrub

    out: dict[str, Any] = {"packages": [], "lines": 0, "changed_code": 0, "changed_prose": 0, "examples": []}
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        out["packages"].append(name)
        for f in sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.py"))[:max_files]:
            for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
                if not line.strip():
                    continue
                out["lines"] += 1
                for mode, code in (("changed_code", True), ("changed_prose", False)):
                    if scrub(line, code=code) != line:
                        out[mode] += 1
                        if len(out["examples"]) < 12:
                            out["examples"].append(f"{mode[8:]}: {line.strip()[:100]}")
    return out


# -- report -------------------------------------------------------------------------------------------------------


RUNS: dict[str, Callable[[Path, Tally], None]] = {
    "serve": run_serve, "proxy": run_proxy, "import": run_import, "ci": run_ci_ingest, "pytest": run_pytest,
    "lsp": lambda base, tally: run_lsp(base, tally)}


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} {100 * n / max(d, 1):5.1f}%"


def against(rev: str) -> dict[str, Any]:
    """The part written apart from the detectors, bare (no entry point), through `redline/scrub.py` as it was at git
    revision `rev`, and as it is now: what that part found missing."""
    import importlib.util

    source = subprocess.run(["git", "show", f"{rev}:redline/scrub.py"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "scrub_then.py").write_text(source)
        spec = importlib.util.spec_from_file_location("scrub_then", Path(tmp) / "scrub_then.py")
        assert spec is not None and spec.loader is not None
        then = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(then)
    from redline.scrub import scrub as now

    out: dict[str, Any] = {}
    for label, scrub in ((rev, then.scrub), ("now", now)):
        for code in (True, False):
            missed = [p for p, text, secret in MORE_SECRETS if leaked(scrub(text, code=code), secret)]
            touched = [t for t in MORE_ORDINARY if scrub(t, code=code) != t]
            key = f"{label} {'code' if code else 'prose'}"
            out[key] = {"caught": len(MORE_SECRETS) - len(missed), "secrets": len(MORE_SECRETS),
                        "false_positives": len(touched), "ordinary": len(MORE_ORDINARY), "missed": missed}
            print(f"{key:<20} caught {_pct(len(MORE_SECRETS) - len(missed), len(MORE_SECRETS))}  "
                  f"false positives {_pct(len(touched), len(MORE_ORDINARY))}")
    return out


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    parser.add_argument("--entries", default=",".join(RUNS), help="entry points to run (comma-separated)")
    parser.add_argument("--packages", default="requests,click,rich,pygls,huggingface_hub",
                        help="installed packages whose source lines are scrubbed as real code that holds no secret")
    parser.add_argument("--max-files", type=int, default=200, help="files per package")
    parser.add_argument("--against", metavar="REV",
                        help="only compare the part written apart, bare, with redline/scrub.py at git revision REV")
    args = parser.parse_args()
    if args.against:
        return against(args.against)
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        os.environ["REDLINE_HOME"] = str(base / "home")
        for name in args.entries.split(","):
            RUNS[name](base, tally)
    print(f"corpus: {len(SECRETS)} secrets ({len({p for p, _, _ in SECRETS})} kinds), {len(ORDINARY)} ordinary "
          f"snippets; written apart from the detectors: {len(MORE_SECRETS)} secrets "
          f"({len({p for p, _, _ in MORE_SECRETS})} kinds), {len(MORE_ORDINARY)} look-alikes\n")
    print(f"{'entry point':<10} {'location':<20} {'caught':>14} {'false positives':>14} {'caught apart':>14} "
          f"{'fp apart':>12}")
    total_o = total_fp = 0
    completion_fp = 0
    entries: dict[str, dict[str, int]] = {}
    for (entry, location), r in sorted(tally.rows.items()):
        print(f"{entry:<10} {location:<20} {_pct(r['caught'], r['secrets']):>14} "
              f"{_pct(r['redacted'], r['ordinary']):>14} {_pct(r['apart_caught'], r['apart_secrets']):>14} "
              f"{_pct(r['apart_redacted'], r['apart_ordinary']):>12}")
        for what in r["missed"]:
            print(f"{'':<32} missed: {what}")
        for what in r["false_positives"]:
            print(f"{'':<32} false positive: {what}")
        e = entries.setdefault(entry, dict.fromkeys(("secrets", "caught", "ordinary", "redacted", "apart_secrets",
                                                     "apart_caught", "apart_ordinary", "apart_redacted"), 0))
        for k in e:
            e[k] += r[k]
        total_o += r["ordinary"]
        total_fp += r["redacted"]
        completion_fp += r["redacted"] if location == "completion" else 0
    print(f"\n{'entry point':<10} {'caught':>16} {'false positives':>16} {'caught apart':>16} {'fp apart':>14}")
    for entry, e in entries.items():
        print(f"{entry:<10} {_pct(e['caught'], e['secrets']):>16} {_pct(e['redacted'], e['ordinary']):>16} "
              f"{_pct(e['apart_caught'], e['apart_secrets']):>16} {_pct(e['apart_redacted'], e['apart_ordinary']):>14}")
    all_caught = all(r["caught"] == r["secrets"] for r in tally.rows.values())
    rate = total_fp / max(total_o, 1)
    print(f"\nall secrets caught in every location: {all_caught}; false positives overall {100 * rate:.2f}% "
          f"(goal ≤ 2 %); in completions: {completion_fp}")
    real = run_real_code(tally, [p for p in args.packages.split(",") if p], args.max_files)
    n = max(real["lines"], 1)
    print(f"\nreal code ({', '.join(real['packages'])}): {real['lines']} lines; changed as code (prompt, "
          f"completion) {real['changed_code']} ({100 * real['changed_code'] / n:.3f}%), as prose (feedback, meta) "
          f"{real['changed_prose']} ({100 * real['changed_prose'] / n:.3f}%)")
    for example in real["examples"]:
        print(f"  {example}")
    out = {"rows": {f"{e} / {loc}": r for (e, loc), r in tally.rows.items()}, "entries": entries,
           "all_caught": all_caught, "false_positive_rate": rate, "completion_false_positives": completion_fp,
           "real_code": real, "goal_met": all_caught and rate <= 0.02 and completion_fp == 0}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
