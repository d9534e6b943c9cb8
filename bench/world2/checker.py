"""The checker: answers an attempt the way a repository's tools do — a test run, linters, a type checker, a reviewer.

The attempt (a whole module) must pass an AST allow-list (plain statements, no loops, classes, comprehensions,
operators or private names; attributes from the world's API only), then runs with no builtins but an importer of
the world's fake modules, against this repository's fake framework (`app`, `db`, `cache`, its logger, helpers and
exceptions — only the ones this repository has). The test suite imports the module, checks the route, calls the
handler by keyword with the repository's parameter names (on a TypeError it retries positionally, so one run names
every problem), then with the field missing, and compares every effect (fetches, inserts, cache writes, log lines,
return value, raised exception) with the reference solution's. Lint, type and review rules read the AST.

Voices (kind / source):
- test_failure / pytest: `TypeError: handle_order() got an unexpected keyword argument 'event'`,
  `Failed: DID NOT RAISE <class 'errors.MissingField'>`, `AssertionError: assert 30 == 30000`,
  `AssertionError: assert ('a', 'b') == {'email': 'a', 'slug': 'b'}`,
  ``AssertionError: insert into 'orders' ran outside `with db.transaction():` ``
- diagnostic / ruff: ``TID251 `text` is banned: use `from core.text import slugify` ``, ``T201 `print` found``,
  ``RL101 a route handler must start with `trace("handle_order")` ``
- diagnostic / mypy: `Incompatible return value type (got "tuple[str, str]", expected "Result | None")`
- review / reviewer: ``add `@requires_auth` below the route decorator``, ``use `normalize(email)` instead of …``
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from bench.world2.api import MODULES, Conventions, kind_of, log_call, new_module, param_name
from bench.world2.tasks import Task


@dataclass(frozen=True)
class Finding:
    kind: str  # test_failure | diagnostic | review
    source: str  # pytest | ruff | mypy | reviewer
    message: str
    detail: str | None = None
    severity: str = "error"
    rule: str | None = None
    line: int | None = None  # 1-based line in the completion


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    findings: tuple[Finding, ...] = ()

    @property
    def feedback_kind(self) -> str:
        return self.findings[0].kind if self.findings else "accept"

    @property
    def source(self) -> str:
        return self.findings[0].source if self.findings else "pytest"

    @property
    def message(self) -> str:
        return self.findings[0].message if self.findings else "all checks passed"

    @property
    def detail(self) -> str | None:
        return self.findings[0].detail if self.findings else None


SAMPLES = {"email": " Ada@Example.com ", "name": " Ada Lovelace ", "title": " Hello World ", "city": " New York ",
           "code": " AB 12 ", "tag": " Python ", "phone": " 555 0100 ", "country": " France ",
           "label": " Urgent Fix ", "note": " Call Back "}
TEST_FILE = "tests/test_handlers.py"

# -- the fake framework --------------------------------------------------------------------------------------------


@dataclass
class Run:
    effects: list[tuple[Any, ...]] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    tx_depth: int = 0


def slugify(text: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


class Module:
    def __init__(self, name: str, **attrs: Any) -> None:
        self.__name__ = name
        self.__dict__.update(attrs)

    def __repr__(self) -> str:
        return f"<module '{self.__name__}'>"


class App:
    def __init__(self, run: Run) -> None:
        self._run = run

    def _route(self, method: str, path: Any) -> Any:
        def register(fn: Any) -> Any:
            self._run.routes.append(f"{method} {path}")
            return fn

        return register

    def get(self, path: str) -> Any:
        return self._route("GET", path)

    def post(self, path: str) -> Any:
        return self._route("POST", path)

    def put(self, path: str) -> Any:
        return self._route("PUT", path)

    def delete(self, path: str) -> Any:
        return self._route("DELETE", path)


class Transaction:
    def __init__(self, run: Run) -> None:
        self._run = run

    def __enter__(self) -> Transaction:
        self._run.tx_depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self._run.tx_depth -= 1


class Database:
    def __init__(self, run: Run, context: str | None) -> None:
        self._run = run
        if context:
            setattr(self, context, lambda: Transaction(run))

    def insert(self, table: str, row: dict[str, Any]) -> None:
        self._run.effects.append(("insert", table, row, self._run.tx_depth > 0))


class Cache:
    def __init__(self, run: Run) -> None:
        self._run = run

    def set(self, key: Any, value: Any, ttl: Any = None) -> None:
        self._run.effects.append(("cache", key, value, ttl))


class Logger:
    def __init__(self, run: Run) -> None:
        self._run = run

    def _log(self, level: str, message: Any) -> None:
        self._run.effects.append(("log", level, str(message)))

    def info(self, message: Any) -> None:
        self._log("INFO", message)

    def debug(self, message: Any) -> None:
        self._log("DEBUG", message)

    def warning(self, message: Any) -> None:
        self._log("WARNING", message)


class Result:
    """A repository's named return type: keyword fields only."""

    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Result) and other.fields == self.fields

    def __repr__(self) -> str:
        return "Result(" + ", ".join(f"{k}={v!r}" for k, v in self.fields.items()) + ")"


