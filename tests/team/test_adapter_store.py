"""The team's adapter store: immutable `<repo>@vNNNN` folders in vLLM's resolver layout, a pointer per repository,
a publish killed half-way never visible; `redline proxy` routing a team vLLM by model name through the resolver;
`redline serve` following the store's pointer."""

from __future__ import annotations

import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from redline.adapter_store import AdapterStore, registry_for
from redline.adapters import AdapterDamaged, AdapterRegistry
from redline.config import load_config
from redline.errors import ConfigError
from tests.team.conftest import PYTHON, python_env

REPO = "github.com/acme/app"


def _adapter(where: Path, seed: int = 0, base: str = "base-model") -> Path:
    where.mkdir(parents=True)
    (where / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8,
                                                           "base_model_name_or_path": base}))
    header = json.dumps({"__metadata__": {"seed": str(seed), "nonce": os.urandom(8).hex()}}).encode()
    (where / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)  # a whole file
    os.chmod(where / "adapter_model.safetensors", 0o600)  # a trained adapter is written private
    return where


def test_versions_are_published_under_their_served_names_with_a_pointer(tmp_path: Path) -> None:
    store = AdapterStore(tmp_path / "store", REPO)
    v1 = store.add(_adapter(tmp_path / "a1"), {"gate": {"passed": True}})
    store.promote(v1)
    folder = tmp_path / "store" / "app@v0001"
    assert v1 == "v0001" and folder.is_dir()
    assert {p.name for p in folder.iterdir()} == {"adapter_config.json", "adapter_model.safetensors", "redline.json"}
    assert stat.S_IMODE((folder / "adapter_model.safetensors").stat().st_mode) == 0o644  # the fleet reads it
    info = json.loads((folder / "redline.json").read_text())
    assert info["repo_id"] == REPO and info["served_name"] == "app@v0001" and info["gate"] == {"passed": True}
    pointer = json.loads((tmp_path / "store" / ".pointers" / "app.json").read_text())
    assert pointer["current"] == "v0001" and pointer["repo_id"] == REPO
    # the next night, another worker: it reads the same versions and continues the numbering from them
    other = AdapterStore(tmp_path / "store", REPO)
    assert other.current() == "v0001" and other.current_path() == folder
    v2 = other.add(_adapter(tmp_path / "a2", 1), {"parent_version": other.current()})
    other.promote(v2)
    assert store.current() == "v0002" and [r["version"] for r in store.table()] == ["v0001", "v0002"]
    assert store.rollback() == "v0001" and other.current() == "v0001"
    with pytest.raises(ConfigError, match="immutable"):
        store.update_meta("v0001", {"x": 1})


def test_a_published_name_is_never_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = AdapterStore(tmp_path / "store", REPO)
    store.add(_adapter(tmp_path / "a1"))
    before = (tmp_path / "store" / "app@v0001" / "adapter_model.safetensors").read_bytes()
    monkeypatch.setattr(AdapterStore, "_next_version", lambda self: "v0001")  # another publisher took it meanwhile
    assert store.add(_adapter(tmp_path / "a2", 1)) == "v0002"
    assert (tmp_path / "store" / "app@v0001" / "adapter_model.safetensors").read_bytes() == before


