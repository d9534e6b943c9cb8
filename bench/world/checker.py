"""The checker: answers an attempt the way a repository's tools do — a test run, a linter, a reviewer.

The attempt is compiled and really executed (`exec`) in a namespace holding only this repository's fake API.
The fake functions check their arguments like C builtins do and raise-style messages are recorded; execution is
*lenient* — after recording an error a call goes on with its intended meaning — so one run names every problem,
as one CI run of tests, linter and review would. Then the test compares the observable effects (what was written,
sent, logged, returned) with the reference solution's, pytest style. Lint and review rules read the AST.

Voices (kind / source):
- test_failure / pytest: `NameError: name 'x' is not defined. Did you mean: 'y'?`, `TypeError: f() argument 1 must
  be str, not Rows`, `TypeError: f() takes 1 positional argument but 2 were given`, `AssertionError: assert 'a' == 'b'`
- diagnostic / ruff: ``fetch` is banned: use `http_get`` [TID251], `pass `key` to `sort_rows` by keyword` [RL201]
- review / reviewer: `always call `connect` with `retries=3` in this repo`, `wrap `query(...)` in `retry(...)``
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field
from typing import Any

from bench.world.api import APIS, WRAPPERS, Api, Conventions, call_name, default_names


@dataclass(frozen=True)
class Finding:
    kind: str  # test_failure | diagnostic | review
    source: str  # pytest | ruff | reviewer
    message: str
    detail: str | None = None
    severity: str = "error"
    rule: str | None = None
    line: int | None = None  # 1-based line in the completion


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    findings: tuple[Finding, ...] = ()

    # the first finding's fields, for callers that want one voice
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


# -- the fake runtime ----------------------------------------------------------------------------------------------


class Value:
    """A value flowing between calls; `desc` says how it was made, so effects can be compared."""

    def __init__(self, desc: str) -> None:
        self.desc = desc

    def __repr__(self) -> str:
        return self.desc


class Text(Value): ...
class Record(Value): ...
class Rows(Value): ...
class Conn(Value): ...


TYPES: dict[str, type] = {"Text": Text, "Record": Record, "Rows": Rows, "Conn": Conn, "str": str, "const": str}


def _tname(v: Any) -> str:
    return type(v).__name__


@dataclass
class Run:
    errors: list[tuple[str, int | None]] = field(default_factory=list)  # (message, line)
    effects: list[tuple[str, ...]] = field(default_factory=list)
    line: int | None = None

    def error(self, message: str) -> None:
        if all(message != m for m, _ in self.errors):
            self.errors.append((message, self.line))


class FakeFunction:
    """One API function as this repository defines it; checks arguments like a C builtin and records effects."""

    def __init__(self, api: Api, conv: Conventions, run: Run, called_as: str, missing: bool = False) -> None:
        self.api, self.conv, self.run, self.called_as, self.missing = api, conv, run, called_as, missing

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run, api = self.run, self.api
        run.line = _caller_line()
        name = call_name(api, self.conv)
        if self.missing:
            run.error(f"NameError: name '{self.called_as}' is not defined. Did you mean: '{name}'?")
        ch = self.conv.get(api.name)
        params = list(api.params)
        if ch and ch.kind == "arity":
            params = [p for p in params if p.type != "const"]
        if ch and ch.kind == "swap":
            params = params[::-1]
        allowed = {p.name for p in params}
        if ch and ch.kind == "kwarg":
            allowed.add(ch.value.split("=")[0])
        for k in kwargs:
            if k not in allowed:
                run.error(f"TypeError: {name}() got an unexpected keyword argument '{k}'")
        bound: dict[str, Any] = {p.name: kwargs[p.name] for p in params if p.name in kwargs}
        free = [p for p in params if p.name not in bound]
        if len(args) > len(free):
            n = len(params)
            s = "" if n == 1 else "s"
            run.error(f"TypeError: {name}() takes {n} positional argument{s} but {len(args)} were given")
            args = _best_fit(args, free)
        for p, v in zip(free, args, strict=False):
            bound[p.name] = v
        missing = [p.name for p in params if p.name not in bound]
        if missing:
            s = "" if len(missing) == 1 else "s"
            names = " and ".join(f"'{m}'" for m in missing)
            run.error(f"TypeError: {name}() missing {len(missing)} required positional argument{s}: {names}")
        for i, p in enumerate(params):
            if p.name in bound and not isinstance(bound[p.name], TYPES[p.type]):
                where = f"argument {i + 1}" if p.name not in kwargs else f"argument '{p.name}'"
                run.error(f"TypeError: {name}() {where} must be {_want(p.type)}, not {_tname(bound[p.name])}")
                break
        values = _repair(api, bound)
        return self._effect(values, ch)

    def _effect(self, values: dict[str, Any], ch: Any) -> Any:
        api = self.api
        if ch and ch.kind == "literal":
            const = ch.value
        else:
            const = api.const[0] if api.const else None
        parts = [str(values.get(p.name, "?")) if p.type != "const" else (
            str(values.get(p.name)) if p.name in values else const) for p in api.params]
        parts = [p.strip('"') for p in parts]
        if api.returns is None:
            self.run.effects.append((api.name, *parts))
            return None
        return TYPES[api.returns](f"{api.name}({', '.join(parts)})")


def _want(t: str) -> str:
    return "str" if t in ("str", "const") else t


def _best_fit(args: tuple[Any, ...], params: list[Any]) -> tuple[Any, ...]:
    """Too many positionals: keep the ones whose types fit the parameters (the lenient run goes on)."""
    out = []
    pool = list(args)
    for p in params:
        hit = next((a for a in pool if isinstance(a, TYPES[p.type])), None)
        if hit is not None:
            pool.remove(hit)
            out.append(hit)
    return tuple(out)


def _repair(api: Api, bound: dict[str, Any]) -> dict[str, Any]:
    """Put type-mismatched arguments where they fit, so the lenient run computes the intended effect."""
    values = dict(bound)
    wrong = [p for p in api.params if p.name in values and not isinstance(values[p.name], TYPES[p.type])]
    if len(wrong) == 2:
        a, b = wrong
        values[a.name], values[b.name] = values[b.name], values[a.name]
    const = next((p for p in api.params if p.type == "const"), None)
    if const is not None and const.name in values:
        values[const.name] = f'"{values[const.name]}"'
    return values


def _caller_line() -> int | None:
    import sys

    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename != "<attempt>":
        frame = frame.f_back
    return frame.f_lineno - 1 if frame is not None else None  # the attempt is compiled under a `def task():` line


def _identity_wrapper(name: str, run: Run, conv: Conventions) -> Any:
    def wrap(value: Any = None, *rest: Any) -> Any:
        if not any(ch.kind == "wrapper" and ch.value == name for ch in conv.values()):
            run.line = _caller_line()
            run.error(f"NameError: name '{name}' is not defined")
        return value

    return wrap


_KNOWN = default_names()


def namespace(conv: Conventions, run: Run, used: set[str] | None = None) -> dict[str, Any]:
    """The globals an attempt runs in: this repository's API only (plus lenient stand-ins for known names)."""
    ns: dict[str, Any] = {"__builtins__": {}}
    for name, default in _KNOWN.items():
        if used is not None and name not in used:
            continue
        api = APIS[default]
        real = call_name(api, conv)
        ch = conv.get(default)
        ok = name == real or (ch is not None and ch.kind == "banned" and name == api.name)
        ns[name] = FakeFunction(api, conv, run, name, missing=not ok)
    for w in WRAPPERS:
        ns[w] = _identity_wrapper(w, run, conv)
    return ns


