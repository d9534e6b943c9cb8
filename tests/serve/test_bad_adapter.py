"""Issue #30, defect 4: a truncated adapter was promoted and exported, and a failed load stayed registered in peft,
so `/v1/models` listed it and every later request naming it, and every `/redline/reload`, answered 500 "Adapter
with name v0002 already exists". Now a damaged version is refused at promote and export in one line, and a
server told to load one (a pointer written by hand, a file damaged after promotion) logs one line, keeps serving
what it served, leaves the version out of its model list, answers a request naming it with a one-line 404, and
says so in serve.json and `redline status`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from redline.adapters import AdapterRegistry
from redline.fsutil import atomic_write
from redline.serve import control
from tests.serve.conftest import REDLINE, Server, World, start, stop


@pytest.fixture(scope="module")
def world(serve_world: World, tmp_path_factory: pytest.TempPathFactory) -> World:
    """A repository of its own (so other modules' versions stay as they are) with one good version, current."""
    root = tmp_path_factory.mktemp("bad-adapter")
    repo = root / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "redline.toml").write_text(f'model = "{serve_world.model}"\n', encoding="utf-8")
    w = World(repo, root / "home", serve_world.model)
    good = AdapterRegistry(serve_world.config.adapters_dir).path("v0001")
    registry = AdapterRegistry(w.config.adapters_dir)
    registry.promote(registry.add(good, {"base_model": {"id": str(serve_world.model)}}))
    return w


def register(world: World, damage: str) -> str:
    """A new version copied from v0001, then damaged: `truncate` (the repro), `flip` (same size, other bytes) or
    `rank` (intact files whose config peft cannot load them with: passes every file check, fails in peft)."""
    registry = AdapterRegistry(world.config.adapters_dir)
    src = world.repo.parent / f"copy-{damage}"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(registry.path("v0001"), src)
    if damage == "rank":
        config = json.loads((src / "adapter_config.json").read_text())
        (src / "adapter_config.json").write_text(json.dumps({**config, "r": config["r"] * 2}))
    version = registry.add(src, {"base_model": {"id": str(world.model)}})
    weights = registry.path(version) / "adapter_model.safetensors"
    if damage == "truncate":
        os.truncate(weights, 1000)
    elif damage == "flip":
        data = bytearray(weights.read_bytes())
        data[-64:] = bytes(64)
        weights.write_bytes(bytes(data))
    return version


def redline(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REDLINE, *args], cwd=world.repo, env=world.env, capture_output=True, text=True,
                          timeout=120)


def one_line_failure(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert all(n in lines[0] for n in needles), lines[0]


def test_a_damaged_adapter_is_refused_at_promote_and_export_in_one_line(world: World, tmp_path: Path):
    registry = AdapterRegistry(world.config.adapters_dir)
    cut = register(world, "truncate")
    one_line_failure(redline(world, "adapters", "promote", cut), f"adapter {cut} is damaged", "safetensors",
                     "redline train")
    assert registry.current() == "v0001"
    for target in ("dir", "llamacpp", "vllm"):
        out = tmp_path / f"out-{target}"
        one_line_failure(redline(world, "adapters", "export", cut, "--to", target, "-o", str(out),
                                 "--base", str(world.model)), "damaged")
        assert not out.exists()
    flipped = register(world, "flip")
    one_line_failure(redline(world, "adapters", "promote", flipped), "adapter_model.safetensors", "sha256")
    assert registry.current() == "v0001"
    assert redline(world, "adapters", "promote", "v0001").returncode == 0


def test_export_to_a_dangling_symlink_is_one_line(world: World, tmp_path: Path):
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    for target in ("dir", "llamacpp"):
        one_line_failure(redline(world, "adapters", "export", "v0001", "--to", target, "-o", str(link),
                                 "--base", str(world.model)), "symbolic link")
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[Server]:
    proc = start(["serve", "--port", "0"], world, ready="redline serve:")
    info = control.find_server(world.config)
    assert info is not None
    yield Server(info.base_url, proc, world)
    stop(proc)


def point_at(world: World, version: str) -> None:
    """Write the `current` pointer as a hand edit (or an older Redline) would: no check on the way."""
    registry = AdapterRegistry(world.config.adapters_dir)
    atomic_write(registry.pointer, json.dumps({"current": version, "history": ["v0001"]}) + "\n")


@pytest.mark.parametrize("damage", ["flip", "rank"])
def test_serve_stays_healthy_after_a_bad_load(served: Server, damage: str):
    world = served.world
    bad = register(world, damage)
    name = f"{world.repo_name}@{bad}"
    log = served.proc.log_tail  # type: ignore[attr-defined]
    try:
        point_at(world, bad)
        for attempt in (1, 2):  # the second reload tried it again: one line again, never a 500
            assert control.reload(world.config)
            health = control.health(world.config)
            assert health is not None and health["state"] == "serving" and health["adapter"] == "v0001"
            assert bad in health["failed"]
            lines = [line for line in log if f"could not load adapter {bad}" in line]
            assert len(lines) == attempt, log[-20:]
        assert not any("Traceback" in line or "already exists" in line for line in log), log[-40:]
        listed = [m["id"] for m in httpx.get(served.url + "/v1/models", timeout=30).json()["data"]]
        assert name not in listed and f"{world.repo_name}@v0001" in listed
        r = httpx.post(served.url + "/v1/completions", json={"prompt": "def f(", "max_tokens": 3}, timeout=60)
        assert r.status_code == 200 and world.row(r.json()["id"]).adapter_version == "v0001"
        for stream in (False, True):
            r = httpx.post(served.url + "/v1/completions", timeout=60,
                           json={"prompt": "def f(", "max_tokens": 3, "model": name, "stream": stream})
            assert r.status_code == 404 and "\n" not in r.text.strip(), r.text
            assert f"adapter {bad} is not served" in r.json()["error"]["message"]
        info = control.find_server(world.config)
        assert info is not None and bad in (info.failed or {})
        status = redline(world, "status")
        assert status.returncode == 0
        assert len([line for line in status.stdout.splitlines() if f"adapter {bad} failed to load" in line]) == 1
    finally:
        point_at(world, "v0001")
        control.reload(world.config)


def test_promote_tells_the_server_with_its_token(served: Server):
    """`redline adapters promote` (as `redline train` after a promotion) calls `/redline/reload` with serve.json's
    token: the server answers it, so a version that passes the file checks but fails in peft is named in one line
    at once. Without the token the call is refused and nothing would be printed."""
    world = served.world
    bad = register(world, "rank")
    try:
        r = redline(world, "adapters", "promote", bad)
        assert r.returncode == 0, r.stderr
        told = [line for line in r.stderr.splitlines() if line.startswith(f"redline serve could not load {bad}:")]
        assert len(told) == 1, r.stderr
        health = control.health(world.config)
        assert health is not None and health["state"] == "serving" and health["adapter"] == "v0001"
    finally:
        point_at(world, "v0001")
        control.reload(world.config)
