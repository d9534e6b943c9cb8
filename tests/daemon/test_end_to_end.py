"""End to end on CPU with the world's tiny model: a running daemon imports a CI bundle from the inbox, is kicked,
trains in its child process, the gate promotes, a running `redline serve` switches to the new adapter, and
`redline.status` in a real language-server session (pytest-lsp) shows the new version."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from redline.config import load_config
from redline.daemon import registry
from redline.daemon.main import kick, running_pid
from redline.queue import open_store
from redline.serve import control
from redline.status import TrainingStatus, read_status
from redline.trainer.feedback_text import is_passed
from tests.lsp_server.lsp_helpers import command

SERVER = [sys.executable, "-c", "from redline.cli import main; main(['lsp', '--log-level', 'warning'])"]


def wait_until(what: str, ok: Callable[[], object], timeout: float, alive: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert alive.poll() is None, f"the daemon exited while waiting for: {what}"
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.5)


def training_status(config) -> TrainingStatus:  # type: ignore[no-untyped-def]
    store = open_store(config)
    try:
        return read_status(store)
    finally:
        store.close()


@pytest.fixture
def trained(world_model: Path, redline_home: Path, tmp_path: Path) -> Iterator[Path]:
    """A repository the daemon (a real `redline daemon run` process) has trained from an inbox bundle."""
    from bench.world import HINDSIGHT_TEMPLATE, make_records, make_repos

    repo = make_repos(1, 0)[0]
    records = make_records(world_model, repo, 48, seed=0)
    # held-out: failed attempts only, so the gate judges the fixes (a couple of passed records make its
    # retention interval too narrow to say anything on a model this small)
    held = [(dataclasses.replace(g, split="heldout"), fbs) for g, fbs in records[36:] if not is_passed(fbs)]
    root = tmp_path / "repo"
    root.mkdir()
    (root / "redline.toml").write_text(
        f'model = "{world_model}"\nscrub_secrets = false\ntrain_on_cpu = true\n[train]\nhindsight = "template"\n'
        f"template = {json.dumps(HINDSIGHT_TEMPLATE)}\nbatch_size = 8\nlr = 2e-3\nmax_steps = 40\n", encoding="utf-8")
    config = load_config(root)
    registry.register(redline_home, root, config.repo_id)
    env = {**os.environ, "REDLINE_HOME": str(redline_home)}
    serve = subprocess.Popen([sys.executable, "-m", "redline", "serve", "--port", "0", "--device", "cpu"], cwd=root,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    daemon = subprocess.Popen([sys.executable, "-m", "redline", "daemon", "run", "--tick", "1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_until("the daemon's lock", lambda: running_pid(redline_home) == daemon.pid, 60, daemon)
        wait_until("redline serve", lambda: (control.health(config) or {}).get("state") == "serving", 120, serve)
        assert control.health(config)["adapter"] is None  # type: ignore[index]
        bundle = tmp_path / "ci.jsonl"
        bundle.write_text("".join(json.dumps({"generation": g.to_dict(), "feedback": [f.to_dict() for f in fbs]})
                                  + "\n" for g, fbs in records[:36] + held), encoding="utf-8")
        config.inbox_dir.mkdir(parents=True, exist_ok=True)
        bundle.replace(config.inbox_dir / "ci.jsonl")
        wait_until("the bundle's import", (config.inbox_dir / "done" / "ci.jsonl").exists, 60, daemon)
        kick(redline_home, str(root))
        wait_until("a training result", lambda: (st := training_status(config)).last is not None
                   and st.daemon is not None and st.daemon.state != "training", 1500, daemon)
        status = training_status(config)
        assert status.last is not None and status.last.result == "promoted", status.last
        assert status.adapter.version == "v0001" and status.adapter.gate_passed and status.adapter.gate
        wait_until("serve on v0001", lambda: (control.health(config) or {}).get("adapter") == "v0001", 120, serve)
        assert daemon.poll() is None  # alive after its child finished
        yield root
    finally:
        for proc in (daemon, serve):
            proc.terminate()
            proc.wait(timeout=60)


@pytest_lsp.fixture(params=["visual-studio-code"], config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest, trained: Path):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(request.param), root_uri=trained.as_uri(),
        initialization_options={"manualClock": True}))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.slow
@pytest.mark.asyncio
async def test_daemon_trains_from_the_inbox_and_serve_and_the_editor_see_the_new_adapter(
        client: LanguageClient) -> None:
    status = await command(client, "redline.status")
    assert status["adapter"] == "v0001" and status["lastTraining"]["result"] == "promoted"
    assert status["daemon"] in ("idle", "waiting") and status["gate"]  # waiting: for the next 32 records
