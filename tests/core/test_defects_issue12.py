"""Issue #12, "nothing secret stored, nothing lost, no traceback": each test names the defect it pins and feeds the
issue's reproduction in as its input (core: records, scrubber, queue, import/export, permissions)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redline.config import load_config
from redline.errors import QueueError, RecordError
from redline.queue import open_store
from redline.queue.store import SQLiteStore
from redline.records import Feedback, Generation, Insertion, Range, Span, sha256_text
from redline.scrub import scrub
from redline.transfer import import_jsonl
from tests.core.helpers import make_feedback, make_generation

REDLINE = [sys.executable, "-m", "redline"]
AKIA = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    return root


def cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REDLINE, *args], cwd=repo, capture_output=True, text=True, timeout=120)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("redline: error:"), proc.stderr
    return lines[0]


def write_jsonl(path: Path, *lines: object) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def line_of(g: Generation, *fbs: Feedback) -> dict[str, object]:
    return {"generation": g.to_dict(), "feedback": [f.to_dict() for f in fbs]}


# -- 1. secrets stored unscrubbed in `meta` ---------------------------------------------------------------------


def test_defect_1_meta_is_scrubbed_at_the_write_path(repo: Path) -> None:
    store = open_store(load_config(repo))
    g = make_generation(1)
    g.meta = {"notes": [{"deep": f"key = '{AKIA}'"}], "env": "DB_PASSWORD=Sup3r-S3cret-9"}
    fb = make_feedback(g.id, meta={"assertion": f"assert '{AKIA}' == 'x'",
                                   "diff_hunk": '+ token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"'})
    store.add([g], [fb])
    raw = "".join(r[0] for r in store._conn().execute("SELECT body FROM generations UNION ALL "  # type: ignore[attr-defined]
                                                      "SELECT body FROM feedback"))
    store.close()
    for secret in (AKIA, "Sup3r-S3cret-9", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"):
        assert secret not in raw


def test_defect_1_scrubbed_completion_drops_token_ids_and_is_not_trained_on(repo: Path) -> None:
    from redline.trainer.data import examples_from_store

    store = open_store(load_config(repo))
    g = make_generation(2, completion=f'aws_key = "{AKIA}"\n')
    g.split = "train"
    store.add([g], [make_feedback(g.id)])
    stored = store.get_generation(g.id)
    assert stored is not None and AKIA not in stored.completion
    assert stored.token_ids is None and stored.meta["scrubbed"] is True
    assert examples_from_store(store, split="train") == []
    store.close()


# -- 2. scrubber misses -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "secret"), [
    ("DB_PASSWORD=hunter2hunter2", "hunter2hunter2"),
    ("SECRET_KEY=django-insecure-x8f2k", "django-insecure-x8f2k"),
    ("REDIS_URL=redis://:s3cretPw@cache:6379/0", "s3cretPw"),
    ("HF_HUB = hf_AbCdEfGhIjKlMnOpQrStUvWxYz12345678", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz12345678"),
    ("db: {user: app, password: s3cr3t-pw}", "s3cr3t-pw"),
    # pytest shortened the value: 12 of the key id's 20 characters
    ("AssertionError: assert 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxAKIAIOSFODNN...' == 'x'", "AKIAIOSFODNN"),
])
@pytest.mark.parametrize("code", [True, False])
def test_defect_2_scrubber_misses_are_caught(text: str, secret: str, code: bool) -> None:
    assert secret not in scrub(text, code=code)


# -- 3. false positives rewrite code ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "git checkout 3f786850e387550fdab836ed7e6dc881de23001b",
    'request_id = "0192f1e0c4a87d3e9b5f2a1c6d8e4f70"',
    'request_id = "0192f1e0-c4a8-7d3e-9b5f-2a1c6d8e4f70"',
    'EXPECTED = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"',
    'assert b64encode(b"the quick brown fox jumps over") == b"dGhlIHF1aWNrIGJyb3duIGZveCBqdW1wcyBvdmVy"',
    '"integrity": "sha512-9R6z5KxLzM2Ew9V3N0Rf6m8Hq2yJbC1XwT4uYpGk7sLdAe0oZiQnF3vB5hJcK8tM1rS6wU2yX4zA7bD9eG0fH1A=="',
    "FROM python:3.12-slim@sha256:2b8e3c4d5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c",
    "result = convertUtf8BytesToBase64UrlString2(payload)",
])
@pytest.mark.parametrize("code", [True, False])
def test_defect_3_ordinary_code_is_not_redacted(text: str, code: bool) -> None:
    assert scrub(text, code=code) == text


def test_defect_3_completion_with_an_identifier_keeps_its_token_ids(repo: Path) -> None:
    store = open_store(load_config(repo))
    g = make_generation(3, completion="return convertUtf8BytesToBase64UrlString2(data)\n")
    store.add([g])
    stored = store.get_generation(g.id)
    assert stored is not None and stored.completion == g.completion and stored.token_ids == [1, 2, 3]
    store.close()


# -- 4. tracebacks instead of one line -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["surrogate", "sqlite_int", "huge_int", "deep"])
def test_defect_4_bad_values_are_one_line_and_write_nothing(repo: Path, tmp_path: Path, case: str) -> None:
    g = make_generation(4).to_dict()
    if case == "surrogate":
        g["completion"] = "x\ud800y"
        text = json.dumps({"generation": g, "feedback": []})
    elif case == "sqlite_int":
        g["insertion"] = {"path": "a.py", "range": {"start_line": 2**70, "end_line": 2**70 + 1}}
        text = json.dumps({"generation": g, "feedback": []})
    elif case == "huge_int":
        text = json.dumps({"generation": g, "feedback": []}).replace('"task": 4', '"task": ' + "9" * 5000)
    else:
        text = json.dumps({"generation": g, "feedback": []}).replace('"task": 4', '"task": ' + "[" * 200_000
                                                                      + "]" * 200_000)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text + "\n", encoding="utf-8", errors="surrogatepass")
    line = one_line_error(cli(repo, "import", str(bad)))
    assert "bad.jsonl" in line and "line 1" in line
    assert cli(repo, "status", "--json").returncode == 0
    assert open_store(load_config(repo)).counts()["generations"] == 0


def test_defect_4_store_refuses_a_surrogate_with_a_record_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.sqlite3")
    with pytest.raises(RecordError, match="lone surrogate"):
        store.add(spans=[Span("g1", "a.py", Range(0, 1), "\udc80")])  # what the LSP's recordInsert sent
    assert store.counts()["spans"] == 0


# -- 6. full disk -------------------------------------------------------------------------------------------------


def test_defect_6_full_disk_is_one_line_with_sizes_and_nothing_half_written(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "q.sqlite3")
    store.add([make_generation(0)])
    pages = store._conn().execute("PRAGMA page_count").fetchone()[0]  # type: ignore[attr-defined]
    store._conn().execute(f"PRAGMA max_page_count = {pages}")  # type: ignore[attr-defined]
    big = [make_generation(i, completion="x = 1\n" * 2000) for i in range(1, 20)]
    with pytest.raises(QueueError) as err:
        store.add(big)
    line = err.value.one_line()
    assert "disk full at" in line and "MiB free" in line and "MiB needed" in line and "state_dir" in line
    assert "rollback" not in line and "\n" not in line
    assert store.counts()["generations"] == 1


# -- 8. a killed `redline train` does not resume --------------------------------------------------------------------


def test_defect_8_claims_of_a_killed_process_are_taken_over_at_once(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    store = SQLiteStore(path)
    gens = [make_generation(i) for i in range(3)]
    store.add(gens, [make_feedback(g.id, i) for i, g in enumerate(gens)])
    script = ("import sys, os, time; from redline.queue.store import SQLiteStore;"
              "c = SQLiteStore(sys.argv[1]).claim('redline-train'); print(len(c.generation_ids), flush=True);"
              "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "3"
    assert store.claim("rerun").generation_ids == []  # the owner is alive: its claim stands
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    taken = store.claim("rerun")  # default stale_after_s is an hour: the takeover is by liveness, not age
    assert sorted(taken.generation_ids) == sorted(g.id for g in gens)
    assert store.ack(taken.token) == 3 and store.counts()["states"] == {"trained": 3}


# -- 12. duplicate ids in one import -------------------------------------------------------------------------------


def test_defect_12_two_generations_with_one_id_refuse_the_file(repo: Path, tmp_path: Path) -> None:
    a = make_generation(1)
    b = make_generation(2)
    b.id = a.id
    path = write_jsonl(tmp_path / "dup.jsonl", line_of(a, make_feedback(None, 1)), line_of(b, make_feedback(None, 2)))
    config = load_config(repo)
    store = open_store(config)
    with pytest.raises(RecordError, match="lines 1 and 2 hold different generations"):
        import_jsonl(store, config, path)
    assert store.counts()["generations"] == 0
    same = write_jsonl(tmp_path / "same.jsonl", line_of(a), line_of(a, make_feedback(None, 3)))
    assert import_jsonl(store, config, same).generations == 1


# -- 13. loose validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "field"), [
    (lambda g: g["insertion"].update(range={"start_line": -1, "end_line": 2}), "insertion.range"),
    (lambda g: g["insertion"].update(range={"start_line": 5, "end_line": 2}), "ends before it starts"),
    (lambda g: g.update(id="../../etc/passwd"), "generation.id"),
    (lambda g: g.update(id="has space"), "generation.id"),
    (lambda g: g.update(schema_version=99), "schema_version"),
    (lambda g: g["insertion"].update(path="../../../etc/passwd"), "insertion"),
    (lambda g: g["insertion"].update(path="/etc/passwd"), "insertion"),
    (lambda g: g["insertion"].update(path="C:/Windows/win.ini"), "insertion"),
    (lambda g: g["insertion"].update(path="\\\\server\\share\\x.py"), "insertion"),
    (lambda g: g.update(token_logprobs=[float("nan"), -0.2, -0.3]), "token_logprobs[0]"),
    (lambda g: g.update(token_logprobs=[float("-inf"), -0.2, -0.3]), "token_logprobs[0]"),
])
def test_defect_13_loose_values_are_refused_naming_the_field(change, field: str) -> None:
    g = make_generation(13, path="src/a.py").to_dict()
    change(g)
    with pytest.raises(RecordError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Generation.from_dict(g)


def test_defect_13_ids_of_other_tools_are_accepted() -> None:
    for gid in ("raw-1", "g", "0192f1e0-c4a8-7d3e-9b5f-2a1c6d8e4f70", "chatcmpl-9x8:y.z"):
        g = make_generation(1).to_dict()
        g["id"] = gid
        assert Generation.from_dict(g).id == gid


def test_defect_13_nan_never_reaches_export(repo: Path, tmp_path: Path) -> None:
    g = make_generation(1).to_dict()
    bad = tmp_path / "nan.jsonl"
    bad.write_text(json.dumps({"generation": g, "feedback": []}).replace("-0.1", "NaN") + "\n")
    assert "token_logprobs[0]" in one_line_error(cli(repo, "import", str(bad)))


def test_defect_13_import_accepts_a_utf8_bom_like_ci_ingest(repo: Path, tmp_path: Path) -> None:
    g = make_generation(1)
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(line_of(g, make_feedback(g.id))).encode() + b"\n")
    config = load_config(repo)
    assert import_jsonl(open_store(config), config, path).generations == 1


# -- 10. size caps (import side) ----------------------------------------------------------------------------------


def test_defect_10_gzip_bomb_stops_at_the_ratio_cap(repo: Path, tmp_path: Path) -> None:
    import gzip

    bomb = tmp_path / "bomb.jsonl.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        chunk = b" " * (1 << 20)
        for _ in range(64):  # 64 MiB of blanks in a ~64 KB file
            out.write(chunk)
    config = load_config(repo)
    start = time.monotonic()
    with pytest.raises(RecordError, match="MiB read"):
        import_jsonl(open_store(config), config, bomb)
    assert time.monotonic() - start < 30


def test_defect_10_endless_stream_is_capped(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDLINE_IMPORT_MAX_BYTES", str(1 << 20))
    link = tmp_path / "zero.jsonl"
    link.symlink_to("/dev/zero")
    config = load_config(repo)
    with pytest.raises(RecordError):
        import_jsonl(open_store(config), config, link)


# -- 14. permissions and content_hash ---------------------------------------------------------------------------------


def test_defect_14_state_dirs_are_0700_and_exports_0600(repo: Path, tmp_path: Path) -> None:
    config = load_config(repo)
    open_store(config).close()
    for d in (config.home, config.home / "repos", config.state_dir):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    g = make_generation(1)
    write_jsonl(tmp_path / "in.jsonl", line_of(g))
    assert cli(repo, "import", str(tmp_path / "in.jsonl")).returncode == 0
    out = tmp_path / "out.jsonl"
    assert cli(repo, "export", "-o", str(out)).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_defect_14_adapter_json_is_0600(tmp_path: Path) -> None:
    from redline.fsutil import write_json

    write_json(tmp_path / "redline.json", {"a": 1})
    assert stat.S_IMODE((tmp_path / "redline.json").stat().st_mode) == 0o600


def test_defect_14_content_hash_is_of_the_stored_completion(repo: Path) -> None:
    from redline.ledger import record_generation

    config = load_config(repo)
    store = open_store(config)
    g = make_generation(14, completion=f'key = "{AKIA}"\n')
    g.insertion = Insertion("src/a.py", Range(0, 1))
    record_generation(store, config, g)
    stored = store.get_generation(g.id)
    assert stored is not None and stored.insertion is not None
    assert stored.insertion.content_hash == sha256_text(stored.completion)
    assert store.spans_for_path("src/a.py")[0].text == stored.completion


def test_defect_14_no_hash_of_a_secret_is_stored_as_a_fingerprint(tmp_path: Path) -> None:
    from redline.scrub import scrub as real

    store = SQLiteStore(tmp_path / "q.sqlite3", scrubber=real)
    fb = Feedback(kind="review", source="github-review", message=f"do not commit {AKIA}")
    leaked = fb.fingerprint
    store.add(feedback=[fb])
    (body,) = store._conn().execute("SELECT fingerprint FROM feedback").fetchone()  # type: ignore[attr-defined]
    assert body != leaked


def test_sqlite_lock_message_names_the_file(tmp_path: Path) -> None:
    """Item 9's message: what holds the lock, and where."""
    path = tmp_path / "q.sqlite3"
    SQLiteStore(path).close()
    store = SQLiteStore(path, busy_timeout_s=0.1)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(QueueError, match=f"another process holds a write lock on {path}"):
        store.add([make_generation(1)])
    blocker.execute("ROLLBACK")


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 512 KiB tmpfs (needs root; skipped elsewhere — the max_page_count test covers the same path)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True,
                      check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.slow
