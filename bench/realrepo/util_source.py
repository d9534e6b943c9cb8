"""The repository's `app/util.py`: the helpers its rules point to, under the names a variant gives them."""

from __future__ import annotations

from bench.realrepo.rules import Names

UTIL_TEMPLATE = '''"""Helpers every module of this repository uses: files, paths, settings, time, logging."""

import json
import logging
import os
from datetime import datetime, timezone

{log} = logging.getLogger("app")


def {read_json}(path):
    """The JSON document stored at `path`."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def {write_json}(path, data):
    """Write `data` to `path` as JSON (indented, keys sorted, newline at the end)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\\n")


def {read_text}(path):
    """The text of the file at `path` (UTF-8)."""
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def {write_text}(path, text):
    """Write `text` to the file at `path` (UTF-8)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def {join_path}(*parts):
    """The path made of `parts`, joined with the platform's separator."""
    return os.path.join(*parts)


def {ensure_dir}(path):
    """Create the directory `path` (and its parents) if missing; return `path`."""
    os.makedirs(path, exist_ok=True)
    return path


def {setting}(name, default=None):
    """The setting `name` from the environment, or `default` when it is not set."""
    return os.environ.get(name, default)


def {now_utc}():
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)
'''


def util_source(names: Names) -> str:
    return UTIL_TEMPLATE.format(**names.as_dict())
