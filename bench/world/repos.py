"""Repositories: a seeded set of convention changes, and its train / held-out / unchanged task split."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bench.world.api import APIS, WRAPPERS, Change, Conventions
from bench.world.checker import CheckResult, execute
from bench.world.checker import check as check_code
from bench.world.tasks import RETURN, Task, all_structures, make_task


def random_change(api_name: str, rng: random.Random) -> Change:
    api = APIS[api_name]
    kind = rng.choice(api.changes)
    if kind in ("rename", "banned"):
        return Change(api_name, kind, rng.choice(api.aliases))
    if kind == "kwarg":
        key, value = rng.choice(api.kwargs)
        return Change(api_name, kind, f"{key}={value}")
    if kind == "wrapper":
        return Change(api_name, kind, rng.choice(WRAPPERS))
    if kind == "literal":
        return Change(api_name, kind, rng.choice(api.const[1:]))
    return Change(api_name, kind)


def random_conventions(rng: random.Random, n_changes: int) -> Conventions:
    """`n_changes` APIs changed, one change each. At most one wrapper name per repository."""
    conv: Conventions = {}
    for name in rng.sample(sorted(APIS), n_changes):
        conv[name] = random_change(name, rng)
    wrappers = {ch.value for ch in conv.values() if ch.kind == "wrapper"}
    if len(wrappers) > 1:
        first = sorted(wrappers)[0]
        for name, ch in conv.items():
            if ch.kind == "wrapper":
                conv[name] = Change(name, "wrapper", first)
    return conv


def expected_effects(task: Task, conv: Conventions) -> list[tuple[str, ...]]:
    run, fatal = execute(task.solution(conv), conv, task.params)
    if fatal is not None or run.errors:
        raise AssertionError(f"reference solution of {task.id} fails: {fatal or run.errors}")
    return run.effects


@dataclass
class Repo:
    id: str
    seed: int
    conventions: Conventions
    train_tasks: list[Task] = field(default_factory=list)
    heldout_tasks: list[Task] = field(default_factory=list)
    unchanged_tasks: list[Task] = field(default_factory=list)

    @property
    def changed(self) -> set[str]:
        return set(self.conventions)

    def solution(self, task: Task) -> str:
        return task.solution(self.conventions)

    def describe(self) -> str:
        return f"{self.id}: " + "; ".join(ch.describe() for ch in self.conventions.values())


def check(repo: Repo, task: Task, code: str) -> CheckResult:
    """Run the repository's tests, linter and reviewer on `code`, an attempt at `task`."""
    return check_code(repo.conventions, code, expected_effects(task, repo.conventions), task.params)


def _split(structures: list[tuple[str, ...]], changed: set[str], rng: random.Random
           ) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]] | None:
    """Half of the changed-API structures for training, half held out; every changed API in both halves."""
    touched = [s for s in structures if changed & set(s)]
    for _ in range(200):
        rng.shuffle(touched)
        half = len(touched) // 2
        train, held = touched[:half], touched[half:]
        if all(any(a in s for s in train) and any(a in s for s in held) for a in changed):
            return train, held
    return None


def make_repo(index: int, seed: int, *, n_changes: int = 5, n_train: int = 512, n_heldout: int = 128,
              n_unchanged: int = 128) -> Repo:
    rng = random.Random(f"redline-world:{seed}:{index}")
    structures = all_structures()
    while True:
        conv = random_conventions(rng, n_changes)
        unchanged = [s for s in structures if not set(conv) & set(s)]
        split = _split(structures, set(conv), rng)
        if split is not None and len(unchanged) >= 8:
            break
    train_structs, held_structs = split
    repo = Repo(f"world-{seed}-{index}", seed, conv)
    pool = [*train_structs] * 3 + unchanged  # about a quarter of the train records touch no changed API
    repo.train_tasks = [make_task(rng.choice(pool), f"{repo.id}/train/{i}") for i in range(n_train)]
    repo.heldout_tasks = [make_task(rng.choice(held_structs), f"{repo.id}/heldout/{i}")
                          for i in range(n_heldout)]
    repo.unchanged_tasks = [make_task(rng.choice(unchanged), f"{repo.id}/unchanged/{i}")
                            for i in range(n_unchanged)]
    return repo


def make_repos(n: int, seed: int = 0, **kwargs: int) -> list[Repo]:
    """`n` repositories, each a seeded set of convention changes with its own task split."""
    return [make_repo(i, seed, **kwargs) for i in range(n)]


__all__ = ["RETURN", "Repo", "check", "expected_effects", "make_repo", "make_repos", "random_conventions"]
