"""The gate's sample of the team's own code: what the perplexity guard reads to catch an adapter that makes the
model worse at the repository's human-written code."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path


def default_human_texts(repo_root: Path | None, limit: int, pathspecs: Sequence[str] = ("*.py",),
                        max_chars: int = 8000) -> list[str]:
    """A stable sample of the repo's tracked files matching `pathspecs` (git ls-files), each cut to `max_chars`."""
    if repo_root is None:
        return []
    try:
        listed = subprocess.run(["git", "-C", str(repo_root), "ls-files", "--", *pathspecs], capture_output=True,
                                text=True, timeout=30, check=False).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return []
    chosen = sorted(listed, key=lambda p: hashlib.sha256(p.encode()).hexdigest())[:limit]
    texts = []
    for rel in chosen:
        try:
            texts.append((Path(repo_root) / rel).read_text(encoding="utf-8")[:max_chars])
        except (OSError, UnicodeDecodeError):
            continue
    return texts
