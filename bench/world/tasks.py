"""Tasks: a short chain of API calls asked for in one comment line, answered by the body of a `def task(...)`.

A task's *structure* is its sequence of API functions (e.g. read_file → parse_json → send); the function's
parameters carry the paths, hosts and keys (`def task(src, target):`). Held-out tasks use structures that no train
task uses, so they test the same changed conventions in new combinations, not memorised outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.world.api import APIS, Conventions, render_call

VARS = "abcdefgh"
RETURN = "return"
#: the name a task's parameter gets for each API's literal argument (unique within any chain)
ARG_NAMES = {("read_file", "path"): "src", ("write_file", "path"): "dest", ("fetch", "url"): "url",
             ("connect", "host"): "host", ("send", "host"): "target", ("query", "table"): "table",
             ("sort_rows", "key"): "key", ("filter_rows", "key"): "field", ("get_field", "name"): "name"}


@dataclass(frozen=True)
class Task:
    id: str
    #: API names in call order; a final "return" means the last value is returned
    structure: tuple[str, ...]
    #: literal arguments per step, as (parameter, task argument name) pairs
    literals: tuple[tuple[tuple[str, str], ...], ...]

    @property
    def apis(self) -> tuple[str, ...]:
        return tuple(s for s in self.structure if s != RETURN)

    @property
    def params(self) -> tuple[str, ...]:
        """The task function's parameters, in order of use."""
        return tuple(arg for lits in self.literals for _, arg in lits)

    @property
    def signature(self) -> str:
        return f"def task({', '.join(self.params)}):\n"

    @property
    def prompt(self) -> str:
        phrases = []
        for step, lits in zip(self.structure, self.literals, strict=True):
            if step == RETURN:
                phrases.append("return it")
                continue
            phrases.append(APIS[step].phrase.format(**dict(lits)))
        return "# " + ", ".join(phrases) + "\n" + self.signature

    def solution(self, conv: Conventions) -> str:
        """The correct body under conventions `conv` (no trailing newline)."""
        lines = []
        var = None
        for i, (step, lits) in enumerate(zip(self.structure, self.literals, strict=True)):
            if step == RETURN:
                lines.append(f"return {var}")
                continue
            api = APIS[step]
            args = dict(lits)
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


def make_task(structure: tuple[str, ...], task_id: str) -> Task:
    lits = []
    for step in structure:
        if step == RETURN:
            lits.append(())
            continue
        lits.append(tuple((p.name, ARG_NAMES[step, p.name]) for p in APIS[step].literal_params))
    return Task(task_id, structure, tuple(lits))
