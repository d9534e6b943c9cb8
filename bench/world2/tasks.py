"""Tasks: one handler function asked for in one chat message, answered with a whole module of code.

A task's *structure* is its tuple of steps (`("route", "read", "clean", "slug", "save", "return")`); its literals
(`Task.params`) are the handler's noun (name, route path, table), the route's method, the field read, and the
durations. Held-out tasks use structures that no train task uses.

    Write `handle_order` for the POST /orders route: take the `email` field of a record, normalise it, slugify it,
    save it, cache it for 30 s, log it, return both.

    import text


    @app.post("/orders")
    def handle_order(record):
        value = record.get("email")
        if value is None:
            return None
        value = value.strip().lower()
        slug = text.slugify(value)
        db.insert("orders", {"email": value, "slug": slug})
        cache.set(slug, value, ttl=30)
        print(f"order {slug}")
        return value, slug

The main value is always called `value` (`body` after a fetch) and an `arg` task's parameter is `value` too: the
field's name appears only inside quotes and keys, where it is the very token the prompt shows, so the model copies
it rather than translating `email` into ` email`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from bench.world2.api import SINKS, SOURCES, STEPS, Conventions, import_line, kind_of, log_call, param_name, seconds

NOUNS = ("signup", "order", "invoice", "ticket", "payment", "comment", "session", "upload", "review", "profile",
         "refund", "booking", "message", "report", "account", "alert")
FIELDS = ("email", "name", "title", "city", "code", "tag", "phone", "country", "label", "note")
METHODS = ("get", "post", "put", "delete")
TTLS = (20, 30, 45, 60, 90)  # cache lifetimes, seconds (distinct first digits)
TIMEOUTS = (1, 2, 3, 5, 8)  # fetch timeouts, seconds (disjoint from TTLS, so a unit error names one call)
INDENT = "    "

_PHRASES = {
    "read": "take the `{field}` field of a record",
    "fetch": "fetch a url with timeout {timeout} s",
    "arg": "take a `{field}` string",  # the parameter is `value`; the field names it in rows and results
    "clean": "normalise it",
    "slug": "slugify it",
    "save": "save it",
    "cache": "cache it for {ttl} s",
    "log": "log it",
}


@dataclass(frozen=True)
class Task:
    id: str
    #: steps in code order, a subsequence of `api.STEPS` with exactly one source
    structure: tuple[str, ...]
    #: the literals, as sorted (name, value) pairs: noun, and method / field / ttl / timeout where used
    params: tuple[tuple[str, Any], ...]

    @property
    def apis(self) -> tuple[str, ...]:
        """The steps, under world 0's name for "what a task touches" (`repo.changed & set(task.apis)`)."""
        return self.structure

    @property
    def lit(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def name(self) -> str:
        return f"handle_{self.lit['noun']}"

    @property
    def source(self) -> str:
        return next(s for s in self.structure if s in SOURCES)

    @property
    def value(self) -> str:
        """The variable holding the main value: `body` for a fetch, else `value`."""
        return "body" if self.source == "fetch" else "value"

    @property
    def values(self) -> list[str]:
        return [self.value, *(["slug"] if "slug" in self.structure else [])]

    @property
    def keys(self) -> list[str]:
        """The names the values go by in rows and results: the field's name (or `body`), then `slug`."""
        return [self.lit.get("field", "body"), *(["slug"] if "slug" in self.structure else [])]

    @property
    def prompt(self) -> str:
        """The user turn of the chat (the world's prompts are chat messages: `[{"role": "user", "content": …}]`)."""
        lit = self.lit
        head = f"Write `{self.name}`"
        if "route" in self.structure:
            head += f" for the {lit['method'].upper()} /{lit['noun']}s route"
        parts = [_PHRASES[s].format(**lit) for s in self.structure if s in _PHRASES]
        if "return" in self.structure:
            parts.append("return both" if len(self.values) > 1 else "return it")
        return f"{head}: {', '.join(parts)}."

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt}]

    def solution(self, conv: Conventions) -> str:
        """The correct module under conventions `conv`."""
        return render(self, conv)