def _exception(name: str) -> type[Exception]:
    return type(name, (Exception,), {"__module__": "errors"})


def namespace(conv: Conventions, run: Run) -> dict[str, Any]:
    """The module globals an attempt runs in: this repository's framework only."""
    def fetch(url: Any, timeout: Any = None) -> str:
        run.effects.append(("fetch", url, timeout))
        noun = str(url).rsplit("/", 1)[-1].split(".")[0].rstrip("s")
        return f" {noun.title()} Feed "

    def print_(*args: Any) -> None:
        run.effects.append(("log", None, " ".join(str(a) for a in args)))

    modules = {"text": Module("text", slugify=slugify), "http": Module("http", fetch=fetch)}
    for step in MODULES:
        dotted = new_module(conv, step)
        if dotted:
            root, sub = dotted.split(".")
            modules[dotted] = modules["text" if step == "slug" else "http"]
            package = modules.setdefault(root, Module(root))
            setattr(package, sub, modules[dotted])

    def importer(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if level or name not in modules:
            raise ModuleNotFoundError(f"No module named '{name}'")
        return modules[name] if fromlist or "." not in name else modules[name.split(".")[0]]

    kind, value = kind_of(conv, "save")
    ns: dict[str, Any] = {"__builtins__": {"__import__": importer}, "__name__": "handlers",
                          "app": App(run), "db": Database(run, value if kind == "context" else None),
                          "cache": Cache(run), "print": print_}
    logger = log_call(conv)
    if logger != "print":
        ns[logger.split(".")[0]] = Logger(run)
    for step, kind_name in (("route", "decorator"), ("route", "first_stmt"), ("clean", "helper")):
        kind, value = kind_of(conv, step)
        if kind == kind_name:
            ns[value] = {"decorator": lambda fn: fn, "first_stmt": lambda name: None,
                         "helper": lambda s: s.strip().lower()}[kind]
    kind, value = kind_of(conv, "read")
    if kind == "errors":
        ns[value] = _exception(value)
    kind, value = kind_of(conv, "return")
    if kind == "return_shape" and value == "Result":
        ns["Result"] = Result
    return ns


# -- the sandbox ---------------------------------------------------------------------------------------------------

_ALLOWED = (ast.Module, ast.Import, ast.ImportFrom, ast.alias, ast.FunctionDef, ast.arguments, ast.arg, ast.Assign,
            ast.Expr, ast.Call, ast.Attribute, ast.Name, ast.Constant, ast.JoinedStr, ast.FormattedValue, ast.If,
            ast.Compare, ast.Is, ast.IsNot, ast.Eq, ast.NotEq, ast.Return, ast.Raise, ast.With, ast.withitem,
            ast.Tuple, ast.Dict, ast.List, ast.keyword, ast.Load, ast.Store, ast.Pass, ast.UnaryOp, ast.Not,
            ast.BoolOp, ast.And, ast.Or)
#: attribute names an attempt may use: the world's API and a few harmless string methods
ATTRIBUTES = frozenset({"get", "post", "put", "delete", "insert", "set", "fetch", "slugify", "strip", "lower", "upper",
                        "startswith", "endswith", "info", "debug", "warning", "transaction", "atomic", "session",
                        "text", "net"})


def refusal(tree: ast.AST) -> str | None:
    """Why the sandbox refuses to run `tree`, or None. Bounded: no loops, no operators that grow strings."""
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            return f"`{type(node).__name__}` is not allowed in a handler"
        if isinstance(node, ast.Attribute) and (node.attr not in ATTRIBUTES or node.attr.startswith("_")):
            return f"`.{node.attr}` is not part of this repo's API"
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            return f"`{node.id}` is not allowed in a handler"
        if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            return "format specs are not allowed in a handler"
        if isinstance(node, ast.JoinedStr) and len(node.values) > 8:
            return "f-string too long"
        if isinstance(node, ast.Constant) and (
                (isinstance(node.value, str) and len(node.value) > 200)
                or (isinstance(node.value, int) and abs(node.value) > 10**7)):
            return "literal too large"
    if sum(isinstance(n, ast.JoinedStr) for n in ast.walk(tree)) > 4:
        return "too many f-strings in one handler"
    return None


@dataclass
class Outcome:
    """What one call of the handler did."""

    effects: list[tuple[Any, ...]]
    returned: Any = None
    raised: BaseException | None = None
    line: int | None = None


def _attempt_line(exc: BaseException) -> int | None:
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<attempt>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _message(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _test_failure(message: str, code: str, line: int | None, test: str, detail: str | None = None) -> Finding:
    if detail is None:
        detail = _src_line(code, line)
    return Finding("test_failure", "pytest", message, detail=detail, line=line, rule=f"{TEST_FILE}::{test}")


def _src_line(code: str, line: int | None) -> str | None:
    lines = code.split("\n")
    if line is None or not 1 <= line <= len(lines):
        return None
    return ">   " + lines[line - 1].strip()


def inputs(task: Task, conv: Conventions, missing: bool = False) -> dict[str, Any]:
    """The handler's keyword arguments under this repository's parameter names."""
    kw: dict[str, Any] = {}
    if task.source == "read":
        field_ = task.lit["field"]
        kw[param_name(conv, "read")] = {} if missing else {field_: SAMPLES[field_]}
    if task.source == "fetch":
        kw[param_name(conv, "fetch")] = f"https://example.com/{task.lit['noun']}s.json"
    if task.source == "arg":
        kw["value"] = SAMPLES[task.lit["field"]]
    return kw


@dataclass
class Execution:
    """A whole test session: the module's import, then each call."""

    fatal: Finding | None = None
    routes: list[str] = field(default_factory=list)
    calls: dict[str, Outcome] = field(default_factory=dict)
    #: a keyword call that failed with a TypeError (retried positionally): (message, line)
    signature_error: tuple[str, int | None] | None = None


def execute(task: Task, conv: Conventions, code: str) -> Execution:
    """Import `code` as the handlers module and call the task's handler (happy path, then the field missing)."""
    out = Execution()
    try:
        tree = ast.parse(code)
        compiled = compile(tree, "<attempt>", "exec")
    except SyntaxError as exc:
        out.fatal = _test_failure(f"SyntaxError: {exc.msg}", code, exc.lineno, "collect")
        return out
    why = refusal(tree)
    if why is not None:
        out.fatal = Finding("review", "reviewer", f"keep handlers to this repo's plain statements: {why}")
        return out
    run = Run()
    ns = namespace(conv, run)
    try:
        exec(compiled, ns)
    except Exception as exc:  # an import-time failure: pytest's collection error
        out.fatal = _test_failure(_message(exc), code, _attempt_line(exc), "collect")
        return out
    out.routes = list(run.routes)
    handler = ns.get(task.name)
    if not callable(handler):
        out.fatal = _test_failure(f"AttributeError: module 'handlers' has no attribute '{task.name}'", code, None,
                                  "collect")
        return out
    cases = ["happy", *(["missing"] if task.source == "read" else [])]
    for case in cases:
        run.effects = []
        kwargs = inputs(task, conv, missing=case == "missing")
        outcome = Outcome(run.effects)
        try:
            try:
                outcome.returned = handler(**kwargs)
            except TypeError as exc:
                if _attempt_line(exc) is not None:  # raised inside the handler: a real failure
                    raise
                # the signature does not take the repository's keywords: say so once, then call positionally
                if out.signature_error is None:
                    out.signature_error = (_message(exc), None)
                run.effects.clear()
                outcome.returned = handler(*kwargs.values())
        except Exception as exc:
            outcome.raised, outcome.line = exc, _attempt_line(exc)
        outcome.effects = list(run.effects)
        out.calls[case] = outcome
    return out


# -- comparing with the reference ----------------------------------------------------------------------------------


def _returned_type(node: ast.expr | None) -> str | None:
    """mypy's name for a returned expression's type, or None when it is this repository's `Result` (or None)."""
    if node is None or (isinstance(node, ast.Constant) and node.value is None):
        return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Result":
        return None
    if isinstance(node, ast.Tuple):
        return "tuple[" + ", ".join("str" for _ in node.elts) + "]"
    if isinstance(node, ast.Dict):
        return "dict[str, str]"
    if isinstance(node, ast.Name | ast.JoinedStr | ast.Call):
        return "str"
    return "object"


def _handler(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def _is_route(dec: ast.expr) -> bool:
    return (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute)
            and isinstance(dec.func.value, ast.Name) and dec.func.value.id == "app")


def static_findings(task: Task, conv: Conventions, tree: ast.Module, reference_returns_none: bool) -> list[Finding]:
    """ruff, mypy and reviewer findings on the attempt, for this repository's changed conventions."""
    found: list[Finding] = []
    for step, (module, func) in MODULES.items():
        target = new_module(conv, step)
        if target is None:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n == module or n.startswith(module + ".") for n in names):
                found.append(Finding("diagnostic", "ruff", f"`{module}` is banned: use `from {target} import {func}`",
                                     rule="TID251", line=node.lineno))
    kind, value = kind_of(conv, "log")
    if kind == "forbidden":
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(Finding("diagnostic", "ruff", f"`print` found: this repo logs with `{value}`",
                                     rule="T201", line=node.lineno))
    kind, value = kind_of(conv, "clean")
    if kind == "helper":
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "lower"
                    and isinstance(node.func.value, ast.Call) and isinstance(node.func.value.func, ast.Attribute)
                    and node.func.value.func.attr == "strip"):
                target = ast.unparse(node.func.value.func.value)
                found.append(Finding("review", "reviewer",
                                     f"use `{value}({target})` instead of `{target}.strip().lower()`: "
                                     "this repo normalises text with one helper",
                                     severity="warning", line=node.lineno))
    handler = _handler(tree, task.name)
    if handler is None:
        return found
    kind, value = kind_of(conv, "route")
    if kind and any(_is_route(d) for d in handler.decorator_list):
        if kind == "decorator" and not any(isinstance(d, ast.Name) and d.id == value for d in handler.decorator_list):
            found.append(Finding("review", "reviewer",
                                 f"add `@{value}` below the route decorator: every route in this repo needs it",
                                 severity="warning", line=handler.lineno))
        if kind == "first_stmt":
            want = f'{value}("{task.name}")'
            first = handler.body[0] if handler.body else None
            call = first.value if isinstance(first, ast.Expr) else None
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == value
                    and [ast.literal_eval(a) for a in call.args if isinstance(a, ast.Constant)] == [task.name]
                    and len(call.args) == 1 and not call.keywords):
                found.append(Finding("diagnostic", "ruff", f"a route handler must start with `{want}`",
                                     severity="warning", rule="RL101", line=handler.lineno))
    kind, value = kind_of(conv, "return")
    if kind == "return_shape" and value == "Result":
        expected = "Result | None" if reference_returns_none else "Result"
        for node in ast.walk(handler):
            if isinstance(node, ast.Return):
                got = _returned_type(node.value)
                if got is not None:
                    found.append(Finding("diagnostic", "mypy", f'Incompatible return value type (got "{got}", '
                                         f'expected "{expected}")', rule="return-value", line=node.lineno))
    return found


