"""The repository's own lint rules (RL1xx), read from the AST, printed in ruff's `--output-format json` shape.

Each rule bans a common idiom and names the repository's helper that replaces it; the helper names differ between
repository variants (`Names`). A rule is one finding per offending call, like a ruff rule: the row and column are
the call's, 1-based, in the checked file.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Names:
    """What this repository calls its helpers (all live in `app/util.py`)."""

    read_json: str = "read_json"
    write_json: str = "write_json"
    read_text: str = "read_text"
    write_text: str = "write_text"
    log: str = "log"
    join_path: str = "join_path"
    now_utc: str = "now_utc"
    setting: str = "setting"
    ensure_dir: str = "ensure_dir"

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


#: other spellings a repository variant may use for each helper
ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "read_json": ("read_json", "load_json"),
    "write_json": ("write_json", "save_json", "dump_json"),
    "read_text": ("read_text", "load_text"),
    "write_text": ("write_text", "save_text"),
    "log": ("log", "logger"),
    "join_path": ("join_path", "path_join"),
    "now_utc": ("now_utc", "utc_now"),
    "setting": ("setting", "get_setting", "env_setting"),
    "ensure_dir": ("ensure_dir", "make_dirs"),
}


@dataclass(frozen=True)
class Rule:
    code: str
    name: str  # ruff's kebab-case rule name
    #: the message, with `{helper}` names filled from `Names`
    message: str
    #: one line for a hint in the prompt (the hint baseline)
    hint: str

    def render(self, names: Names) -> str:
        return self.message.format(**names.as_dict())

    def render_hint(self, names: Names) -> str:
        return self.hint.format(**names.as_dict())


RULES: dict[str, Rule] = {r.code: r for r in (
    Rule("RL101", "json-read-by-hand",
         "JSON files are not opened by hand in this repository: write `data = {read_json}(path)`",
         "read JSON files with `{read_json}(path)`, never `json.load`"),
    Rule("RL102", "json-written-by-hand",
         "JSON files are not written by hand in this repository: write `{write_json}(path, data)`",
         "write JSON files with `{write_json}(path, data)`, never `json.dump`"),
    Rule("RL103", "print-call",
         "no `print()` in this repository: use `{log}.info(...)`",
         "never `print()`: report with `{log}.info(...)`"),
    Rule("RL104", "os-path-join",
         "paths are joined with `{join_path}(a, b)` in this repository, not `os.path.join`",
         "join paths with `{join_path}(a, b)`, never `os.path.join`"),
    Rule("RL105", "naive-now",
         "the current time comes from `{now_utc}()` in this repository, not `datetime.now()` or `time.time()`",
         "get the current time with `{now_utc}()` (an aware UTC datetime), never `datetime.now()`"),
    Rule("RL106", "environ-read",
         "settings are read with `{setting}(name, default)` in this repository, not `os.environ`",
         "read settings with `{setting}(name, default)`, never `os.environ` or `os.getenv`"),
    Rule("RL107", "makedirs-call",
         "directories are created with `{ensure_dir}(path)` in this repository, not `os.makedirs`",
         "create directories with `{ensure_dir}(path)`, never `os.makedirs`"),
    Rule("RL108", "open-call",
         "files are not opened by hand in this repository: use `{read_text}(path)` or `{write_text}(path, text)`",
         "read and write text files with `{read_text}(path)` / `{write_text}(path, text)`, never `open()`"),
)}


@dataclass(frozen=True)
class Violation:
    code: str
    message: str
    row: int  # 1-based, in the checked file
    col: int  # 1-based
    end_row: int
    end_col: int


def _dotted(node: ast.AST) -> str:
    """`os.path.join` for the expression `os.path.join`; '' for anything that is not a dotted name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


_NOW = {"datetime.now", "datetime.utcnow", "datetime.today", "datetime.datetime.now", "datetime.datetime.utcnow",
        "datetime.datetime.today", "date.today", "datetime.date.today", "time.time", "time.localtime",
        "time.gmtime", "time.strftime"}
