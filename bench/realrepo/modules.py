"""The repository's modules: each file's docstring and imports (the top of every prompt written in it)."""

from __future__ import annotations

from string import Template

from bench.realrepo.rules import Names

#: module → (docstring, import lines; `$helper` names are filled per repository). A module imports the helpers its
#: functions use and the standard modules the rest of the file needs (so naive code runs: the rules, not a
#: NameError, are what it breaks).
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "inventory": ("Stock records of the warehouse, kept as JSON files.",
                  ("import json", "import os", "", "from app.util import $read_json, $write_json")),
    "reports": ("Summaries for the daily report.",
                ("from app.util import $log",)),
    "paths": ("Where the application's files live.",
              ("import os", "", "from app.util import $join_path")),
    "events": ("Timestamps of orders, tickets and jobs.",
               ("import time", "from datetime import datetime, timedelta, timezone", "",
                "from app.util import $now_utc")),
    "settings": ("Settings of the application, read from the environment.",
                 ("import os", "", "from app.util import $setting")),
    "storage": ("Directories the application writes to.",
                ("import os", "", "from app.util import $ensure_dir, $join_path")),
    "notes": ("Plain-text files: notes, lists and templates.",
              ("from app.util import $read_text, $write_text",)),
    "exports": ("Exports of reports and snapshots as JSON files.",
                ("import json", "import os", "", "from app.util import $join_path, $log, $read_json, $write_json")),
    "text": ("Small string helpers.", ("import re",)),
    "numbers": ("Small helpers for numbers, lists and dicts.", ("import math",)),
}


def header(module: str, names: Names) -> str:
    """The top of `app/<module>.py`, down to the blank lines before the first function."""
    doc, imports = MODULES[module]
    lines = [Template(line).substitute(names.as_dict()) for line in imports]
    lines = [_sorted_import(line) for line in lines]
    return f'"""{doc}"""\n\n' + "\n".join(lines) + "\n\n\n"


def _sorted_import(line: str) -> str:
    """`from app.util import b, a` with the names sorted, as isort/ruff would leave it."""
    if not line.startswith("from app.util import "):
        return line
    names = sorted(n.strip() for n in line.removeprefix("from app.util import ").split(","))
    return "from app.util import " + ", ".join(names)
