"""Repositories: a seeded set of convention changes, and its train / held-out / unchanged task split."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bench.world2.api import KINDS, Change, Conventions, variants
from bench.world2.checker import CheckResult, Execution, execute
from bench.world2.checker import check as check_code
from bench.world2.tasks import Task, all_structures, literal_choices, make_task

CHANGEABLE = tuple(step for step, kinds in KINDS.items() if kinds)


def random_change(step: str, rng: random.Random, root: str | None = None) -> Change:
    """One change to `step`; `root` fixes the package an import_path change points to (one per repository)."""
    kind = rng.choice(KINDS[step])
    if kind == "import_path" and root is not None:
        return Change(step, kind, root)
    return Change(step, kind, rng.choice(variants(step, kind)))


def random_conventions(rng: random.Random, n_changes: int) -> Conventions:
    """`n_changes` steps changed, one change each; all import paths of one repository share a package root."""
    root = rng.choice(variants("slug", "import_path"))
    return {step: random_change(step, rng, root) for step in sorted(rng.sample(CHANGEABLE, n_changes))}


@dataclass
class Repo:
    id: str
    seed: int
    conventions: Conventions
    train_tasks: list[Task] = field(default_factory=list)
    heldout_tasks: list[Task] = field(default_factory=list)
    unchanged_tasks: list[Task] = field(default_factory=list)
    _reference: dict[str, Execution] = field(default_factory=dict, repr=False)

    @property
    def changed(self) -> set[str]:
        return set(self.conventions)

    def solution(self, task: Task) -> str:
        return task.solution(self.conventions)

    def reference(self, task: Task) -> Execution:
        """What the reference solution does under the test suite (cached per task)."""
        if task.id not in self._reference:
            run = execute(task, self.conventions, self.solution(task))
            if run.fatal is not None:
                raise AssertionError(f"reference solution of {task.id} fails: {run.fatal}")
            self._reference[task.id] = run
        return self._reference[task.id]

    def describe(self) -> str:
        return f"{self.id}: " + "; ".join(ch.describe() for ch in self.conventions.values())


def check(repo: Repo, task: Task, code: str) -> CheckResult:
    """Run the repository's tests, linters, type checker and reviewer on `code`, an attempt at `task`."""
    return check_code(task, repo.conventions, code, repo.reference(task))


def _split(structures: list[tuple[str, ...]], changed: set[str], rng: random.Random
           ) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]] | None:
    """Two thirds of the changed-step structures for training, a third held out; every changed step in both."""
    touched = [s for s in structures if changed & set(s)]
    for _ in range(200):
        rng.shuffle(touched)
        cut = len(touched) * 2 // 3
        train, held = touched[:cut], touched[cut:]
        if all(any(a in s for s in train) and any(a in s for s in held) for a in changed):
            return train, held
    return None


def _distinct(structures: list[tuple[str, ...]], n: int, prefix: str, rng: random.Random,
              taken: set[tuple] | None = None) -> list[Task]:
    """`n` tasks with distinct (structure, literals), structures drawn uniformly from `structures`."""
    taken = set() if taken is None else taken
    space = sum(_count(s) for s in structures)
    if n > space - len(taken & {("",)}):
        raise ValueError(f"{prefix}: {n} distinct tasks asked of a space of {space}")
    out: list[Task] = []
    while len(out) < n:
        task = make_task(rng.choice(structures), f"{prefix}/{len(out)}", rng)
        key = (task.structure, task.params)
        if key not in taken:
            taken.add(key)
            out.append(task)
    return out


def _count(structure: tuple[str, ...]) -> int:
    total = 1
    for values in literal_choices(structure).values():
        total *= len(values)
    return total


def make_repo(index: int, seed: int, *, n_changes: int = 5, n_train: int = 512, n_heldout: int = 128,
              n_unchanged: int = 128) -> Repo:
    rng = random.Random(f"redline-world2:{seed}:{index}")
    structures = all_structures()
    while True:
        conv = random_conventions(rng, n_changes)
        unchanged = [s for s in structures if not set(conv) & set(s)]
        split = _split(structures, set(conv), rng)
        if split is not None and len(unchanged) >= 8:
            break
    train_structs, held_structs = split
    repo = Repo(f"world2-{seed}-{index}", seed, conv)
    n_plain = n_train // 4  # about a quarter of the train records touch no changed step
    taken: set[tuple] = set()
    repo.unchanged_tasks = _distinct(unchanged, n_unchanged, f"{repo.id}/unchanged", rng, taken)
    train = _distinct(train_structs, n_train - n_plain, f"{repo.id}/train", rng, taken)
    plain = _distinct(unchanged, n_plain, f"{repo.id}/train-plain", rng, taken)
    mixed = train + plain
    rng.shuffle(mixed)
    repo.train_tasks = [Task(f"{repo.id}/train/{i}", t.structure, t.params) for i, t in enumerate(mixed)]
    repo.heldout_tasks = _distinct(held_structs, n_heldout, f"{repo.id}/heldout", rng, taken)
    return repo


def make_repos(n: int, seed: int = 0, **kwargs: int) -> list[Repo]:
    """`n` repositories, each a seeded set of convention changes with its own task split."""
    return [make_repo(i, seed, **kwargs) for i in range(n)]


__all__ = ["Repo", "check", "make_repo", "make_repos", "random_change", "random_conventions"]
