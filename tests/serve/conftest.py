"""A real `redline serve` process on 127.0.0.1 (port 0, read back from serve.json) over the trainer's tiny model
(chat template + FIM tokens) with two LoRA versions registered; one process per test module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from redline.adapters import AdapterRegistry
from redline.config import Config, load_config
from redline.queue import open_store
from redline.records import Generation
from tests.core.helpers import stop

REDLINE = [sys.executable, "-m", "redline"]


@dataclass
class World:
    repo: Path
    home: Path
    model: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "REDLINE_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}

    @property
    def config(self) -> Config:
        return load_config(self.repo, env={"REDLINE_HOME": str(self.home)})

    @property
    def repo_name(self) -> str:
        return self.config.repo_id.rstrip("/").rsplit("/", 1)[-1]

    def row(self, gid: str) -> Generation:
        store = open_store(self.config)
        try:
            found = store.get_generation(gid)
        finally:
            store.close()
        assert found is not None, f"no ledger row {gid}"
        return found

    def has_row(self, gid: str) -> bool:
        store = open_store(self.config)
        try:
            return store.get_generation(gid) is not None
        finally:
            store.close()


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    world: World


def _adapter(model_dir: Path, out: Path, seed: int) -> Path:
    """A LoRA with random (non-zero) B, so each version visibly changes the model's log-probs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    get_peft_model(base, lora).save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def serve_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from tests.trainer.conftest import build_tiny_model

    root = tmp_path_factory.mktemp("serve")
    model = build_tiny_model(root / "tiny-llama")
    repo = root / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "redline.toml").write_text(f'model = "{model}"\n', encoding="utf-8")
    world = World(repo, root / "home", model)
    registry = AdapterRegistry(world.config.adapters_dir)
    for seed in (1, 2):
        registry.add(_adapter(model, root / f"lora{seed}", seed), {"base_model": {"id": str(model)}})
    registry.promote("v0001")
    return world


def start(args: list[str], world: World, *, ready: str, timeout: float = 90.0) -> subprocess.Popen[bytes]:
    """Start a redline command in the repo and wait for `ready` (a file to appear, or a stderr line prefix)."""
    proc = subprocess.Popen([*REDLINE, *args], cwd=world.repo, env=world.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if line.startswith(ready):
            proc.ready_line = line  # type: ignore[attr-defined]
            _drain(proc)
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"`redline {' '.join(args)}` did not start: {proc.stderr.read().decode()[-2000:]}")


def _drain(proc: subprocess.Popen[bytes]) -> None:
    """Keep reading the process's output so a full pipe never blocks it; the tail is kept for failures."""
    tail: list[str] = []
    proc.log_tail = tail  # type: ignore[attr-defined]

    def pump(stream) -> None:
        for line in iter(stream.readline, b""):
            tail.append(line.decode(errors="replace"))
            del tail[:-200]

    for stream in (proc.stdout, proc.stderr):
        threading.Thread(target=pump, args=(stream,), daemon=True).start()


@pytest.fixture(scope="module")
def server(serve_world: World) -> Iterator[Server]:
    proc = start(["serve", "--port", "0"], serve_world, ready="redline serve:")
    info = json.loads((serve_world.config.state_dir / "serve.json").read_text())
    assert info["pid"] == proc.pid
    yield Server(f"http://127.0.0.1:{info['port']}", proc, serve_world)
    stop(proc)
    assert not (serve_world.config.state_dir / "serve.json").exists(), "serve.json left behind"


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        yield c


def sse_events(raw: bytes) -> list[dict]:
    """The JSON objects of an SSE body, checking the framing as a client would."""
    out = []
    for block in raw.decode().split("\n\n"):
        block = block.strip()
        if not block:
            continue
        assert block.startswith("data: "), block
        payload = block[len("data: "):]
        if payload != "[DONE]":
            out.append(json.loads(payload))
    return out


def ndjson_events(raw: bytes) -> list[dict]:
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