def _norm(value: Any) -> Any:
    if isinstance(value, Result):
        return ("Result", tuple(sorted((k, _norm(v)) for k, v in value.fields.items())))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), _norm(v)) for k, v in value.items())))
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(_norm(v) for v in value))
    return value if isinstance(value, str | int | float | bool | type(None)) else ("obj", repr(value))


_MOCK = {"fetch": "fetch", "insert": "insert", "cache": "set"}
_FIELDS = {"fetch": ("url", "timeout"), "insert": ("table", "row", "in_transaction"),
           "cache": ("key", "value", "ttl"), "log": ("level", "message")}


def _effect_findings(actual: list[tuple[Any, ...]], expected: list[tuple[Any, ...]], conv: Conventions, code: str,
                     test: str) -> list[Finding]:
    found = []
    kinds = list(dict.fromkeys(e[0] for e in expected + actual))
    for kind in kinds:
        got = [e for e in actual if e[0] == kind]
        want = [e for e in expected if e[0] == kind]
        mock = _MOCK.get(kind) or log_call(conv).split(".")[-1]
        if len(got) != len(want):
            times = "once" if len(want) == 1 else f"{len(want)} times"
            message = (f"AssertionError: Expected '{mock}' to have been called {times}. Called {len(got)} times."
                       if want else f"AssertionError: Expected '{mock}' to not have been called. "
                                    f"Called {len(got)} times.")
            found.append(_test_failure(message, code, None, test, detail=None))
            continue
        for g, w in zip(got, want, strict=True):
            for name, x, y in zip(_FIELDS[kind], g[1:], w[1:], strict=True):
                if kind == "log" and name == "level" and (x is None or y is None):
                    continue
                if _norm(x) == _norm(y):
                    continue
                if name == "in_transaction":
                    ctx = kind_of(conv, "save")[1] or "transaction"
                    message = f"AssertionError: insert into {w[1]!r} ran outside `with db.{ctx}():`"
                    detail = None
                elif name == "level":
                    message, detail = f"AssertionError: assert {x!r} == {y!r}", f"+  where {x!r} = record.levelname"
                else:
                    message = f"AssertionError: assert {x!r} == {y!r}"
                    detail = f"+  where {x!r} = {mock}.call_args.kwargs[{name!r}]"
                found.append(_test_failure(message, code, None, test, detail=detail))
    return found


