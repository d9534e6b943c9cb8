"""Secret scrubbing measured end to end: the corpus of `bench/scrub_corpus_data.py` (synthetic secrets in their
providers' real formats, and ordinary code that only looks random) sent through every entry point into every
location a record has, then read back from the queue.

Entry points and the locations each one fills:
  import     completion, prompt, feedback message, feedback detail, review comment, meta   (`import_jsonl`)
  ci ingest  review comment and its diff hunk (GitHub JSON), test failure message/detail (JUnit XML)
  pytest     a failing test holding the value: message, detail, meta.assertion          (`pytest --redline`)
  lsp        completion (the inserted text) and prompt (text above it)   (the server's `redline.recordInsert`)

A secret counts as caught when neither it nor any 12-character piece of it is left anywhere in the stored record;
an ordinary snippet counts as a false positive when a `[REDACTED:` marker shows up in its location. Goals: 100 %
caught in every location, ≤ 2 % false positives, none inside a completion. The corpus was written alongside the
detectors, so the script also scrubs the source lines of a few installed packages (real code, no secrets) and
prints the share of lines changed: a false-positive rate on code nobody tuned for.

    python bench/scrub_corpus.py [--json out.json]
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

from bench.scrub_corpus_data import ORDINARY, SECRETS  # noqa: E402

MARK = "[REDACTED:"


def leaked(stored: str, secret: str) -> bool:
    """The secret, or a 12-character piece of it, is still in `stored` (JSON-escaped forms included)."""
    escaped = json.dumps(secret)[1:-1]
    for s in {secret, escaped}:
        if s in stored or (len(s) >= 16 and any(s[i:i + 12] in stored for i in range(len(s) - 11))):
            return True
    return False


class Tally:
    """Per (entry point, location): secrets caught of total, ordinary snippets redacted of total."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(self, entry: str, location: str) -> dict[str, Any]:
        return self.rows.setdefault((entry, location), {"secrets": 0, "caught": 0, "ordinary": 0, "redacted": 0,
                                                        "missed": [], "false_positives": []})

    def secret(self, entry: str, location: str, provider: str, stored: str, secret: str) -> None:
        r = self.row(entry, location)
        r["secrets"] += 1
        if leaked(stored, secret):
            r["missed"].append(provider)
        else:
            r["caught"] += 1

    def ordinary(self, entry: str, location: str, text: str, stored_field: str | None) -> None:
        r = self.row(entry, location)
        r["ordinary"] += 1
        if stored_field is not None and MARK in stored_field:
            r["redacted"] += 1
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


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    parser.add_argument("--packages", default="requests,click,rich,pygls,huggingface_hub",
                        help="installed packages whose source lines are scrubbed as real code that holds no secret")
    parser.add_argument("--max-files", type=int, default=200, help="files per package")
    args = parser.parse_args()
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        os.environ["REDLINE_HOME"] = str(base / "home")
        for run in (run_import, run_ci_ingest, run_pytest, run_lsp):
            run(base, tally)
    print(f"corpus: {len(SECRETS)} secrets ({len({p for p, _, _ in SECRETS})} kinds), {len(ORDINARY)} ordinary "
          "snippets\n")
    print(f"{'entry point':<10} {'location':<18} {'caught':>12} {'false positives':>16}")
    total_o = total_fp = 0
    completion_fp = 0
    for (entry, location), r in sorted(tally.rows.items()):
        caught = f"{r['caught']}/{r['secrets']} {100 * r['caught'] / max(r['secrets'], 1):5.1f}%"
        fp = f"{r['redacted']}/{r['ordinary']} {100 * r['redacted'] / max(r['ordinary'], 1):4.1f}%"
        print(f"{entry:<10} {location:<18} {caught:>12} {fp:>16}")
        for what in r["missed"]:
            print(f"{'':<30} missed: {what}")
        for what in r["false_positives"]:
            print(f"{'':<30} false positive: {what}")
        total_o += r["ordinary"]
        total_fp += r["redacted"]
        completion_fp += r["redacted"] if location == "completion" else 0
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
    out = {"rows": {f"{e} / {loc}": r for (e, loc), r in tally.rows.items()}, "all_caught": all_caught,
           "false_positive_rate": rate, "completion_false_positives": completion_fp, "real_code": real,
           "goal_met": all_caught and rate <= 0.02 and completion_fp == 0}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