def real_names(conv: Conventions) -> list[str]:
    names = [call_name(a, conv) for a in APIS.values()]
    names += [ch.value for ch in conv.values() if ch.kind == "wrapper"]
    return names


# -- static rules ----------------------------------------------------------------------------------------------


def _calls(tree: ast.AST) -> list[tuple[ast.Call, ast.AST | None]]:
    """Every call with its parent node."""
    out = []
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            if isinstance(child, ast.Call):
                out.append((child, parent))
    return out


def static_findings(tree: ast.AST, conv: Conventions) -> list[Finding]:
    names = default_names()
    found: list[Finding] = []
    for call, parent in _calls(tree):
        if not isinstance(call.func, ast.Name) or call.func.id not in names:
            continue
        api = APIS[names[call.func.id]]
        ch = conv.get(api.name)
        if ch is None:
            continue
        line = call.lineno - 1
        real = call_name(api, conv)
        if ch.kind == "banned" and call.func.id == api.name:
            found.append(Finding("diagnostic", "ruff", f"`{api.name}` is banned: use `{real}`",
                                 severity="error", rule="TID251", line=line))
        if ch.kind == "keyword":
            last = api.params[-1].name
            if not any(k.arg == last for k in call.keywords):
                found.append(Finding("diagnostic", "ruff", f"pass `{last}` to `{real}` by keyword",
                                     severity="warning", rule="RL201", line=line))
        if ch.kind == "kwarg":
            key, _, value = ch.value.partition("=")
            given = next((k for k in call.keywords if k.arg == key), None)
            if given is None or ast.dump(given.value) != ast.dump(ast.parse(value, mode="eval").body):
                found.append(Finding("review", "reviewer", f"always call `{real}` with `{key}={value}` in this repo",
                                     severity="warning", line=line))
        if ch.kind == "wrapper":
            wrapped = (isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name)
                       and parent.func.id == ch.value)
            if not wrapped:
                found.append(Finding("review", "reviewer", f"wrap every `{real}(...)` call in `{ch.value}(...)`",
                                     severity="warning", line=line))
    return found


