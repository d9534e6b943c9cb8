"""vLLM: the export's command lines, and `vllm_load` against a fake vLLM server process on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redline.errors import UpstreamError
from redline.export import vllm
from redline.export.runtimes import export_adapter
from redline.export.vllm import vllm_load, vllm_models

FAKE = Path(__file__).with_name("fake_vllm.py")


class Fake:
    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log

    def requests(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def loads(self) -> list[dict]:
        return [r["body"] for r in self.requests() if r["method"] == "POST"]


def start_fake(tmp_path: Path, *args: str) -> Iterator[Fake]:
    port_file, log = tmp_path / "port", tmp_path / "requests.jsonl"
    proc = subprocess.Popen([sys.executable, str(FAKE), str(port_file), str(log), *args])
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("fake vLLM did not start")
            time.sleep(0.02)
        yield Fake(f"http://127.0.0.1:{port_file.read_text()}", log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[Fake]:
    yield from start_fake(tmp_path)


def test_each_version_is_loaded_once_under_its_own_name(fake: Fake) -> None:
    assert vllm_load(fake.url, "app@v0001", "/exports/v0001") is True
    assert fake.loads() == [{"lora_name": "app@v0001", "lora_path": "/exports/v0001"}]
    # asked again for the same version: nothing is re-loaded under a name vLLM already serves
    assert vllm_load(fake.url, "app@v0001", "/exports/v0001") is False
    assert len(fake.loads()) == 1
    # the next promoted version goes in under a new name, next to the old one
    assert vllm_load(fake.url, "app@v0002", "/exports/v0002") is True
    assert [m["id"] for m in vllm_models(fake.url) if m.get("parent")] == ["app@v0001", "app@v0002"]


def test_a_server_without_runtime_lora_loading_gets_the_fix(tmp_path: Path) -> None:
    for server in start_fake(tmp_path, "--no-runtime-lora"):
        with pytest.raises(UpstreamError) as err:
            vllm_load(server.url, "app@v0001", "/x")
        assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in str(err.value) and "\n" not in str(err.value)


def test_an_upstream_that_is_down_is_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the call: nothing listens there
    with pytest.raises(UpstreamError, match="cannot reach"):
        vllm_load(f"http://127.0.0.1:{port}", "app@v0001", "/x", timeout=5)


def test_export_writes_the_folder_and_the_command_lines(repo, tiny_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "vllm-out"
    exp = export_adapter(repo, "current", "vllm", out)
    assert exp.name == "app@v0001" and exp.path == out
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    serve, load = exp.commands
    assert serve == (f"VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve {tiny_base} --enable-lora "
                     f"--max-lora-rank 8 --lora-modules app@v0001={out}")
    assert "/v1/load_lora_adapter" in load and '"lora_name": "app@v0001"' in load
    script = (out / "vllm-serve.sh").read_text()
    assert serve in script and load in script


def test_max_lora_rank_rounds_up_to_what_vllm_accepts() -> None:
    assert [vllm.max_lora_rank(r) for r in (1, 8, 9, 16, 300, 512)] == [8, 8, 16, 16, 320, 512]
    with pytest.raises(UpstreamError):
        vllm.max_lora_rank(1024)
