"""The inbox: bundles dropped into `<state dir>/inbox/` (downloaded CI artifacts) are imported into the queue.

`import_pending` does one pass (`process_inbox` with a store already open); `InboxWatcher` runs it whenever watchdog
sees a file arrive, for the daemon or `redline ci watch`. An imported bundle moves to `inbox/done/`; a bad one —
whatever went wrong, a `RedlineError` or any other exception — moves to `inbox/failed/` beside a `.error.txt`
holding its one-line reason, so it is not retried forever, the good ones still import, and the watching thread
never dies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redline.config import Config
from redline.errors import RedlineError
from redline.private import private_dir

PATTERNS = ("*.jsonl.gz", "*.jsonl")

Importer = Callable[[Path], Any]


@dataclass
class InboxResult:
    imported: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    #: bundles that failed while still being written (modified moments ago): retried on the next scan
    deferred: list[Path] = field(default_factory=list)


def pending(inbox: Path) -> list[Path]:
    if not inbox.is_dir():
        return []
    found = {p for pattern in PATTERNS for p in inbox.glob(pattern) if p.is_file() and not p.name.startswith(".")}
    return sorted(found)


def default_importer(config: Config) -> Importer:
    from redline.queue import open_store
    from redline.transfer import import_jsonl

    def run(path: Path) -> Any:
        store = open_store(config)
        try:
            return import_jsonl(store, config, path)
        finally:
            store.close()

    return run


def process_inbox(store: Any, config: Config, *, settle_s: float = 0.0) -> InboxResult:
    """One pass over the inbox, importing into `store` (already open, e.g. the daemon's): see `import_pending`."""
    from redline.transfer import import_jsonl

    return import_pending(config, lambda path: import_jsonl(store, config, path), settle_s=settle_s)


def import_pending(config: Config, importer: Importer | None = None, *, settle_s: float = 0.0) -> InboxResult:
    """Import every bundle now in the inbox, each in its own transaction; bad bundles are set aside.

    A bundle that fails to import within `settle_s` of its last change may still be arriving (a copy in
    progress): it is left where it is and listed as deferred.
    """
    importer = importer or default_importer(config)
    inbox = config.inbox_dir
    result = InboxResult()
    for path in pending(inbox):
        try:
            importer(path)
        except Exception as exc:  # any failure, even MemoryError: one bad bundle must not block the rest
            if settle_s and _age(path) < settle_s:
                result.deferred.append(path)
                continue
            reason = _reason(path, exc)
            result.failed.append((path, reason))
            try:
                _move(path, inbox / "failed", note=reason)
            except OSError:  # it vanished, or the folder is read-only: reported, retried next pass
                pass
            continue
        result.imported.append(path)
        _move(path, inbox / "done")
    return result


def _reason(path: Path, exc: BaseException) -> str:
    if isinstance(exc, RedlineError):
        return exc.one_line()
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{path}: cannot import ({type(exc).__name__}{': ' + text if text else ''})"


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _move(path: Path, folder: Path, note: str | None = None) -> None:
    private_dir(folder)
    target = folder / path.name
    n = 1
    while target.exists():
        target = folder / f"{n}-{path.name}"
        n += 1
    path.replace(target)
    if note is not None:
        target.with_name(target.name + ".error.txt").write_text(note + "\n", encoding="utf-8")


class InboxWatcher:
    """Imports bundles as they land (watchdog), plus once at start for those already there."""

    #: seconds a bundle must sit unchanged before a failed import of it counts as a bad bundle
    SETTLE_S = 2.0

    def __init__(self, config: Config, importer: Importer | None = None,
                 on_result: Callable[[InboxResult], None] | None = None) -> None:
        self.config = config
        self.importer = importer or default_importer(config)
        self.on_result = on_result
        self._lock = threading.Lock()
        self._observer: Any = None

    def start(self) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("created", "moved", "closed") and not event.is_directory:
                    watcher.scan()

        private_dir(self.config.inbox_dir)
        self._observer = Observer()
        self._observer.schedule(Handler(), str(self.config.inbox_dir), recursive=False)
        self._observer.start()
        self.scan()

    def scan(self) -> InboxResult:
        with self._lock:
            try:
                result = import_pending(self.config, self.importer, settle_s=self.SETTLE_S)
            except Exception as exc:  # the inbox itself is unreadable: try again on the next event
                result = InboxResult(failed=[(self.config.inbox_dir, _reason(self.config.inbox_dir, exc))])
        if result.deferred and self._observer is not None:
            retry = threading.Timer(self.SETTLE_S, self.scan)
            retry.daemon = True
            retry.start()
        if self.on_result is not None and (result.imported or result.failed):
            self.on_result(result)
        return result

    @property
    def alive(self) -> bool:
        """Whether the watching thread still runs (`redline ci watch` exits with an error when it does not)."""
        return self._observer is not None and self._observer.is_alive()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
