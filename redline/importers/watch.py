"""Following a capture directory: import again whenever the tool appends to its logs (watchdog), until stopped.

Each round re-reads the directory; ids are stable, so a round adds only what is new. Changes that arrive while a
round runs are folded into the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from redline.config import Config
from redline.importers import import_capture
from redline.importers.common import Report
from redline.queue.protocol import Store


class _Changed(FileSystemEventHandler):
    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.wake.set()


def watch(store: Store, config: Config, source: str, directory: Path, on_round: Callable[[Report], None],
          stop: threading.Event, *, settle_s: float = 0.2) -> None:
    """Import now, then after every burst of changes in `directory`, calling `on_round` with each report."""
    wake = threading.Event()
    observer = Observer()
    observer.schedule(_Changed(wake), str(directory), recursive=False)
    observer.start()
    try:
        on_round(import_capture(store, config, source, directory))
        while not stop.is_set():
            if not wake.wait(0.5):
                continue
            stop.wait(settle_s)  # let the writer finish its line
            wake.clear()
            if not stop.is_set():
                on_round(import_capture(store, config, source, directory))
    finally:
        observer.stop()
        observer.join()