_MAKEDIRS = {"os.makedirs", "os.mkdir", "makedirs", "mkdir"}


@dataclass
class _Visitor(ast.NodeVisitor):
    active: frozenset[str]
    names: Names
    found: list[Violation] = field(default_factory=list)

    def flag(self, code: str, node: ast.expr) -> None:
        if code in self.active:
            self.found.append(Violation(code, RULES[code].render(self.names), node.lineno, node.col_offset + 1,
                                        node.end_lineno or node.lineno,
                                        (node.end_col_offset if node.end_col_offset is not None
                                         else node.col_offset) + 1))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        # open() that feeds JSON in or out in the same function is RL101's or RL102's business, not RL108's
        self._json_io = any(isinstance(n, ast.Call) and _json_code(n) for n in ast.walk(node))
        self.generic_visit(node)
        self._json_io = False

    _json_io = False

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func)
        json_code = _json_code(node)
        if json_code:
            self.flag(json_code, node)
        elif name == "print":
            self.flag("RL103", node)
        elif name in ("os.path.join", "path.join", "posixpath.join"):
            self.flag("RL104", node)
        elif name in _NOW:
            self.flag("RL105", node)
        elif name in ("os.getenv", "os.environ.get", "getenv", "environ.get"):
            self.flag("RL106", node)
        elif name in _MAKEDIRS or (isinstance(node.func, ast.Attribute) and node.func.attr == "mkdir"):
            self.flag("RL107", node)
        elif name in ("open", "io.open", "codecs.open") or (
                isinstance(node.func, ast.Attribute) and node.func.attr in ("read_text", "write_text", "open")
                and not isinstance(node.func.value, ast.Name)):
            if not self._json_io:
                self.flag("RL108", node)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if _dotted(node.value) in ("os.environ", "environ"):
            self.flag("RL106", node)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:  # `"X" in os.environ`
        if any(_dotted(c) in ("os.environ", "environ") for c in node.comparators):
            self.flag("RL106", node)
        self.generic_visit(node)


def _json_code(call: ast.Call) -> str | None:
    """RL101 for JSON read by hand (`json.load(f)`, `json.loads(f.read())`), RL102 for JSON written by hand
    (`json.dump(data, f)`, `f.write(json.dumps(data))`), else None."""
    name = _dotted(call.func)
    if name == "json.load" or (name == "json.loads" and _reads_file(call)):
        return "RL101"
    if name == "json.dump" or (isinstance(call.func, ast.Attribute) and call.func.attr == "write"
                               and any(isinstance(a, ast.Call) and _dotted(a.func) == "json.dumps"
                                       for a in call.args)):
        return "RL102"
    return None


def _reads_file(call: ast.Call) -> bool:
    """json.loads(f.read()) / json.loads(open(p).read()): a file read by hand."""
    return any(isinstance(n, ast.Call) and (_dotted(n.func).endswith(".read") or _dotted(n.func) == "open"
                                           or (isinstance(n.func, ast.Attribute) and n.func.attr == "read"))
               for a in call.args for n in ast.walk(a))


def lint(source: str, names: Names, active: frozenset[str] | set[str]) -> list[Violation]:
    """The active rules' violations in `source` (a whole module), in file order. Raises SyntaxError."""
    visitor = _Visitor(frozenset(active), names)
    visitor.visit(ast.parse(source))
    return sorted(visitor.found, key=lambda v: (v.row, v.col, v.code))


def ruff_json(violations: list[Violation], filename: str) -> list[dict[str, Any]]:
    """The violations as ruff's `--output-format json` rows (no fix: these rules have no autofix)."""
    return [{
        "cell": None, "code": v.code, "end_location": {"column": v.end_col, "row": v.end_row},
        "filename": filename, "fix": None, "location": {"column": v.col, "row": v.row}, "message": v.message,
        "name": RULES[v.code].name, "noqa_row": v.row, "severity": "error",
        "url": f"https://example.invalid/redline-realrepo/rules/{RULES[v.code].name}",
    } for v in violations]
