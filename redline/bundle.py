"""Portable feedback bundles: gzip-compressed JSONL in the core's exchange format, one object per line
(`{"generation": {...} | null, "feedback": [...]}`), written by `redline ci bundle` on CI and imported on the
developer's machine by `redline import` or the inbox watcher.

A bundle is written to a temporary name and renamed into place, so a watcher never sees half a bundle.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from redline.queue.protocol import Store
from redline.records import Feedback

SUFFIX = ".redline.jsonl.gz"


def default_name(commit: str | None = None) -> str:
    from redline.records import utc_now

    stamp = utc_now().replace(":", "").replace("-", "").replace(".", "")
    return f"feedback-{(commit or 'local')[:12]}-{stamp}{SUFFIX}"


def write_bundle(out: Path, *, store: Store | None = None, feedback: Iterable[Feedback] = ()) -> int:
    """Write `feedback` (and, with `store`, the store's whole export) to `out` atomically; returns lines written."""
    from redline.transfer import export_jsonl

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=".tmp", dir=out.parent)
    lines = 0
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
            if store is not None:
                lines += export_jsonl(store, text)
            for fb in feedback:
                text.write(json.dumps({"generation": None, "feedback": [fb.to_dict()]}, ensure_ascii=False,
                                      sort_keys=True) + "\n")
                lines += 1
            text.flush()
            text.detach()
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return lines
