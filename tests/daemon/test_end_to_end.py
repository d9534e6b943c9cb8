"""End to end on CPU with the world's tiny model: a running daemon imports a CI bundle from the inbox, is kicked,
trains in its child process, the gate promotes, a running `redline serve` switches to the new adapter, and
`redline.status` in a real language-server session (pytest-lsp) shows the new version."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from redline.config import Config, load_config
from redline.daemon import registry
from redline.daemon.main import kick, running_pid
from redline.queue import open_store
from redline.serve import control
from redline.status import TrainingStatus, read_status
from redline.trainer.feedback_text import is_passed
from tests.conftest import descendants_cpu_s, wait_for
from tests.lsp_server.lsp_helpers import command

SERVER = [sys.executable, "-c", "from redline.cli import main; main(['lsp', '--log-level', 'warning'])"]


def training_status(config: Config) -> TrainingStatus:
    store = open_store(config)
    try:
        return read_status(store)
    finally:
        store.close()


def daemon_progress(config: Config, daemon: subprocess.Popen[str]) -> tuple[object, ...]:
    """What moves while the daemon works: the queue's counts and training status (less the time of the daemon's
    last look, a heartbeat that moves on every tick), its log, the files under the adapters directory (the
    training's checkpoints appear there: `checkpoint_every` below), and the CPU time of its training child (on a
    loaded machine, the nice-10 child may get so little CPU that nothing else moves for many minutes)."""
    store = open_store(config)
    try:
        status, counts = read_status(store), store.counts()
    finally:
        store.close()
    looked = status.daemon and dataclasses.replace(status.daemon, at=None)
    log = config.home / "logs" / "daemon.log"
    files = sorted(os.path.relpath(os.path.join(d, f), config.adapters_dir)
                   for d, _, names in os.walk(config.adapters_dir) for f in names)
    return (counts, status.last, status.adapter, looked, log.stat().st_size if log.exists() else 0, files,
            descendants_cpu_s(daemon.pid))


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
        f"template = {json.dumps(HINDSIGHT_TEMPLATE)}\nbatch_size = 8\nlr = 2e-3\nmax_steps = 12\n"
        "checkpoint_every = 4\n", encoding="utf-8")
    config = load_config(root)
    registry.register(redline_home, root, config.repo_id)
    env = {**os.environ, "REDLINE_HOME": str(redline_home)}
    serve = subprocess.Popen([sys.executable, "-m", "redline", "serve", "--port", "0", "--device", "cpu"], cwd=root,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    daemon = subprocess.Popen([sys.executable, "-m", "redline", "daemon", "run", "--tick", "1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    procs = {"redline daemon run": daemon, "redline serve": serve}
    moving = functools.partial(daemon_progress, config, daemon)
    try:
        wait_for("the daemon's lock", lambda: running_pid(redline_home) == daemon.pid, alive=procs, progress=moving)
        # loading the model shows nothing: only a stall (or serve exiting) ends this wait
        wait_for("redline serve", lambda: (control.health(config) or {}).get("state") == "serving", alive=procs,
                 progress=lambda: None)
        assert control.health(config)["adapter"] is None  # type: ignore[index]
        bundle = tmp_path / "ci.jsonl"
        bundle.write_text("".join(json.dumps({"generation": g.to_dict(), "feedback": [f.to_dict() for f in fbs]})
                                  + "\n" for g, fbs in records[:36] + held), encoding="utf-8")
        config.inbox_dir.mkdir(parents=True, exist_ok=True)
        bundle.replace(config.inbox_dir / "ci.jsonl")
        wait_for("the bundle's import", (config.inbox_dir / "done" / "ci.jsonl").exists, alive=procs, progress=moving)
        kick(redline_home, str(root))
        wait_for("a training result", lambda: (st := training_status(config)).last is not None
                 and st.daemon is not None and st.daemon.state != "training", alive=procs, progress=moving)
        status = training_status(config)
        assert status.last is not None and status.last.result == "promoted", status.last
        assert status.adapter.version == "v0001" and status.adapter.gate_passed and status.adapter.gate
        wait_for("serve on v0001", lambda: (control.health(config) or {}).get("adapter") == "v0001", alive=procs,
                 progress=lambda: control.health(config))
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
