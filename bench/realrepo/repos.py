"""Repository variants: helper names, active rules, and the train / held-out / unchanged task split."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bench.realrepo.rules import ALTERNATIVES, RULES, Names
from bench.realrepo.tasks import Spec, Task, pure_specs, rule_specs

#: pure functions that go to the train split (code the developer keeps: anchors against forgetting); the rest are
#: the unchanged tasks, held out
N_PURE_TRAIN = 16


@dataclass
class Repo:
    id: str
    seed: int
    names: Names
    #: the active rule codes
    rules: frozenset[str]
    train_tasks: list[Task] = field(default_factory=list)
    heldout_tasks: list[Task] = field(default_factory=list)
    unchanged_tasks: list[Task] = field(default_factory=list)

    @property
    def conventions(self) -> dict[str, str]:
        """Active rule code → its message, as the linter says it."""
        return {code: RULES[code].render(self.names) for code in sorted(self.rules)}

    @property
    def hints(self) -> list[str]:
        """The rules as one line each, for the hint baseline (rules in the prompt)."""
        return [RULES[code].render_hint(self.names) for code in sorted(self.rules)]

    def solution(self, task: Task) -> str:
        return task.solution()

    def task(self, task_id: str) -> Task:
        for t in (*self.train_tasks, *self.heldout_tasks, *self.unchanged_tasks):
            if t.id == task_id:
                return t
        raise KeyError(task_id)

    def describe(self) -> str:
        renamed = {k: v for k, v in self.names.as_dict().items() if k != v}
        return (f"{self.id}: rules {', '.join(sorted(self.rules))}"
                + (f"; helpers renamed {renamed}" if renamed else ""))


def _task(repo_id: str, split: str, spec: Spec, names: Names, rules: frozenset[str]) -> Task:
    return Task(f"{repo_id}/{split}/{spec.name}", spec, names, tuple(r for r in spec.rules if r in rules))


def make_repo(index: int, seed: int = 0) -> Repo:
    """Variant 0 of seed 0 is the canonical repository (every rule, the helper names of issue #26); others draw
    helper names and drop one or two rules (whose tasks then touch no rule and train as plain code)."""
    rng = random.Random(f"redline-realrepo:{seed}:{index}")
    if index == 0 and seed == 0:
        names, rules = Names(), frozenset(RULES)
    else:
        names = Names(**{k: rng.choice(v) for k, v in ALTERNATIVES.items()})
        rules = frozenset(rng.sample(sorted(RULES), len(RULES) - rng.choice((1, 2))))
    repo = Repo(f"realrepo-{seed}-{index}", seed, names, rules)
    train_specs, held_specs = rule_specs()
    pure = pure_specs()
    random.Random(f"redline-realrepo:pure:{seed}").shuffle(pure)
    for spec in train_specs:
        repo.train_tasks.append(_task(repo.id, "train", spec, names, rules))
    for spec in held_specs:
        task = _task(repo.id, "heldout", spec, names, rules)
        # a held-out task of a dropped rule teaches nothing to hold out: it trains as plain code instead
        (repo.heldout_tasks if task.rules else repo.train_tasks).append(task)
    for spec in pure[:N_PURE_TRAIN]:
        repo.train_tasks.append(_task(repo.id, "train", spec, names, rules))
    for spec in pure[N_PURE_TRAIN:]:
        repo.unchanged_tasks.append(_task(repo.id, "unchanged", spec, names, rules))
    return repo


def make_repos(n: int, seed: int = 0) -> list[Repo]:
    return [make_repo(i, seed) for i in range(n)]