def render(task: Task, conv: Conventions) -> str:
    s, lit = set(task.structure), task.lit
    noun, v, values, keys = lit["noun"], task.value, task.values, task.keys
    pairs = list(zip(keys, values, strict=True))
    imports, decorators, params, body = [], [], [], []
    if "route" in s:
        decorators.append(f'@app.{lit["method"]}("/{noun}s")')
        kind, value = kind_of(conv, "route")
        if kind == "decorator":
            decorators.append(f"@{value}")
        if kind == "first_stmt":
            body.append(f'{value}("{task.name}")')
    if "read" in s:
        p = param_name(conv, "read")
        params.append(p)
        kind, value = kind_of(conv, "read")
        missing = f'raise {value}("{lit["field"]}")' if kind == "errors" else "return None"
        body += [f'{v} = {p}.get("{lit["field"]}")', f"if {v} is None:", INDENT + missing]
    if "fetch" in s:
        p = param_name(conv, "fetch")
        params.append(p)
        line, call = import_line(conv, "fetch")
        imports.append(line)
        body.append(f"body = {call}({p}, timeout={seconds(conv, 'fetch', lit['timeout'])})")
    if "arg" in s:
        params.append(v)
    if "clean" in s:
        kind, value = kind_of(conv, "clean")
        body.append(f"{v} = {value}({v})" if kind == "helper" else f"{v} = {v}.strip().lower()")
    if "slug" in s:
        line, call = import_line(conv, "slug")
        imports.append(line)
        body.append(f"slug = {call}({v})")
    if "save" in s:
        row = "{" + ", ".join(f'"{k}": {x}' for k, x in pairs) + "}"
        insert = f'db.insert("{noun}s", {row})'
        kind, value = kind_of(conv, "save")
        body += [f"with db.{value}():", INDENT + insert] if kind == "context" else [insert]
    if "cache" in s:
        key = "slug" if "slug" in s else f'"{noun}"'
        body.append(f"cache.set({key}, {v}, ttl={seconds(conv, 'cache', lit['ttl'])})")
    if "log" in s:
        body.append(f'{log_call(conv)}(f"{noun} {{{values[-1]}}}")')
    if "return" in s:
        kind, value = kind_of(conv, "return")
        if kind == "return_shape" and value == "dict":
            body.append("return {" + ", ".join(f'"{k}": {x}' for k, x in pairs) + "}")
        elif kind == "return_shape":
            body.append(f"return {value}(" + ", ".join(f"{k}={x}" for k, x in pairs) + ")")
        else:
            body.append("return " + ", ".join(values))
    head = "\n".join(imports) + "\n\n\n" if imports else ""
    lines = [*decorators, f"def {task.name}({', '.join(params)}):", *(INDENT + b for b in body)]
    return head + "\n".join(lines)


def all_structures() -> list[tuple[str, ...]]:
    """Every structure: route or not, one source, clean / slug or not, any sinks, return or not (something must
    come out: a sink or a return). 360 in all."""
    out = []
    for route, source, clean, slug, *rest in itertools.product((0, 1), SOURCES, (0, 1), (0, 1),
                                                               *[(0, 1)] * (len(SINKS) + 1)):
        if not any(rest):
            continue
        sinks = dict(zip((*SINKS, "return"), rest, strict=True))
        flags = {"route": route, source: 1, "clean": clean, "slug": slug, **sinks}
        out.append(tuple(step for step in STEPS if flags.get(step)))
    return out


def literal_choices(structure: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    s = set(structure)
    choices: dict[str, tuple[Any, ...]] = {"noun": NOUNS}
    if "route" in s:
        choices["method"] = METHODS
    if s & {"read", "arg"}:
        choices["field"] = FIELDS
    if "cache" in s:
        choices["ttl"] = TTLS
    if "fetch" in s:
        choices["timeout"] = TIMEOUTS
    return choices


def make_task(structure: tuple[str, ...], task_id: str, rng: Any) -> Task:
    """A task of `structure` with literals drawn by `rng` (a `random.Random`)."""
    lit = {key: rng.choice(values) for key, values in literal_choices(structure).items()}
    return Task(task_id, tuple(structure), tuple(sorted(lit.items())))