def test_a_published_version_is_checked_against_its_digests(tmp_path: Path) -> None:
    """Main's digests (#30) hold in the store too: recorded at publish, checked at promote; a file that no
    longer matches (a truncated copy on the share) is refused in one line, and a bad adapter is never published."""
    store = AdapterStore(tmp_path / "store", REPO)
    v1 = store.add(_adapter(tmp_path / "a1"))
    assert set(store.meta(v1)["digests"]) == {"adapter_config.json", "adapter_model.safetensors"}
    assert store.verify(v1) == tmp_path / "store" / "app@v0001"
    os.truncate(tmp_path / "store" / "app@v0001" / "adapter_model.safetensors", 4)
    with pytest.raises(AdapterDamaged, match="v0001"):
        store.promote(v1)
    bad = _adapter(tmp_path / "a2")
    (bad / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(AdapterDamaged):
        store.add(bad)
    assert store.versions() == [v1] and not list((tmp_path / "store").glob(".*staging*"))


def test_what_names_the_version_is_written_with_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the run wrote the gate's one line (`v0002 fixes …`) after publishing, which the immutable store
    refuses, so every worker's training failed after its gate. `named` is written in the publish itself, for the
    version the adapter lands as, also when another publisher took the first number meanwhile."""
    store = AdapterStore(tmp_path / "store", REPO)
    store.add(_adapter(tmp_path / "a1"))
    monkeypatch.setattr(AdapterStore, "_next_version", lambda self: "v0001")
    version = store.add(_adapter(tmp_path / "a2", 1), {"gate": {}}, named=lambda v: {"gate_summary": f"{v} fixes"})
    assert version == "v0002" and store.meta("v0002")["gate_summary"] == "v0002 fixes"
    local = AdapterRegistry(tmp_path / "local")
    assert local.meta(local.add(_adapter(tmp_path / "a3"), named=lambda v: {"gate_summary": v}))["gate_summary"] \
        == "v0001"


def test_two_repositories_under_one_name_are_refused(tmp_path: Path) -> None:
    AdapterStore(tmp_path / "store", REPO).add(_adapter(tmp_path / "a1"))
    stranger = AdapterStore(tmp_path / "store", "github.com/other/app")
    with pytest.raises(ConfigError, match="distinct `repo_id`"):
        stranger.add(_adapter(tmp_path / "a2"))
    AdapterStore(tmp_path / "store", REPO).promote("v0001")
    assert stranger.current() is None  # never serves another repository's adapter


PUBLISH = """
import shutil, sys, time
from pathlib import Path
from redline.adapter_store import AdapterStore
copytree = shutil.copytree
def slow(src, dst, **kw):
    out = shutil.copy2(src, dst)
    print("copied", Path(src).name, flush=True)
    time.sleep(60)
    return out
shutil.copytree = lambda src, dst, **kw: copytree(src, dst, copy_function=slow, **kw)
AdapterStore(Path(sys.argv[1]), sys.argv[2]).add(Path(sys.argv[3]))
"""


def test_a_publish_killed_half_way_is_never_served(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store = AdapterStore(store_dir, REPO)
    store.promote(store.add(_adapter(tmp_path / "a1")))
    proc = subprocess.Popen([PYTHON, "-c", PUBLISH, str(store_dir), REPO, str(_adapter(tmp_path / "a2", 1))],
                            stdout=subprocess.PIPE, text=True, env=python_env())
    assert proc.stdout.readline().startswith("copied")  # half the adapter is on the shared disk
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    visible = sorted(p.name for p in store_dir.iterdir() if not p.name.startswith("."))
    assert visible == ["app@v0001"]  # nothing a resolver could be asked for
    assert any(p.name.startswith(".app@v0002.staging-") for p in store_dir.iterdir())
    assert store.versions() == ["v0001"] and store.current() == "v0001"
    assert store.add(_adapter(tmp_path / "a3", 2)) == "v0002"  # the leftover is swept, the number reused
    assert not any(".staging-" in p.name for p in store_dir.iterdir())


def test_registry_for_follows_the_setting(tmp_path: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    (root / "redline.toml").write_text(f'repo_id = "{REPO}"\nadapter_store = "../store"\n', encoding="utf-8")
    assert isinstance(registry_for(load_config(root)), AdapterStore)
    assert registry_for(load_config(root)).root == (tmp_path / "store").resolve()
    (root / "redline.toml").write_text(f'repo_id = "{REPO}"\n', encoding="utf-8")
    found = registry_for(load_config(root))
    assert type(found) is AdapterRegistry


def test_proxy_routes_a_team_vllm_by_model_name_through_its_resolver(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM started with the filesystem resolver over the store: the proxy names `<repo>@vNNNN`, loads nothing
    itself, and follows promotions; a request that names a version gets that version."""
    from tests.export.test_vllm import start_fake

    store_dir = tmp_path / "store"
    store = AdapterStore(store_dir, REPO)
    store.promote(store.add(_adapter(tmp_path / "a1"), {"base_model": {"id": "base-model"}}))
    monkeypatch.setenv("VLLM_PLUGINS", "lora_filesystem_resolver")
    monkeypatch.setenv("VLLM_LORA_RESOLVER_CACHE_DIR", str(store_dir))
    (tmp_path / "fake").mkdir()
    upstream = start_fake(tmp_path / "fake")
    fake = next(upstream)
    root = tmp_path / "app"
    (root / ".git").mkdir(parents=True)
    (root / "redline.toml").write_text(f'repo_id = "{REPO}"\nmodel = "base-model"\nadapter_store = "{store_dir}"\n',
                                       encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "redline", "proxy", "--upstream", fake.url, "--port", "0"],
                            cwd=root, env=python_env(REDLINE_HOME=str(tmp_path / "home")), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "redline proxy:" in line:
                url = line.split("redline proxy:", 1)[1].split()[0].rstrip("/")
        assert url, "the proxy did not start"

        def model_for(asked: str) -> str:
            r = httpx.post(f"{url}/v1/completions", json={"model": asked, "prompt": "x", "max_tokens": 4},
                           timeout=60)
            assert r.status_code == 200, r.text
            return str(r.json()["model"])

        assert model_for("base-model") == "app@v0001"
        AdapterStore(store_dir, REPO).promote(AdapterStore(store_dir, REPO).add(_adapter(tmp_path / "a2", 1)))
        assert model_for("base-model") == "app@v0002"  # the worker's promotion, picked up at the next request
        assert model_for("app@v0001") == "app@v0001"  # pinned by name
        requests = fake.requests()
        assert not [r for r in requests if r["path"] == "/v1/load_lora_adapter"]
        assert [r["body"]["resolve"] for r in requests if isinstance(r["body"], dict) and "resolve" in r["body"]] \
            == ["app@v0001", "app@v0002"]
    finally:
        proc.terminate()
        proc.wait(30)
        upstream.close()


@pytest.mark.slow
def test_serve_follows_the_store_pointer(tmp_path: Path) -> None:
    """`redline serve` on a developer's machine serves what a worker promoted into the store, and switches when
    another promotion lands, with no reload signal (the pointer is read at each request)."""
    pytest.importorskip("peft")
    from tests.serve.conftest import World, start
    from tests.serve.conftest import _adapter as lora
    from tests.trainer.conftest import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    store_dir = tmp_path / "store"
    worker = AdapterStore(store_dir, REPO)
    versions = [worker.add(lora(model, tmp_path / f"lora{s}", s), {"base_model": {"id": str(model)}})
                for s in (1, 2)]
    worker.promote(versions[0])
    repo = tmp_path / "dev"
    (repo / ".git").mkdir(parents=True)
    (repo / "redline.toml").write_text(f'repo_id = "{REPO}"\nmodel = "{model}"\nadapter_store = "{store_dir}"\n',
                                       encoding="utf-8")
    world = World(repo, tmp_path / "home", model)
    proc = start(["serve", "--port", "0"], world, ready="redline serve:")
    try:
        port = json.loads((world.config.state_dir / "serve.json").read_text())["port"]

        def served() -> str | None:
            r = httpx.post(f"http://127.0.0.1:{port}/v1/completions",
                           json={"prompt": "def f():\n", "max_tokens": 4, "temperature": 0}, timeout=120)
            assert r.status_code == 200, r.text
            return world.row(r.json()["id"]).adapter_version

        assert served() == "v0001"
        AdapterStore(store_dir, REPO).promote(versions[1])  # another machine promotes
        assert served() == "v0002"
        names = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=30).json()["data"]
        assert {"app@v0001", "app@v0002"} <= {m["id"] for m in names}
    finally:
        from tests.core.helpers import stop

        stop(proc)
