"""Tasks: functions to write in the repository, each with a reference body and unit-test cases.

A task is one function of one module (`app/<module>.py`). Its prompt is what an editor plugin sends to a model that
has no FIM tokens: the file's prefix — the module docstring and imports, then the `def` line and the docstring —
ending at the cursor, at the end of the docstring's line (the completion starts with the newline and indentation
of the body: a prefix that ends in the indentation splits SmolLM2's `"\n   "` token and makes it write the next
`def` instead of a body). Families are templates of genuinely different
functions (different names, fields, defaults, behaviour); a family's rules are the repository rules that its
naive idiom breaks (`json.load`, `print`, `os.path.join`, …) and that the reference avoids by calling a helper.

Test cases are inputs (files in the working directory, environment settings, directories, arguments); the
expected outcome is the reference's (return value and the files and directories it leaves), run beside the
attempt in the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template
from typing import Any

from bench.realrepo.modules import header
from bench.realrepo.rules import Names

INDENT = "    "


@dataclass(frozen=True)
class Spec:
    module: str
    name: str
    args: str
    doc: str
    #: the reference body, lines indented by four spaces, helpers as `$read_json` etc.
    body: str
    #: the family's rules (codes); empty for a task that touches none
    rules: tuple[str, ...]
    cases: tuple[dict[str, Any], ...]
    family: str
    compare: str = "eq"  # eq | time (ISO times within a few minutes) | float


@dataclass(frozen=True)
class Task:
    """One function to write in one repository (prompts depend on the repository's helper names)."""

    id: str
    spec: Spec
    names: Names
    #: the repository's active rules this task touches (its family's rules ∩ the repository's)
    rules: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"app/{self.spec.module}.py"

    @property
    def header(self) -> str:
        return header(self.spec.module, self.names)

    @property
    def signature(self) -> str:
        """The `def` line and the docstring (no newline after it)."""
        return f'def {self.spec.name}({self.spec.args}):\n{INDENT}"""{self.spec.doc}"""'

    @property
    def prompt(self) -> str:
        """The file prefix up to the cursor: header, `def` line, docstring."""
        return self.header + self.signature

    @property
    def test_id(self) -> str:
        return f"tests/test_{self.spec.module}.py::test_{self.spec.name}"

    def solution(self) -> str:
        """The reference completion: a newline, then the body."""
        return "\n" + Template(self.spec.body).safe_substitute(self.names.as_dict())

    def module_source(self, completion: str) -> str:
        """The whole file the tests import: the prompt followed by `completion`."""
        return self.prompt + completion.rstrip() + "\n"


def _spec(family: str, module: str, rules: tuple[str, ...], name: str, args: str, doc: str, body: str,
          cases: list[dict[str, Any]], compare: str = "eq") -> Spec:
    return Spec(module, name, args, doc, body, rules, tuple(cases), family, compare)


def _lines(*lines: str) -> str:
    return "\n".join(INDENT + line for line in lines)


# -- families touching the repository's rules ----------------------------------------------------------------------


def read_json_families() -> tuple[list[Spec], list[Spec]]:
    train, held = [], []
    for noun, field, a, b in (("config", "name", "billing", "search"), ("manifest", "version", "1.2.0", "2.0.1"),
                              ("profile", "email", "ada@example.com", "bob@example.com"),
                              ("invoice", "due_date", "2026-01-31", "2026-02-28"),
                              ("package", "license", "MIT", "Apache-2.0"), ("release", "tag", "v1.4", "v2.0")):
        train.append(_spec("json-field", "inventory", ("RL101",), f"{noun}_{field}", "path",
                           f"Return the `{field}` field of the {noun} stored as JSON at `path`.",
                           _lines("data = $read_json(path)", f'return data["{field}"]'),
                           [{"args": ["a.json"], "files": {"a.json": {field: a, "id": 7}}},
                            {"args": ["b.json"], "files": {"b.json": {"id": 8, field: b}}}]))
    for items in ("orders", "users", "tickets", "shipments"):
        train.append(_spec("json-count", "inventory", ("RL101",), f"count_{items}", "path",
                           f"Return how many {items} the JSON list at `path` holds.",
                           _lines("return len($read_json(path))"),
                           [{"args": [f"{items}.json"], "files": {f"{items}.json": [{"id": 1}, {"id": 2}, {"id": 3}]}},
                            {"args": ["none.json"], "files": {"none.json": []}}]))
    for items, field in (("orders", "amount"), ("invoices", "total"), ("payments", "value"),
                         ("parcels", "weight")):
        train.append(_spec("json-sum", "inventory", ("RL101",), f"total_{field}", "path",
                           f"Return the sum of the `{field}` of every record in the JSON list of {items} at `path`.",
                           _lines("records = $read_json(path)", f'return sum(r["{field}"] for r in records)'),
                           [{"args": ["r.json"], "files": {"r.json": [{field: 3}, {field: 4.5}, {field: 10}]}},
                            {"args": ["e.json"], "files": {"e.json": []}}], compare="float"))
    for noun, field in (("settings", "debug"), ("profile", "avatar"), ("manifest", "homepage")):
        held.append(_spec("json-has-key", "inventory", ("RL101",), f"has_{field}", "path",
                          f"Return True if the {noun} stored as JSON at `path` has a `{field}` key.",
                          _lines(f'return "{field}" in $read_json(path)'),
                          [{"args": ["a.json"], "files": {"a.json": {field: 0, "x": 1}}},
                           {"args": ["b.json"], "files": {"b.json": {"x": 1}}}]))
    for items, flag in (("user", "active"), ("product", "in_stock"), ("task", "done")):
        held.append(_spec("json-filter", "inventory", ("RL101",), f"{flag}_{items}_names", "path",
                          f"Return the `name` of every {items} in the JSON list at `path` whose `{flag}` is true.",
                          _lines(f'return [r["name"] for r in $read_json(path) if r["{flag}"]]'),
                          [{"args": ["l.json"], "files": {"l.json": [{"name": "a", flag: True},
                                                                     {"name": "b", flag: False},
                                                                     {"name": "c", flag: True}]}}]))
    for noun in ("cache", "state"):
        held.append(_spec("json-or-default", "inventory", ("RL101",), f"load_{noun}", "path",
                          f"Return the {noun} stored as JSON at `path`, or an empty dict if the file does not exist.",
                          _lines("if not os.path.exists(path):", "    return {}", "return $read_json(path)"),
                          [{"args": ["s.json"], "files": {"s.json": {"k": [1, 2]}}}, {"args": ["missing.json"]}]))
    for items, field in (("scores", "score"), ("bids", "price")):
        held.append(_spec("json-max", "inventory", ("RL101",), f"highest_{field}", "path",
                          f"Return the largest `{field}` among the {items} in the JSON list at `path`.",
                          _lines(f'return max(r["{field}"] for r in $read_json(path))'),
                          [{"args": ["x.json"], "files": {"x.json": [{field: 3}, {field: 11}, {field: 5}]}}]))
    return train, held


def write_json_families() -> tuple[list[Spec], list[Spec]]:
    train, held = [], []
    for noun, field, value in (("product", "price", 12.5), ("user", "email", "ada@example.com"),
                               ("team", "size", 7), ("city", "population", 81000), ("book", "author", "Le Guin")):
        train.append(_spec("json-save", "inventory", ("RL102",), f"save_{noun}", f"path, name, {field}",
                           f'Write `{{"name": name, "{field}": {field}}}` as JSON to `path`.',
                           _lines(f'$write_json(path, {{"name": name, "{field}": {field}}})'),
                           [{"args": ["out.json", "first", value]}]))
    for items, key in (("scores", "score"), ("employees", "age"), ("files", "size")):
        train.append(_spec("json-save-sorted", "inventory", ("RL102",), f"save_{items}_by_{key}", "path, items",
                           f"Write `items` sorted by their `{key}` as a JSON list to `path`.",
                           _lines(f'$write_json(path, sorted(items, key=lambda item: item["{key}"]))'),
                           [{"args": ["out.json", [{key: 3, "id": "a"}, {key: 1, "id": "b"}, {key: 2, "id": "c"}]]}]))
    for noun, field in (("config", "debug"), ("profile", "theme"), ("job", "status"), ("ticket", "owner")):
        train.append(_spec("json-update", "inventory", ("RL101", "RL102"), f"set_{noun}_{field}", "path, value",
                           f"Set `{field}` to `value` in the {noun} stored as JSON at `path` and save it.",
                           _lines("data = $read_json(path)", f'data["{field}"] = value', "$write_json(path, data)"),
                           [{"args": ["c.json", "new"], "files": {"c.json": {field: "old", "id": 3}}}]))
    for noun in ("tag", "column", "player"):
        held.append(_spec("json-index", "inventory", ("RL102",), f"save_{noun}_index", "path, names",
                          f"Write a JSON object mapping each {noun} name in `names` to its position in the list to "
                          "`path`.",
                          _lines("$write_json(path, {name: i for i, name in enumerate(names)})"),
                          [{"args": ["i.json", ["x", "y", "z"]]}]))
    for noun in ("event", "order", "note"):
        held.append(_spec("json-append", "inventory", ("RL101", "RL102"), f"append_{noun}", "path, record",
                          f"Append `record` to the JSON list of {noun}s stored at `path`, save it and return the new "
                          "length.",
                          _lines("items = $read_json(path)", "items.append(record)", "$write_json(path, items)",
                                 "return len(items)"),
                          [{"args": ["l.json", {"id": 3}], "files": {"l.json": [{"id": 1}, {"id": 2}]}}]))
    return train, held


def print_families() -> tuple[list[Spec], list[Spec]]:
    train, held = [], []
    for items in ("prices", "durations", "weights", "scores"):
        train.append(_spec("report-total", "reports", ("RL103",), f"report_total_{items}", items,
                           f"Add up `{items}`, report the total and return it.",
                           _lines(f"total = sum({items})", f'$log.info("total {items}: %s", total)', "return total"),
                           [{"args": [[1, 2, 3.5]]}, {"args": [[]]}], compare="float"))
    for item, known in (("user", "known"), ("file", "expected"), ("host", "allowed")):
        train.append(_spec("report-unknown", "reports", ("RL103",), f"report_unknown_{item}s", f"names, {known}",
                           f"Report each {item} name in `names` that is not in `{known}` and return those names as a "
                           "list.",
                           _lines(f"unknown = [name for name in names if name not in {known}]",
                                  "for name in unknown:", f'    $log.info("unknown {item}: %s", name)',
                                  "return unknown"),
                           [{"args": [["a", "b", "c", "d"], ["b", "d"]]}, {"args": [["a"], ["a"]]}]))
    for items in ("files", "rows", "pages", "jobs"):
        train.append(_spec("report-progress", "reports", ("RL103",), f"report_{items}_progress", "done, total",
                           f"Report `done` out of `total` {items} as a percentage and return the percentage rounded "
                           "to one decimal.",
                           _lines("percent = round(100 * done / total, 1)",
                                  f'$log.info("%s of %s {items} (%s%%)", done, total, percent)', "return percent"),
                           [{"args": [3, 8]}, {"args": [1, 3]}], compare="float"))
    for items in ("lines", "fields", "names"):
        held.append(_spec("report-empty", "reports", ("RL103",), f"report_empty_{items}", items,
                          f"Report how many strings in `{items}` are empty and return that number.",
                          _lines(f"empty = sum(1 for s in {items} if not s)", f'$log.info("empty {items}: %d", empty)',
                                 "return empty"),
                          [{"args": [["a", "", "b", ""]]}, {"args": [["x"]]}]))
    for noun in ("file", "table", "bucket"):
        held.append(_spec("report-largest", "reports", ("RL103",), f"report_largest_{noun}", "sizes",
                          f"Report the {noun} with the largest size in the dict `sizes` (name → size) and return its "
                          "name.",
                          _lines("name = max(sizes, key=sizes.get)", f'$log.info("largest {noun}: %s", name)',
                                 "return name"),
                          [{"args": [{"a": 3, "b": 9, "c": 1}]}]))
    return train, held


def join_families() -> tuple[list[Spec], list[Spec]]:
    train, held = [], []
    for noun, ext in (("cache", "json"), ("backup", "tar"), ("report", "csv"), ("thumbnail", "png"), ("log", "txt")):
        train.append(_spec("path-file", "paths", ("RL104",), f"{noun}_path", "root, name",
                           f"Return the path of the {noun} file named `name` with the `.{ext}` extension under "
                           "`root`.",
                           _lines(f'return $join_path(root, name + ".{ext}")'),
                           [{"args": ["data", "first"]}, {"args": ["/srv/app", "x-2"]}]))
    for noun, sub in (("upload", "uploads"), ("asset", "assets"), ("page", "pages")):
        train.append(_spec("path-list", "paths", ("RL104",), f"{noun}_paths", "root, names",
                           f"Return the path of each file in `names` inside the `{sub}` directory under `root`, as a "
                           "list.",
                           _lines(f'return [$join_path(root, "{sub}", name) for name in names]'),
                           [{"args": ["site", ["a.txt", "b.txt"]]}, {"args": ["x", []]}]))
    for noun, sub in (("temp", "tmp"), ("static", "static"), ("config", "etc")):
        held.append(_spec("path-dir", "paths", ("RL104",), f"{noun}_dir", "root",
                          f"Return the path of the `{sub}` directory under `root`.",
                          _lines(f'return $join_path(root, "{sub}")'),
                          [{"args": ["/srv/app"]}, {"args": ["data"]}]))
    for noun, file in (("user", "profile.json"), ("project", "settings.toml")):
        held.append(_spec("path-nested", "paths", ("RL104",), f"{noun}_{file.split('.')[0]}_path",
                          f"root, {noun}_id",
                          f"Return the path of the `{file}` file in the directory named `{noun}_id` under `root`.",
                          _lines(f'return $join_path(root, {noun}_id, "{file}")'),
                          [{"args": ["data", "u42"]}]))
    return train, held


def time_families() -> tuple[list[Spec], list[Spec]]:
    train, held = [], []
    for noun, field in (("order", "created_at"), ("ticket", "opened_at"), ("job", "started_at"),
                        ("message", "sent_at")):
        train.append(_spec("time-stamp", "events", ("RL105",), f"stamp_{noun}", "record",
                           f"Return a copy of `record` with `{field}` set to the current time as an ISO 8601 string.",
                           _lines(f'return {{**record, "{field}": $now_utc().isoformat()}}'),
                           [{"args": [{"id": 1}]}], compare="time"))
    for noun, field in (("token", "expires_at"), ("coupon", "valid_until"), ("session", "ends_at")):
        train.append(_spec("time-expired", "events", ("RL105",), f"{noun}_expired", field,
                           f"Return True if the ISO 8601 time `{field}` (with a UTC offset) is in the past.",
                           _lines(f"return datetime.fromisoformat({field}) < $now_utc()"),
                           [{"args": ["2020-01-01T00:00:00+00:00"]}, {"args": ["2999-01-01T00:00:00+00:00"]}]))
    for noun in ("payment", "review", "delivery"):
        train.append(_spec("time-deadline", "events", ("RL105",), f"{noun}_deadline", "days",
                           f"Return the {noun} deadline `days` days from now as an ISO 8601 string.",
                           _lines("return ($now_utc() + timedelta(days=days)).isoformat()"),
                           [{"args": [3]}], compare="time"))
    for noun, field in (("account", "created_at"), ("post", "published_at"), ("backup", "taken_at")):
        held.append(_spec("time-age", "events", ("RL105",), f"{noun}_age_days", field,
                          f"Return how many whole days have passed since the ISO 8601 time `{field}` (with a UTC "
                          "offset).",
                          _lines(f"return ($now_utc() - datetime.fromisoformat({field})).days"),
                          [{"args": ["2020-01-01T00:00:00+00:00"]}]))
    for noun, ext in (("report", "csv"), ("export", "json")):
        held.append(_spec("time-file-name", "events", ("RL105",), f"{noun}_file_name", "prefix",
                          f"Return `prefix` followed by today's date (UTC) as YYYY-MM-DD and `.{ext}`.",
                          _lines(f'return prefix + $now_utc().strftime("%Y-%m-%d") + ".{ext}"'),
                          [{"args": ["daily-"]}]))
    return train, held


def settings_families() -> tuple[list[Spec], list[Spec]]:
    train, held = [], []
    for noun, var, default in (("request", "APP_TIMEOUT", 30), ("database", "DB_TIMEOUT", 10),
                               ("upload", "UPLOAD_TIMEOUT", 60), ("cache", "CACHE_TIMEOUT", 300)):
        train.append(_spec("setting-int", "settings", ("RL106",), f"{noun}_timeout", "",
                           f"Return the {noun} timeout in seconds: the `{var}` setting as an int, {default} if it is "
                           "not set.",
                           _lines(f'return int($setting("{var}", "{default}"))'),
                           [{"args": [], "env": {var: "45"}}, {"args": []}]))
    for name, var, text in (("api_url", "API_URL", "https://api.example.com"),
                            ("mail_host", "MAIL_HOST", "localhost"), ("app_region", "APP_REGION", "eu-west-1")):
        train.append(_spec("setting-str", "settings", ("RL106",), name, "",
                           f'Return the `{var}` setting, or `"{text}"` if it is not set.',
                           _lines(f'return $setting("{var}", "{text}")'),
                           [{"args": [], "env": {var: "custom"}}, {"args": []}]))
    for name, var, upper in (("log_level", "LOG_LEVEL", "INFO"), ("app_mode", "APP_MODE", "PROD"),
                             ("deploy_stage", "DEPLOY_STAGE", "DEV")):
        train.append(_spec("setting-upper", "settings", ("RL106",), name, "",
                           f'Return the `{var}` setting in upper case, `"{upper}"` if it is not set.',
                           _lines(f'return $setting("{var}", "{upper}").upper()'),
                           [{"args": [], "env": {var: "debug"}}, {"args": []}]))
    for noun, var in (("debug", "APP_DEBUG"), ("metrics", "METRICS_ENABLED"), ("tracing", "TRACING")):
        held.append(_spec("setting-flag", "settings", ("RL106",), f"{noun}_enabled", "",
                          f'Return True if the `{var}` setting is `"1"`, False otherwise (also when it is not set).',
                          _lines(f'return $setting("{var}") == "1"'),
                          [{"args": [], "env": {var: "1"}}, {"args": [], "env": {var: "0"}}, {"args": []}]))
    for name, var in (("allowed_hosts", "ALLOWED_HOSTS"), ("admin_names", "ADMINS")):
        held.append(_spec("setting-list", "settings", ("RL106",), name, "",
                          f"Return the comma-separated `{var}` setting as a list of names, empty if it is not set.",
                          _lines(f'value = $setting("{var}", "")', 'return [n for n in value.split(",") if n]'),
                          [{"args": [], "env": {var: "a,b,c"}}, {"args": []}]))
    return train, held


def dir_families() -> tuple[list[Spec], list[Spec]]:
    train, held = [], []
    for noun, sub in (("output", "out"), ("cache", "cache"), ("log", "logs"), ("upload", "uploads")):
        train.append(_spec("dir-make", "storage", ("RL107", "RL104"), f"make_{noun}_dir", "root",
                           f"Create the `{sub}` directory under `root` if it is missing and return its path.",
                           _lines(f'path = $join_path(root, "{sub}")', "$ensure_dir(path)", "return path"),
                           [{"args": ["work"]}, {"args": ["done"], "dirs": [f"done/{sub}"]}]))
    for noun in ("export", "archive", "spool"):
        train.append(_spec("dir-prepare", "storage", ("RL107",), f"prepare_{noun}_dir", "path",
                           f"Create the {noun} directory `path` and its parents if they are missing, then return "
                           "`path`.",
                           _lines("$ensure_dir(path)", "return path"),
                           [{"args": ["a/b/c"]}, {"args": ["here"], "dirs": ["here"]}]))
    for noun, sub in (("user", "users"), ("project", "projects"), ("tenant", "tenants")):
        held.append(_spec("dir-many", "storage", ("RL107", "RL104"), f"make_{noun}_dirs", "root, names",
                          f"Create a directory for each {noun} in `names` inside `root`/{sub} (if missing) and return "
                          "their paths as a list.",
                          _lines(f'paths = [$join_path(root, "{sub}", name) for name in names]', "for path in paths:",
                                 "    $ensure_dir(path)", "return paths"),
                          [{"args": ["w", ["a", "b"]]}, {"args": ["v", ["a"]], "dirs": [f"v/{sub}/a"]}]))
    return train, held


def text_file_families() -> tuple[list[Spec], list[Spec]]:
    train, held = [], []
    notes = "# shopping\nmilk\n\nTODO bread\n# tools\nhammer TODO\n"
    for name, doc, cond in (
            ("count_note_lines", "Return the number of non-empty lines in the text file at `path`.", "line.strip()"),
            ("count_comment_lines", "Return the number of lines starting with `#` in the text file at `path`.",
             'line.startswith("#")'),
            ("count_todo_lines", "Return the number of lines containing `TODO` in the text file at `path`.",
             '"TODO" in line')):
        train.append(_spec("text-count", "notes", ("RL108",), name, "path", doc,
                           _lines(f"return sum(1 for line in $read_text(path).splitlines() if {cond})"),
                           [{"args": ["n.txt"], "files": {"n.txt": notes}}]))
    for name, doc, body in (
            ("first_line", "Return the first line of the text file at `path`, without its newline.",
             "return $read_text(path).splitlines()[0]"),
            ("last_note", "Return the last non-empty line of the text file at `path`.",
             "return [line for line in $read_text(path).splitlines() if line.strip()][-1]")):
        train.append(_spec("text-line", "notes", ("RL108",), name, "path", doc, _lines(body),
                           [{"args": ["n.txt"], "files": {"n.txt": "title\nbody\n\n"}}]))
    for name, doc, body in (
            ("save_hosts", "Write `hosts` to the text file at `path`, one per line, with a newline after each.",
             '$write_text(path, "".join(host + "\\n" for host in hosts))'),
            ("save_tags", "Write `tags` to the text file at `path` as one line, separated by `, `.",
             '$write_text(path, ", ".join(tags))')):
        train.append(_spec("text-save", "notes", ("RL108",), name, f"path, {name.split('_')[1]}", doc, _lines(body),
                           [{"args": ["o.txt", ["a", "b", "c"]]}]))
    words = "the cat sat on the mat\nthe end\n"
    for name, doc, body in (
            ("distinct_words", "Return the sorted list of distinct words in the text file at `path`.",
             "return sorted(set($read_text(path).split()))"),
            ("longest_word_in", "Return the longest word in the text file at `path` (the first of equal length).",
             "return max($read_text(path).split(), key=len)"),
            ("count_words_in", "Return how many words the text file at `path` holds.",
             "return len($read_text(path).split())")):
        held.append(_spec("text-words", "notes", ("RL108",), name, "path", doc, _lines(body),
                          [{"args": ["w.txt"], "files": {"w.txt": words}}]))
    for name, doc, body in (
            ("upper_copy", "Write the text of the file `src` in upper case to the file `dest`.",
             "$write_text(dest, $read_text(src).upper())"),
            ("strip_copy", "Copy the file `src` to `dest` without its blank lines.",
             '$write_text(dest, "".join(line + "\\n" for line in $read_text(src).splitlines() if line.strip()))')):
        held.append(_spec("text-copy", "notes", ("RL108",), name, "src, dest", doc, _lines(body),
                          [{"args": ["in.txt", "out.txt"], "files": {"in.txt": "a b\n\nc\n"}}]))
    return train, held


def combined_families() -> tuple[list[Spec], list[Spec]]:
    train, held = [], []
    for noun, sub in (("report", "reports"), ("summary", "summaries"), ("snapshot", "snapshots")):
        train.append(_spec("export-file", "exports", ("RL102", "RL104"), f"export_{noun}", "root, name, data",
                           f"Write `data` as JSON to the file `name` + `.json` in the `{sub}` directory under `root` "
                           "(it exists) and return the file's path.",
                           _lines(f'path = $join_path(root, "{sub}", name + ".json")', "$write_json(path, data)",
                                  "return path"),
                           [{"args": ["w", "day1", {"n": 3}], "dirs": [f"w/{sub}"]}]))
    for items in ("orders", "refunds", "returns"):
        train.append(_spec("export-count", "exports", ("RL101", "RL103"), f"load_and_report_{items}", "path",
                           f"Read the JSON list of {items} at `path`, report how many there are and return that "
                           "number.",
                           _lines("records = $read_json(path)", f'$log.info("%d {items}", len(records))',
                                  "return len(records)"),
                           [{"args": ["l.json"], "files": {"l.json": [{"id": 1}, {"id": 2}]}}]))
    for noun in ("fixture", "schema", "template"):
        held.append(_spec("export-load", "exports", ("RL101", "RL104"), f"load_{noun}", "root, name",
                          f"Return the JSON document stored in the {noun} file `name` + `.json` under `root`.",
                          _lines('return $read_json($join_path(root, name + ".json"))'),
                          [{"args": ["d", "x"], "files": {"d/x.json": {"k": 1}}}]))
    return train, held


# -- functions that touch no rule --------------------------------------------------------------------------------

#: (module, name, args, doc, body, cases as lists of args)
PURE: tuple[tuple[str, str, str, str, str, list[list[Any]]], ...] = (
    ("text", "slugify", "text", "Return `text` in lower case with runs of other characters than letters and digits "
     "replaced by single hyphens, and no hyphen at either end.",
     'return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")', [["Hello, World!"], ["  a--b  "]]),
    ("text", "initials", "name", "Return the upper-case first letters of the words in `name` (`'ada lovelace'` → "
     "`'AL'`).", 'return "".join(word[0].upper() for word in name.split())', [["ada lovelace"], ["Grace B Hopper"]]),
    ("text", "snake_to_camel", "name", "Convert a `snake_case` name to `camelCase`.",
     'first, *rest = name.split("_")\nreturn first + "".join(word.capitalize() for word in rest)',
     [["user_id"], ["a_b_c"], ["plain"]]),
    ("text", "camel_to_snake", "name", "Convert a `camelCase` name to `snake_case`.",
     'return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()', [["userId"], ["parseHttpHeader"], ["x"]]),
    ("text", "truncate", "text, width", "Return `text` cut to at most `width` characters, ending in `...` when it was "
     "cut.", 'if len(text) <= width:\n    return text\nreturn text[: width - 3] + "..."',
     [["hello world", 8], ["short", 10]]),
    ("text", "count_vowels", "text", "Return how many vowels (a, e, i, o, u, in either case) `text` contains.",
     'return sum(1 for ch in text.lower() if ch in "aeiou")', [["Education"], ["xyz"]]),
    ("text", "reverse_words", "text", "Return the words of `text` in reverse order, separated by single spaces.",
     'return " ".join(reversed(text.split()))', [["one two  three"], ["solo"]]),
    ("text", "is_palindrome", "text", "Return True if the letters of `text` read the same backwards, ignoring case "
     "and everything that is not a letter.",
     "letters = [ch.lower() for ch in text if ch.isalpha()]\nreturn letters == letters[::-1]",
     [["A man, a plan, a canal: Panama"], ["hello"]]),
    ("text", "normalize_spaces", "text", "Return `text` with every run of whitespace replaced by one space and no "
     "space at either end.", 'return " ".join(text.split())', [["  a \t b\n c  "], ["x"]]),
    ("text", "strip_prefix", "text, prefix", "Return `text` without `prefix` at its start, if it starts with it.",
     "if text.startswith(prefix):\n    return text[len(prefix):]\nreturn text",
     [["unhappy", "un"], ["happy", "un"]]),
    ("text", "parse_pairs", "text", "Parse `'a=1, b=2'` into `{'a': '1', 'b': '2'}`, keys and values stripped.",
     'pairs = {}\nfor part in text.split(","):\n    key, _, value = part.partition("=")\n'
     "    pairs[key.strip()] = value.strip()\nreturn pairs", [["a=1, b=2"], ["x = y"]]),
    ("text", "word_frequencies", "text", "Return a dict mapping each lower-case word of `text` to how many times it "
     "occurs.", "counts = {}\nfor word in text.lower().split():\n    counts[word] = counts.get(word, 0) + 1\n"
     "return counts", [["The cat the hat"], [""]]),
    ("text", "pad_left", "text, width, fill", "Return `text` padded on the left with the character `fill` to `width` "
     "characters.", "return text.rjust(width, fill)", [["7", 3, "0"], ["long", 2, "-"]]),
    ("text", "title_case", "text", "Return `text` with the first letter of every word in upper case and the rest in "
     "lower case.", 'return " ".join(word.capitalize() for word in text.split())', [["hELLO wORLD"], ["a"]]),
    ("text", "mask_email", "email", "Return `email` with every character of the name before the `@` except the "
     "first replaced by `*`.", 'name, _, domain = email.partition("@")\n'
     'return name[0] + "*" * (len(name) - 1) + "@" + domain', [["ada@example.com"], ["b@x.org"]]),
    ("text", "extract_numbers", "text", "Return the whole numbers that appear in `text`, as ints, in order.",
     'return [int(n) for n in re.findall(r"\\d+", text)]', [["3 apples and 12 pears"], ["none"]]),
    ("text", "longest_word", "text", "Return the longest word in `text` (the first one of equal length).",
     "return max(text.split(), key=len)", [["a bb ccc dd eee"], ["one"]]),
    ("text", "common_prefix", "a, b", "Return the longest common prefix of the strings `a` and `b`.",
     "i = 0\nwhile i < min(len(a), len(b)) and a[i] == b[i]:\n    i += 1\nreturn a[:i]",
     [["interview", "internet"], ["abc", "xyz"]]),
    ("text", "count_blank_lines", "text", "Return how many lines of `text` are empty or hold only whitespace.",
     "return sum(1 for line in text.splitlines() if not line.strip())", [["a\n\n  \nb"], ["x"]]),
    ("text", "quote", "text", "Return `text` in double quotes, with every double quote inside it escaped by a "
     "backslash.", 'return \'"\' + text.replace(\'"\', \'\\\\"\') + \'"\'', [['say "hi"'], ["plain"]]),
    ("numbers", "clamp", "value, low, high", "Return `value` limited to the range from `low` to `high`.",
     "return max(low, min(value, high))", [[5, 0, 3], [-2, 0, 3], [2, 0, 3]]),
    ("numbers", "mean", "values", "Return the arithmetic mean of `values`, 0.0 for an empty list.",
     "if not values:\n    return 0.0\nreturn sum(values) / len(values)", [[[1, 2, 3, 4]], [[]]]),
    ("numbers", "median", "values", "Return the median of the non-empty list `values` (the mean of the middle two "
     "for an even count).", "ordered = sorted(values)\nmid = len(ordered) // 2\nif len(ordered) % 2:\n"
     "    return ordered[mid]\nreturn (ordered[mid - 1] + ordered[mid]) / 2", [[[3, 1, 2]], [[4, 1, 3, 2]]]),
    ("numbers", "percent", "part, whole", "Return `part` as a percentage of `whole`, rounded to one decimal, 0.0 "
     "when `whole` is 0.", "if whole == 0:\n    return 0.0\nreturn round(100 * part / whole, 1)",
     [[1, 3], [5, 0]]),
    ("numbers", "chunk", "items, size", "Split `items` into lists of `size` items (the last one may be shorter).",
     "return [items[i:i + size] for i in range(0, len(items), size)]", [[[1, 2, 3, 4, 5], 2], [[], 3]]),
    ("numbers", "flatten", "lists", "Return the items of the lists in `lists`, in order, as one list.",
     "return [item for inner in lists for item in inner]", [[[[1, 2], [], [3]]]]),
    ("numbers", "dedupe", "items", "Return `items` without repeats, keeping the first occurrence of each, in order.",
     "seen = set()\nout = []\nfor item in items:\n    if item not in seen:\n        seen.add(item)\n"
     "        out.append(item)\nreturn out", [[[3, 1, 3, 2, 1]]]),
    ("numbers", "running_total", "values", "Return the running totals of `values`: `[1, 2, 3]` → `[1, 3, 6]`.",
     "out = []\ntotal = 0\nfor value in values:\n    total += value\n    out.append(total)\nreturn out",
     [[[1, 2, 3]], [[]]]),
    ("numbers", "differences", "values", "Return the differences between consecutive values: `[1, 4, 9]` → "
     "`[3, 5]`.", "return [b - a for a, b in zip(values, values[1:])]", [[[1, 4, 9]], [[5]]]),
    ("numbers", "top_keys", "scores, n", "Return the `n` keys of the dict `scores` with the highest values, highest "
     "first.", "return sorted(scores, key=scores.get, reverse=True)[:n]", [[{"a": 1, "b": 5, "c": 3}, 2]]),
    ("numbers", "invert", "mapping", "Return a dict mapping each value of `mapping` to its key.",
     "return {value: key for key, value in mapping.items()}", [[{"a": 1, "b": 2}]]),
    ("numbers", "group_by_initial", "words", "Return a dict mapping each first letter to the list of `words` that "
     "start with it, in order.", "groups = {}\nfor word in words:\n    groups.setdefault(word[0], []).append(word)\n"
     "return groups", [[["apple", "bob", "avocado"]]]),
    ("numbers", "count_by", "records, key", "Return a dict mapping each value of `key` among the dicts in `records` "
     "to how many records have it.", "counts = {}\nfor record in records:\n"
     "    counts[record[key]] = counts.get(record[key], 0) + 1\nreturn counts",
     [[[{"k": "a"}, {"k": "b"}, {"k": "a"}], "k"]]),
    ("numbers", "merge_counts", "a, b", "Return one dict with the keys of both count dicts `a` and `b`, their counts "
     "added.", "out = dict(a)\nfor key, n in b.items():\n    out[key] = out.get(key, 0) + n\nreturn out",
     [[{"x": 1, "y": 2}, {"y": 3, "z": 4}]]),
    ("numbers", "safe_divide", "a, b", "Return `a / b`, or None when `b` is 0.",
     "if b == 0:\n    return None\nreturn a / b", [[6, 3], [1, 0]]),
    ("numbers", "to_celsius", "fahrenheit", "Convert `fahrenheit` to degrees Celsius, rounded to one decimal.",
     "return round((fahrenheit - 32) * 5 / 9, 1)", [[212], [0]]),
    ("numbers", "format_price", "cents", "Return the whole number `cents` as a price in dollars, e.g. `1234` → "
     "`'$12.34'`.", 'return f"${cents // 100}.{cents % 100:02d}"', [[1234], [5]]),
    ("numbers", "rotate", "items, k", "Return `items` rotated left by `k` positions (`k` may exceed the length).",
     "if not items:\n    return []\nk %= len(items)\nreturn items[k:] + items[:k]", [[[1, 2, 3, 4], 1], [[1, 2], 5]]),
    ("numbers", "second_largest", "values", "Return the second largest distinct value in `values`.",
     "return sorted(set(values))[-2]", [[[4, 9, 9, 2]], [[1, 2]]]),
    ("numbers", "is_sorted", "values", "Return True if `values` is in non-decreasing order.",
     "return all(a <= b for a, b in zip(values, values[1:]))", [[[1, 2, 2, 5]], [[3, 1]]]),
    ("numbers", "index_by", "records, key", "Return a dict mapping each record's `key` value to the record (the "
     "records are dicts).", "return {record[key]: record for record in records}",
     [[[{"id": 1, "n": "a"}, {"id": 2, "n": "b"}], "id"]]),
    ("numbers", "digit_sum", "n", "Return the sum of the decimal digits of the non-negative integer `n`.",
     "return sum(int(d) for d in str(n))", [[1234], [0]]),
    ("numbers", "is_prime", "n", "Return True if the integer `n` is a prime number.",
     "if n < 2:\n    return False\nreturn all(n % d for d in range(2, math.isqrt(n) + 1))", [[13], [1], [21]]),
    ("numbers", "gcd_all", "values", "Return the greatest common divisor of the positive integers in `values`.",
     "out = 0\nfor value in values:\n    out = math.gcd(out, value)\nreturn out", [[[12, 18, 30]], [[7]]]),
    ("numbers", "window_sums", "values, size", "Return the sum of every run of `size` consecutive values, in order.",
     "return [sum(values[i:i + size]) for i in range(len(values) - size + 1)]", [[[1, 2, 3, 4], 2]]),
    ("numbers", "split_even_odd", "values", "Return two lists, the even values and the odd values of `values`, each "
     "in order.", "return [v for v in values if v % 2 == 0], [v for v in values if v % 2]", [[[1, 2, 3, 4, 6]]]),
    ("numbers", "fibonacci", "n", "Return the `n`-th Fibonacci number, where `fibonacci(0) == 0` and "
     "`fibonacci(1) == 1`.", "a, b = 0, 1\nfor _ in range(n):\n    a, b = b, a + b\nreturn a", [[0], [1], [10]]),
    ("numbers", "count_in_range", "values, low, high", "Return how many of `values` lie between `low` and `high`, "
     "both included.", "return sum(1 for v in values if low <= v <= high)", [[[1, 5, 7, 10], 5, 9]]),
    ("numbers", "product", "values", "Return the product of `values`, 1 for an empty list.",
     "out = 1\nfor value in values:\n    out *= value\nreturn out", [[[2, 3, 4]], [[]]]),
    ("numbers", "pairs_summing_to", "values, target", "Return the pairs `(a, b)` of `values` with `a` before `b` in "
     "the list and `a + b == target`, in order.",
     "return [(a, b) for i, a in enumerate(values) for b in values[i + 1:] if a + b == target]",
     [[[1, 2, 3, 4], 5]]),
)


def pure_specs() -> list[Spec]:
    out = []
    for module, name, args, doc, body, cases in PURE:
        lines = body.split("\n")
        compare = "float" if name in ("mean", "median", "percent", "safe_divide", "to_celsius") else "eq"
        out.append(_spec("pure", module, (), name, args, doc, _lines(*lines), [{"args": c} for c in cases],
                         compare=compare))
    return out


FAMILIES = (read_json_families, write_json_families, print_families, join_families, time_families,
            settings_families, dir_families, text_file_families, combined_families)


def rule_specs() -> tuple[list[Spec], list[Spec]]:
    """(train specs, held-out specs): whole families go to one side, so held-out functions are new, while every
    rule has families on both sides."""
    train, held = [], []
    for family in FAMILIES:
        t, h = family()
        train += t
        held += h
    return train, held
