"""World 2's framework: the steps a handler may take, the ways a repository may change them, and code rendering.

The domain is a tiny web/data framework. A task asks for one handler function `handle_<noun>` made of steps:
an optional route decorator, one source (a record's field, a fetched url, a plain string argument), optional text
steps (normalise, slugify), sinks (save to the database, cache, log) and an optional return. The default
conventions are what a generic tutorial would write; a repository changes a few steps, one change each:

- route (`@app.post("/orders")`): `decorator` (+ `@requires_auth`), `first_stmt` (`trace("handle_order")` first)
- read (`return None` when the field is missing): `errors` (`raise MissingField("email")`), `param_name`
  (`def handle_order(event)` instead of `record`)
- fetch (`import http`, `http.fetch(url, timeout=5)`): `units` (`timeout=5000`), `import_path`
  (`from core.net import fetch`), `param_name` (`endpoint` instead of `url`)
- clean (`x = x.strip().lower()`): `helper` (`x = normalize(x)`)
- slug (`import text`, `text.slugify(x)`): `import_path` (`from core.text import slugify`)
- save (`db.insert(...)`): `context` (inside `with db.transaction():`)
- cache (`ttl=30`, seconds): `units` (`ttl=30000`, milliseconds)
- log (`print(f"...")`): `forbidden` (`print` is banned: `log.info(f"...")`)
- return (`return email, slug`): `return_shape` (`return {"email": email, ...}` or `Result(email=email, ...)`)

The `arg` source never changes, so every repository has unchanged tasks (forgetting is measured there).
Pure Python, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES = ("read", "fetch", "arg")
SINKS = ("save", "cache", "log")
#: every step in the order a handler's code takes them
STEPS = ("route", *SOURCES, "clean", "slug", *SINKS, "return")

#: the kinds of change each step admits
KINDS: dict[str, tuple[str, ...]] = {
    "route": ("decorator", "first_stmt"),
    "read": ("errors", "param_name"),
    "fetch": ("units", "import_path", "param_name"),
    "arg": (),
    "clean": ("helper",),
    "slug": ("import_path",),
    "save": ("context",),
    "cache": ("units",),
    "log": ("forbidden",),
    "return": ("return_shape",),
}
CHANGE_KINDS = ("decorator", "first_stmt", "errors", "param_name", "units", "import_path", "helper", "context",
                "forbidden", "return_shape")

#: the values a repository may pick for each kind (param_name and import_path differ by step)
VARIANTS: dict[str, tuple[str, ...]] = {
    "decorator": ("requires_auth", "login_required", "authenticated"),
    "first_stmt": ("trace", "audit", "count_request"),
    "errors": ("MissingField", "ValidationError", "BadRequest"),
    "param_name:read": ("event", "payload", "item"),
    "param_name:fetch": ("endpoint", "link", "source"),
    "units": ("ms",),
    "import_path": ("core", "lib", "utils"),  # the package root: `from core.text import slugify`
    "helper": ("normalize", "clean_text", "canonical"),
    "context": ("transaction", "atomic", "session"),
    "forbidden": ("log.info", "log.debug", "logger.info"),
    "return_shape": ("dict", "Result"),
}

DEFAULT_PARAM = {"read": "record", "fetch": "url"}
#: the module each import_path step comes from by default, and the function it provides
MODULES = {"slug": ("text", "slugify"), "fetch": ("http", "fetch")}
SUBMODULE = {"slug": "text", "fetch": "net"}
EXCEPTION_MODULE = "errors"


@dataclass(frozen=True)
class Change:
    """How one repository departs from the default for one step."""

    step: str
    kind: str
    value: str = ""

    def describe(self) -> str:
        return f"{self.step}: {self.kind}" + (f" {self.value}" if self.value else "")


Conventions = dict[str, Change]


def variants(step: str, kind: str) -> tuple[str, ...]:
    return VARIANTS.get(f"{kind}:{step}", VARIANTS.get(kind, ()))


def kind_of(conv: Conventions, step: str) -> tuple[str, str]:
    """(kind, value) of the change to `step`, or ("", "")."""
    ch = conv.get(step)
    return (ch.kind, ch.value) if ch else ("", "")


def param_name(conv: Conventions, step: str) -> str:
    kind, value = kind_of(conv, step)
    return value if kind == "param_name" else DEFAULT_PARAM[step]


def import_line(conv: Conventions, step: str) -> tuple[str, str]:
    """(import statement, the name code calls) for a step that uses a module."""
    module, func = MODULES[step]
    kind, root = kind_of(conv, step)
    if kind == "import_path":
        return f"from {root}.{SUBMODULE[step]} import {func}", func
    return f"import {module}", f"{module}.{func}"


def new_module(conv: Conventions, step: str) -> str | None:
    """The dotted module a repository's import_path change points to, if any."""
    kind, root = kind_of(conv, step)
    return f"{root}.{SUBMODULE[step]}" if kind == "import_path" else None


def log_call(conv: Conventions) -> str:
    kind, value = kind_of(conv, "log")
    return value if kind == "forbidden" else "print"


def seconds(conv: Conventions, step: str, value: int) -> int:
    """A duration literal as this repository writes it (seconds, or milliseconds under `units`)."""
    kind, _ = kind_of(conv, step)
    return value * 1000 if kind == "units" else value