def _exc_name(exc: BaseException) -> str:
    t = type(exc)
    return f"{t.__module__}.{t.__name__}" if t.__module__ not in ("builtins", "handlers") else t.__name__


def compare(task: Task, conv: Conventions, code: str, got: Execution, want: Execution, static: list[Finding]
            ) -> list[Finding]:
    """Test findings: what the attempt did that the reference did not (or the other way)."""
    test = f"test_{task.name}"
    found: list[Finding] = []
    if got.signature_error is not None:
        found.append(_test_failure(got.signature_error[0], code, None, test, detail=None))
    if got.routes != want.routes:
        found.append(_test_failure(f"AssertionError: assert {got.routes!r} == {want.routes!r}", code, None,
                                   "test_routes", detail="+  where routes = app.routes"))
    mypy_returns = any(f.source == "mypy" for f in static)
    for case, w in want.calls.items():
        g = got.calls.get(case)
        if g is None:
            continue
        name = test if case == "happy" else f"{test}_missing_field"
        if g.raised is not None and (w.raised is None or type(g.raised).__name__ != type(w.raised).__name__):
            found.append(_test_failure(_message(g.raised), code, g.line, name))
            continue
        if w.raised is not None and g.raised is None:
            found.append(_test_failure(f"Failed: DID NOT RAISE <class '{_exc_name(w.raised)}'>", code, None, name,
                                       detail=f">   with pytest.raises({type(w.raised).__name__}):"))
            continue
        if w.raised is not None and str(g.raised) != str(w.raised):
            found.append(_test_failure(f"AssertionError: assert {str(g.raised)!r} == {str(w.raised)!r}", code, None,
                                       name, detail="+  where str(excinfo.value)"))
        found += _effect_findings(g.effects, w.effects, conv, code, name)
        if w.raised is None and _norm(g.returned) != _norm(w.returned) and not mypy_returns:
            found.append(_test_failure(f"AssertionError: assert {g.returned!r} == {w.returned!r}", code, None, name,
                                       detail=None))
    return found


def check(task: Task, conv: Conventions, code: str, reference: Execution | None = None) -> CheckResult:
    """Check `code` (a whole module) for `task` under conventions `conv`; every problem found in one run."""
    want = reference or execute(task, conv, task.solution(conv))
    got = execute(task, conv, code)
    if got.fatal is not None:
        return CheckResult(False, (got.fatal,))
    tree = ast.parse(code)
    returns_none = "read" in task.structure and kind_of(conv, "read")[0] != "errors"
    static = static_findings(task, conv, tree, returns_none)
    findings = compare(task, conv, code, got, want, static)
    seen: set[str] = set()
    unique = []
    for f in [*findings, *sorted(static, key=lambda f: (f.line or 0, f.source))]:
        if f.message not in seen:
            seen.add(f.message)
            unique.append(f)
    return CheckResult(not unique, tuple(unique))
