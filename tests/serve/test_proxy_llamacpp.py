"""`redline proxy` in front of llama.cpp's real server (llama-cpp-python's): what the client gets, streamed or not,
is the upstream's bytes but the id, and the ledger holds each answer. Skipped unless llama-cpp-python[server] is
installed (`.ci/run` installs it; the first build compiles llama.cpp)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from redline.config import load_config
from redline.queue import open_store
from tests.serve.conftest import World, start, stop
from tests.serve.test_endpoints import client_text

pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed")
pytestmark = [pytest.mark.slow, pytest.mark.real_part]

_VOLATILE = [(re.compile(rb'"id": ?"[^"]*"'), b'"id":""'), (re.compile(rb'"created": ?\d+'), b'"created":0')]


def normalised(raw: bytes) -> bytes:
    for pattern, repl in _VOLATILE:
        raw = pattern.sub(repl, raw)
    return raw


def test_proxy_passes_llama_cpp_through_and_records_it(tmp_path: Path, redline_home: Path) -> None:
    from tests.export.llama_gguf import write_llama_gguf
    from tests.export.test_llamacpp_runtime import llama_server
    from tests.trainer.conftest import build_tiny_model

    base = build_tiny_model(tmp_path / "tok-base")  # a byte-level BPE tokenizer llama.cpp can use
    gguf = write_llama_gguf(base, tmp_path / "tok-base.gguf")
    repo = tmp_path / "app"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "redline.toml").write_text(f'model = "{base}"\n')
    world = World(repo=repo, home=redline_home, model=base)
    body = {"prompt": "def add(a, b):\n", "max_tokens": 6, "temperature": 0.0, "repeat_penalty": 1.0}
    with llama_server(gguf, None) as upstream:
        proc = start(["proxy", "--upstream", upstream, "--port", "0"], world, ready="redline proxy:")
        proxy = proc.ready_line.split()[2]  # type: ignore[attr-defined]
        try:
            answers = []
            for stream in (False, True):
                direct = httpx.post(f"{upstream}/v1/completions", json={**body, "stream": stream}, timeout=60)
                via = httpx.post(f"{proxy}/v1/completions", json={**body, "stream": stream}, timeout=60)
                assert direct.status_code == via.status_code == 200, via.text
                assert normalised(via.content) == normalised(direct.content)
                text, gid = client_text("/v1/completions", stream, via.content)
                assert gid == via.headers["X-Redline-Generation"]
                answers.append((gid, text))
        finally:
            stop(proc)
    assert any(text for _, text in answers), "llama.cpp wrote nothing: the comparison would be empty"
    store = open_store(load_config(repo, env={"REDLINE_HOME": str(redline_home)}))
    try:
        for gid, text in answers:
            g = store.get_generation(gid)
            assert g is not None and g.prompt.text == body["prompt"]
            assert g.completion == text  # what the client read is what was recorded
    finally:
        store.close()
