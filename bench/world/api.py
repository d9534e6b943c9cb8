"""The world's default API, the ways a repository may change it, and code rendering under a convention set.

Every repository shares one small data-plumbing API (read a file, query a table, send a record, …). A repository
differs from the default by a few `Change`s — one per changed function: a rename, a banned name with a
replacement, a required keyword argument, a required wrapper, a keyword-only style rule, swapped arguments, a
dropped argument or a different constant. Functions a repository leaves alone measure forgetting.

Pure Python, no torch: the checker, the task generator and the pretraining corpus all build on this module.
"""

from __future__ import annotations

from dataclasses import dataclass

#: value types flowing between calls (literal arguments are plain `str`)
VALUE_TYPES = ("Text", "Record", "Rows", "Conn")

CHANGE_KINDS = ("rename", "banned", "kwarg", "wrapper", "keyword", "swap", "arity", "literal")


@dataclass(frozen=True)
class Param:
    name: str
    #: "str" for a literal taken from the prompt, "const" for a fixed literal, else one of VALUE_TYPES
    type: str


@dataclass(frozen=True)
class Api:
    name: str
    params: tuple[Param, ...]
    #: the value type the call returns; None for a sink
    returns: str | None
    #: how a prompt asks for this step; `{name}` refers to a literal parameter
    phrase: str
    #: names a repository may rename it to (or ban it in favour of)
    aliases: tuple[str, ...]
    #: change kinds this function admits
    changes: tuple[str, ...]
    #: for kind "kwarg": the (name, value) pairs a repository may require
    kwargs: tuple[tuple[str, str], ...] = ()
    #: for a "const" parameter: the default value and the values a repository may use instead
    const: tuple[str, ...] = ()

    @property
    def value_param(self) -> Param | None:
        return next((p for p in self.params if p.type in VALUE_TYPES), None)

    @property
    def literal_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.type == "str")


def _p(spec: str) -> tuple[Param, ...]:
    return tuple(Param(*part.split(":")) for part in spec.split())


APIS: dict[str, Api] = {a.name: a for a in (
    Api("read_file", _p("path:str"), "Text", 'read {path}', ("load_file", "read_text", "open_file"),
        ("rename", "kwarg"), kwargs=(("encoding", '"utf8"'), ("mode", '"r"'))),
    Api("fetch", _p("url:str"), "Text", 'fetch {url}', ("http_get", "download", "get_url"),
        ("rename", "banned", "kwarg", "wrapper"), kwargs=(("timeout", "5"), ("retries", "2"))),
    Api("connect", _p("host:str"), "Conn", 'connect to {host}', ("open_db", "db_connect", "dial"),
        ("rename", "kwarg", "wrapper"), kwargs=(("retries", "3"), ("timeout", "30"))),
    Api("parse_json", _p("text:Text"), "Record", 'parse it', ("loads", "from_json", "decode_json"),
        ("rename", "banned")),
    Api("to_json", _p("record:Record"), "Text", 'encode it as json', ("dumps", "encode_json", "as_json"),
        ("rename", "banned")),
    Api("get_field", _p("record:Record name:str"), "Text", 'take field {name}', ("pluck", "field_of", "lookup"),
        ("rename", "swap", "keyword")),
    Api("query", _p("conn:Conn table:str"), "Rows", 'query {table}', ("select", "run_query", "fetch_rows"),
        ("rename", "swap", "keyword", "wrapper")),
    Api("sort_rows", _p("rows:Rows key:str"), "Rows", 'sort by {key}', ("order_by", "sorted_by", "sort_by"),
        ("rename", "swap", "keyword")),
    Api("filter_rows", _p("rows:Rows key:str"), "Rows", 'keep rows with {key}', ("where", "filter_by", "select_rows"),
        ("rename", "swap", "keyword")),
    Api("to_csv", _p("rows:Rows"), "Text", 'format it as csv', ("as_csv", "dump_csv", "write_csv"),
        ("rename", "banned")),
    Api("parse_csv", _p("text:Text"), "Rows", 'parse it as csv', ("read_csv", "csv_rows", "load_csv"),
        ("rename", "banned")),
    Api("first_row", _p("rows:Rows"), "Record", 'take the first row', ("head", "top_row", "first_of"),
        ("rename", "wrapper")),
    Api("validate", _p("record:Record"), "Record", 'validate it', ("check_record", "verify", "ensure_valid"),
        ("rename", "wrapper")),
    Api("compress", _p("text:Text"), "Text", 'compress it', ("gzip", "pack", "deflate"),
        ("rename", "banned", "wrapper")),
    Api("write_file", _p("path:str text:Text"), None, 'write it to {path}', ("save_file", "write_text", "dump"),
        ("rename", "swap", "kwarg"), kwargs=(("atomic", "True"), ("encoding", '"utf8"'))),
    Api("send", _p("host:str record:Record"), None, 'send it to {host}', ("post", "publish", "push"),
        ("rename", "swap", "kwarg", "wrapper"), kwargs=(("timeout", "10"), ("retries", "3"))),
    Api("log", _p("level:const text:Text"), None, 'log it', ("emit", "log_text", "record"),
        ("rename", "arity", "literal"), const=('"info"', '"INFO"', '"notice"', '"debug"')),
)}

WRAPPERS = ("retry", "traced", "guarded")


@dataclass(frozen=True)
class Change:
    """How one repository departs from the default for one API function."""

    api: str
    kind: str
    #: rename/banned: the new name; wrapper: the wrapper's name; kwarg: "name=value"; literal: the constant
    value: str = ""

    def describe(self) -> str:
        return f"{self.api}: {self.kind}" + (f" {self.value}" if self.value else "")


Conventions = dict[str, Change]


def call_name(api: Api, conv: Conventions) -> str:
    """The name code should call in this repository."""
    ch = conv.get(api.name)
    return ch.value if ch and ch.kind in ("rename", "banned") else api.name


def render_call(api: Api, args: dict[str, str], conv: Conventions) -> str:
    """The correct call text for `api` with argument source texts `args` (by parameter name) under `conv`."""
    ch = conv.get(api.name)
    kind = ch.kind if ch else ""
    params = list(api.params)
    values = {p.name: (args[p.name] if p.type != "const" else api.const[0]) for p in params}
    if kind == "literal":
        values[next(p.name for p in params if p.type == "const")] = ch.value
    if kind == "arity":
        params = [p for p in params if p.type != "const"]
    if kind == "swap":
        params = params[::-1]
    parts = [values[p.name] for p in params]
    if kind == "keyword":
        last = params[-1]
        parts[-1] = f"{last.name}={values[last.name]}"
    if kind == "kwarg":
        parts.append(ch.value)
    call = f"{call_name(api, conv)}({', '.join(parts)})"
    if kind == "wrapper":
        call = f"{ch.value}({call})"
    return call


def default_names() -> dict[str, str]:
    """Every name the world knows (defaults and aliases) → the default API name it stands for."""
    names = {}
    for api in APIS.values():
        names[api.name] = api.name
        for alias in api.aliases:
            names[alias] = api.name
    return names
