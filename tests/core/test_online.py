"""The online check: suggestions kept per adapter version, and the rollback when the served one is kept less."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from click.testing import CliRunner

from redline.adapters import AdapterRegistry
from redline.cli import cli
from redline.config import load_config
from redline.online import MIN_OFFERED, online_check, roll_back_if_worse
from redline.queue import SQLiteStore
from redline.records import Feedback
from redline.status import publish_adapter, read_status
from tests.core.helpers import make_generation
from tests.core.test_adapters import fake_adapter


def offered(store: SQLiteStore, version: str | None, n: int, kept: int, offset: int) -> None:
    """`n` served suggestions of `version`, `kept` of them accepted in the editor."""
    gens = [dataclasses.replace(make_generation(offset + i), adapter_version=version, origin="server")
            for i in range(n)]
    store.add(gens, [Feedback(kind="accept", source="editor", generation_id=g.id) for g in gens[:kept]])


def rows(version: str | None, kept: int, n: int) -> dict:
    return {"adapter_version": version, "accepted": kept, "suggested": n}


def test_worse_only_beyond_noise_and_with_enough_suggestions() -> None:
    base = rows(None, 30, 50)
    assert online_check([base, rows("v0001", 12, 50)], "v0001", None).worse  # 24 % against 60 %
    assert not online_check([base, rows("v0001", 27, 50)], "v0001", None).worse  # 54 %: within noise
    assert not online_check([base, rows("v0001", 40, 50)], "v0001", None).worse  # better
    few = online_check([rows(None, 20, 20), rows("v0001", 0, MIN_OFFERED - 1)], "v0001", None)
    assert not few.worse and "not judged yet" in few.line()
    assert online_check([base], None, None) is None  # the base model is served: nothing to check


def test_a_served_adapter_kept_less_than_the_one_before_is_rolled_back_and_status_says_why(
        tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "redline.toml").write_text("scrub_secrets = false\n")
    monkeypatch.chdir(root)
    config = load_config()
    store = SQLiteStore(config.db_path)
    registry = AdapterRegistry(config.adapters_dir)
    v1 = registry.add(fake_adapter(tmp_path / "t1"))
    v2 = registry.add(fake_adapter(tmp_path / "t2"))
    registry.promote(v1)
    registry.promote(v2)
    publish_adapter(store, registry)
    offered(store, v1, 40, 30, 0)
    offered(store, v2, 40, 26, 100)  # 65 % against 75 %: within noise, nothing happens
    assert roll_back_if_worse(store, registry) is None and registry.current() == v2
    offered(store, v2, 40, 2, 200)  # now 28 of 80 (35 %)
    check = roll_back_if_worse(store, registry)
    assert check is not None and check.worse and registry.current() == v1
    assert registry.meta(v2)["rolled_back"]["why"] == check.line()
    adapter = read_status(store).adapter
    assert adapter.version == v1 and adapter.note and adapter.note.startswith(f"{v2} rolled back: ")
    store.close()
    out = " ".join(CliRunner().invoke(cli, ["status"]).output.split())  # as read, without rich's wrapping
    assert f"{v2} rolled back: {v2}'s suggestions kept 28 of 80 (35%), {v1}'s 30 of 40 (75%)" in out, out
    assert "online: v0001's suggestions kept 30 of 40" in out