def test_defect_6_full_disk_under_the_cli_is_one_line(repo: Path, tmp_path: Path, tiny_disk: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDLINE_STATE_DIR", str(tiny_disk / "state"))
    lines = [line_of(g, make_feedback(g.id)) for g in (make_generation(i, completion="x = 1\n" * 300)
                                                        for i in range(300))]
    big = write_jsonl(tmp_path / "big.jsonl", *lines)
    assert cli(repo, "status").returncode == 0
    line = one_line_error(cli(repo, "import", str(big)))
    assert f"disk full at {tiny_disk / 'state'}" in line and "MiB needed" in line and "move state_dir" in line
    subprocess.run(["dd", "if=/dev/zero", f"of={tiny_disk / 'fill'}", "bs=4k"], capture_output=True, check=False)
    line = one_line_error(cli(repo, "import", str(big)))  # at 0 bytes free: not "move the queue aside"
    assert "disk full at" in line and "move the file aside" not in line
    (tiny_disk / "fill").unlink()
    assert json.loads(cli(repo, "status", "--json").stdout)["generations"] == 0


def test_defect_4_lsp_record_insert_with_a_lone_surrogate_is_invalid_params(repo: Path) -> None:
    """The language server answered `recordInsert` with -32603 UnicodeEncodeError; now -32602 naming the field."""
    import asyncio

    from redline.lsp_server.server import create_server

    class Capture:
        def __init__(self) -> None:
            self.out: list[dict] = []

        def write(self, data: bytes) -> None:
            body = data.split(b"\r\n\r\n", 1)[-1]
            self.out.append(json.loads(body))

        def close(self) -> None:
            pass

    async def run() -> dict:
        server = create_server()
        writer = Capture()
        server.protocol.set_writer(writer)

        def feed(message: dict) -> None:
            server.protocol.handle_message(server.protocol.structure_message(message))

        path = repo / "a.py"
        text = "x = 1\nbad = '\ud800'\n"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        feed({"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"processId": None, "rootUri": repo.as_uri(), "capabilities": {},
                         "initializationOptions": {"manualClock": True, "builtinCheckers": False}}})
        feed({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": path.as_uri(), "languageId": "python", "version": 1, "text": text}}})
        while path.as_uri() not in server.docs or not server.docs[path.as_uri()].ready.is_set():
            await asyncio.sleep(0.01)
        feed({"jsonrpc": "2.0", "id": 2, "method": "workspace/executeCommand", "params": {
            "command": "redline.recordInsert", "arguments": [{"uri": path.as_uri(), "text": "bad = '\ud800'\n",
                                                              "range": {"start": {"line": 1, "character": 0}}}]}})
        for _ in range(500):
            answer = next((m for m in writer.out if m.get("id") == 2), None)
            if answer is not None:
                server.shutdown_pools()
                return answer
            await asyncio.sleep(0.01)
        raise AssertionError(f"no answer: {writer.out}")

    answer = asyncio.run(run())
    assert answer["error"]["code"] == -32602, answer
    assert "lone surrogate" in answer["error"]["message"]


def test_defect_10_a_bundle_of_newlines_stops_in_seconds(repo: Path, tmp_path: Path) -> None:
    """The issue's 447 KB bundle expanded to 847 MB and took 94 s: blank lines cost no loop turn now."""
    import gzip

    bomb = tmp_path / "newlines.jsonl.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        for _ in range(200):
            out.write(b"\n" * (1 << 20))
    config = load_config(repo)
    start = time.monotonic()
    with pytest.raises(RecordError, match="MiB read"):
        import_jsonl(open_store(config), config, bomb)
    assert time.monotonic() - start < 20


def test_line_numbers_survive_blank_lines_and_chunks(repo: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("redline.transfer.CHUNK_BYTES", 7)  # lines straddle chunk boundaries
    g = make_generation(1)
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(line_of(g)) + "\n\n\n" + "{not json", encoding="utf-8")
    config = load_config(repo)
    with pytest.raises(RecordError, match="line 4: not valid JSON"):
        import_jsonl(open_store(config), config, path)
