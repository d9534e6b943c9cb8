"""Importers for completions other tools already logged: Continue's dev data and Tabby's event logs.

Each reads a capture directory, takes only this repository's events (by the file's place under the repository
root, or by its git remote), and writes generations with `accept` / `edit` feedback through the ledger. Ids come
from the tool's own ids, so importing the same files again adds nothing; a line that is not an event of a known
shape is skipped and counted, never fatal. `watch` follows a directory and imports again as the tool writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from redline.config import Config
from redline.errors import RecordError
from redline.importers import continue_dev, tabby
from redline.importers.common import Report
from redline.queue.protocol import Store

SOURCES: dict[str, tuple[Callable[[Store, Config, Path], Report], Callable[[], Path]]] = {
    "continue": (continue_dev.import_dir, continue_dev.default_dir),
    "tabby": (tabby.import_dir, tabby.default_dir),
}


def capture_dir(source: str, directory: Path | None) -> Path:
    """`directory`, or the tool's default capture directory; RecordError naming it when it is not a directory."""
    path = SOURCES[source][1]() if directory is None else directory
    if not path.is_dir():
        raise RecordError(f"no {source} capture directory here", path=path,
                          fix=f"give the directory {source} logs to (`redline import --from {source} DIR`)")
    return path


def import_capture(store: Store, config: Config, source: str, directory: Path) -> Report:
    """Import every event of this repository in `directory` (a `capture_dir`)."""
    return SOURCES[source][0](store, config, directory)


__all__ = ["SOURCES", "Report", "capture_dir", "import_capture"]
