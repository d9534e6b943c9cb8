"""Tasks: a short chain of API calls asked for in one comment line, answered by the body of `def task():`.

A task's *structure* is its sequence of API functions (e.g. read_file → parse_json → send); its literals (paths,
hosts, keys) are drawn per task. Held-out tasks use structures that no train task uses, so they test the same
changed conventions in new combinations, not memorised outputs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bench.world.api import APIS, Conventions, render_call

WORDS = ("alpha", "beta", "gamma", "delta", "omega", "north", "south", "east", "west", "blue", "green", "red",
         "users", "orders", "items", "cache", "main", "notes", "report", "stats", "events", "config", "backup",
         "sales", "jobs", "queue", "audit", "metrics", "inbox", "prices")
KEYS = ("id", "name", "date", "price", "age", "score", "city", "email", "total", "status", "owner", "rank")
VARS = "abcdefgh"
RETURN = "return"
#: the line every prompt ends with; the completion is the indented function body
SIGNATURE = "def task():\n"


def literal(kind: str, rng: random.Random) -> str:
    w = rng.choice(WORDS)
    if kind == "path":
        return f"{w}.{rng.choice(('txt', 'json', 'csv', 'log'))}"
    if kind == "url":
        return f"{w}.{rng.choice(('com', 'org', 'io'))}"
    if kind == "host":
        return f"{rng.choice(('db', 'srv', 'node'))}-{w}"
    if kind in ("key", "name"):
        return rng.choice(KEYS)
    return w  # table


@dataclass(frozen=True)
class Task:
    id: str
    #: API names in call order; a final "return" means the last value is returned
    structure: tuple[str, ...]
    #: literal arguments per step, as (parameter, value) pairs
    literals: tuple[tuple[tuple[str, str], ...], ...]

    @property
    def apis(self) -> tuple[str, ...]:
        return tuple(s for s in self.structure if s != RETURN)

    @property
    def prompt(self) -> str:
        phrases = []
        for step, lits in zip(self.structure, self.literals, strict=True):
            if step == RETURN:
                phrases.append("return it")
                continue
            phrases.append(APIS[step].phrase.format(**{k: f'"{v}"' for k, v in lits}))
        return "# " + ", ".join(phrases) + "\n" + SIGNATURE

    def solution(self, conv: Conventions) -> str:
        """The correct body under conventions `conv` (no trailing newline)."""
        lines = []
        var = None
        for i, (step, lits) in enumerate(zip(self.structure, self.literals, strict=True)):
            if step == RETURN:
                lines.append(f"return {var}")
                continue
            api = APIS[step]
            args = {k: f'"{v}"' for k, v in lits}
            if api.value_param is not None:
                args[api.value_param.name] = var
            call = render_call(api, args, conv)
            if api.returns is None:
                lines.append(call)
            else:
                var = VARS[i]
                lines.append(f"{var} = {call}")
        return "\n".join("    " + line for line in lines)


def all_structures(max_producers: int = 3) -> list[tuple[str, ...]]:
    """Every type-correct chain: a source, up to two transforms, then a sink or `return`."""
    out: list[tuple[str, ...]] = []

    def extend(chain: tuple[str, ...], typ: str) -> None:
        if typ != "Conn":  # a bare connection is not worth returning
            out.append((*chain, RETURN))
        for api in APIS.values():
            vp = api.value_param
            if vp is None or vp.type != typ or api.name in chain:
                continue
            if api.returns is None:
                out.append((*chain, api.name))
            elif len(chain) < max_producers:
                extend((*chain, api.name), api.returns)

    for src in APIS.values():
        if src.value_param is None and src.returns:
            extend((src.name,), src.returns)
    return sorted(set(out))


def make_task(structure: tuple[str, ...], rng: random.Random, task_id: str) -> Task:
    lits = []
    for step in structure:
        if step == RETURN:
            lits.append(())
            continue
        lits.append(tuple((p.name, literal(p.name, rng)) for p in APIS[step].literal_params))
    return Task(task_id, structure, tuple(lits))