_ALLOWED = (ast.Module, ast.FunctionDef, ast.arguments, ast.Assign, ast.Expr, ast.Call, ast.Name, ast.Constant,
            ast.keyword, ast.Return, ast.Load, ast.Store, ast.Pass, ast.arg)


# -- the check ---------------------------------------------------------------------------------------------------


def execute(code: str, conv: Conventions, params: tuple[str, ...] = ()) -> tuple[Run, Finding | None]:
    """Run `def task(params):` + code, called with each parameter's name as its value; return the run and a fatal
    finding (syntax error, real exception), if any."""
    source = f"def task({', '.join(params)}):\n" + code + "\n"
    run = Run()
    try:
        tree = ast.parse(source)
        compiled = compile(tree, "<attempt>", "exec")
    except SyntaxError as exc:
        line = (exc.lineno or 1) - 1
        return run, Finding("test_failure", "pytest", f"SyntaxError: {exc.msg}", detail=_src_line(code, line),
                            line=line)
    if not all(isinstance(n, _ALLOWED) for n in ast.walk(tree)):
        return run, Finding("review", "reviewer", "keep the task body to plain calls and assignments")
    ns = namespace(conv, run, {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)})
    try:
        exec(compiled, ns)
        result = ns["task"](*params)
    except Exception as exc:  # a real failure of the attempt: the test stops here, as pytest would
        line = _caller_line_from(exc)
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, NameError) and exc.name:
            close = difflib.get_close_matches(exc.name, real_names(conv), n=1)
            if close:
                message += f". Did you mean: '{close[0]}'?"
        return run, Finding("test_failure", "pytest", message, detail=_src_line(code, line), line=line)
    if result is not None:
        run.effects.append(("return", str(result)))
    return run, None


def _caller_line_from(exc: BaseException) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<attempt>":
            line = tb.tb_lineno - 1
        tb = tb.tb_next
    return line


def _src_line(code: str, line: int | None) -> str | None:
    lines = code.split("\n")
    if line is None or not 1 <= line <= len(lines):
        return None
    return ">   " + lines[line - 1].strip()


def check(conv: Conventions, code: str, expected: list[tuple[str, ...]], params: tuple[str, ...] = ()
          ) -> CheckResult:
    """Check `code` (the body of `def task(params):`) against conventions `conv` and the reference effects."""
    run, fatal = execute(code, conv, params)
    if fatal is not None:
        return CheckResult(False, (fatal,))
    findings = [Finding("test_failure", "pytest", msg, detail=_src_line(code, line), line=line)
                for msg, line in run.errors]
    diff = _effects_diff(run.effects, expected)
    if diff is not None:
        findings.append(diff)
    static = static_findings(ast.parse("def task():\n" + code + "\n"), conv)
    findings += sorted(static, key=lambda f: (f.line or 0, f.kind))
    return CheckResult(not findings, tuple(findings))


def _effects_diff(actual: list[tuple[str, ...]], expected: list[tuple[str, ...]]) -> Finding | None:
    if actual == expected:
        return None
    if len(actual) == len(expected):
        for a, e in zip(actual, expected, strict=True):
            if a != e and len(a) == len(e):
                for x, y in zip(a, e, strict=True):
                    if x != y:
                        return Finding("test_failure", "pytest", f"AssertionError: assert {x!r} == {y!r}",
                                       detail=f"- {y}\n+ {x}")
    return Finding("test_failure", "pytest", f"AssertionError: assert {_show(actual)} == {_show(expected)}")


def _show(effects: list[tuple[str, ...]]) -> str:
    return "[" + ", ".join(f"{e[0]}({', '.join(e[1:])})" for e in effects) + "]"
