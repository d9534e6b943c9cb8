"""`redline worker`: GPU machines taking a team queue's training jobs, one job per repository at a time, on a real
PostgreSQL server; and once end to end with a real training that publishes into the adapter store."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from redline.adapter_store import AdapterStore
from redline.config import load_config
from redline.daemon.child import ChildOutcome
from redline.daemon.worker import Worker
from redline.queue import open_store
from redline.status import read_status
from tests.core.helpers import make_feedback, make_generation
from tests.daemon.conftest import Clock, FakeProbe
from tests.team.conftest import PYTHON, python_env


def _team_repo(base: Path, name: str, url: str, extra: str = "") -> Path:
    root = base / name
    root.mkdir(parents=True)
    (root / "redline.toml").write_text(
        f'repo_id = "github.com/acme/{name}"\nqueue_url = "{url}"\nadapter_store = "{base / "store"}"\n'
        f"scrub_secrets = false\n{extra}", encoding="utf-8")
    store = open_store(load_config(root))
    gens = [make_generation(i) for i in range(40)]
    store.add(gens, [make_feedback(g.id, i) for i, g in enumerate(gens)])
    store.close()
    return root


@dataclasses.dataclass
class SlowTrainer:
    """Claims and holds the records for a while, as a training would, noting who trained what and when."""

    runs: list[tuple[str, Path, float, float]]
    who: str

    def __call__(self, config, stop: threading.Event) -> ChildOutcome:  # type: ignore[no-untyped-def]
        started = time.monotonic()
        store = open_store(config)
        claim = store.claim(f"worker-{self.who}")
        time.sleep(1.5)
        store.ack(claim.token)
        store.close()
        self.runs.append((self.who, config.repo_root, started, time.monotonic()))
        return ChildOutcome(True, False, None, "fake")


def test_two_workers_take_two_repositories_and_never_one_twice(tmp_path: Path, pg_url: str) -> None:
    roots = [_team_repo(tmp_path, name, pg_url) for name in ("app", "lib")]
    runs: list[tuple[str, Path, float, float]] = []
    workers = [Worker(tmp_path / f"home-{w}", clock=Clock(), probe=FakeProbe(), trainer=SlowTrainer(runs, w),
                      control=None, roots=roots, name=f"gpu{w}:1") for w in ("a", "b")]
    trained: list[str | None] = []
    for w in workers:
        w.refresh(strict=True)
    threads = [threading.Thread(target=lambda w=w: trained.append(w.tick())) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(map(str, trained)) == sorted(str(r.resolve()) for r in roots)  # one each, side by side
    (_, first, _, e1), (_, second, s2, _) = sorted(runs, key=lambda r: r[2])
    assert first != second and s2 < e1  # they overlapped, on different repositories
    again = [w.tick() for w in workers]  # everything is trained: no job left
    assert again == [None, None]
    for root in roots:
        store = open_store(load_config(root))
        assert store.counts()["states"] == {"trained": 40}
        assert "worker gpu" in (read_status(store).daemon.detail or "")  # type: ignore[union-attr]
        store.close()
    for w in workers:
        w.close()


def test_a_repository_held_by_one_worker_is_left_to_it(tmp_path: Path, pg_url: str) -> None:
    root = _team_repo(tmp_path, "app", pg_url)
    runs: list[tuple[str, Path, float, float]] = []
    worker = Worker(tmp_path / "home", clock=Clock(), probe=FakeProbe(), trainer=SlowTrainer(runs, "b"),
                    control=None, roots=[root], name="gpu-b:1")
    worker.refresh(strict=True)
    store = open_store(load_config(root))
    with store.hold_job("gpu-a:1") as held:  # type: ignore[attr-defined]
        assert held
        assert worker.tick() is None and runs == []
    assert worker.tick() == str(root.resolve())
    store.close()
    worker.close()


def test_repositories_outside_the_team_are_skipped_saying_why(tmp_path: Path, pg_url: str,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    local = tmp_path / "local"
    local.mkdir()
    (local / "redline.toml").write_text('repo_id = "github.com/acme/local"\n', encoding="utf-8")
    half = tmp_path / "half"
    half.mkdir()
    (half / "redline.toml").write_text(f'repo_id = "github.com/acme/half"\nqueue_url = "{pg_url}"\n',
                                       encoding="utf-8")
    worker = Worker(tmp_path / "home", clock=Clock(), probe=FakeProbe(), control=None, roots=[local, half])
    caplog.set_level("WARNING", logger="redline.daemon")
    assert worker.entries() == []
    text = caplog.text
    assert "no `queue_url`" in text and "no `adapter_store`" in text


@pytest.mark.slow
def test_worker_trains_publishes_and_reports_in_the_team_queue(tmp_path: Path, pg_url: str,
                                                               world_model: Path) -> None:
    """A real training on the world's tiny model by `redline worker --once`: the adapter lands in the store as
    `<repo>@v0001`, promoted, its gate report inside it; the training status lands in the team queue."""
    from bench.world import HINDSIGHT_TEMPLATE, make_records, make_repos
    from redline.trainer.feedback_text import is_passed

    repo = make_repos(1, 0)[0]
    records = make_records(world_model, repo, 48, seed=0)
    held = [(dataclasses.replace(g, split="heldout"), fbs) for g, fbs in records[36:] if not is_passed(fbs)]
    root = tmp_path / "app"
    root.mkdir()
    (root / "redline.toml").write_text(
        f'repo_id = "github.com/acme/app"\nqueue_url = "{pg_url}"\nadapter_store = "{tmp_path / "store"}"\n'
        f'model = "{world_model}"\nscrub_secrets = false\ntrain_on_cpu = true\ntrain_window = "00:00-23:59"\n'
        f'train_min_feedback = 1\n[train]\nhindsight = "template"\ntemplate = {json.dumps(HINDSIGHT_TEMPLATE)}\n'
        "batch_size = 8\nlr = 2e-3\nmax_steps = 40\n", encoding="utf-8")
    store = open_store(load_config(root))
    for g, fbs in records[:36] + held:
        store.add([g], fbs)
    run = subprocess.run([PYTHON, "-m", "redline", "worker", "--once", "--repo", str(root)], cwd=tmp_path,
                         env=python_env(REDLINE_HOME=str(tmp_path / "gpu-home")), capture_output=True, text=True,
                         timeout=1500)
    assert run.returncode == 0 and "trained" in run.stdout, run.stdout + run.stderr[-3000:]
    published = AdapterStore(tmp_path / "store", "github.com/acme/app")
    assert published.current() == "v0001", run.stdout + run.stderr[-3000:]
    assert (tmp_path / "store" / "app@v0001" / "adapter_config.json").is_file()
    assert published.meta("v0001")["gate"]["passed"] is True
    status = read_status(store)
    assert status.last is not None and status.last.result == "promoted" and status.adapter.version == "v0001"
    assert store.backlog()[0] == 0
    store.close()
