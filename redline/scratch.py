"""A scratch copy of the repository, for rerunning a check on an answer without touching the user's tree.

The copy holds what git would commit (tracked files and untracked ones git does not ignore), or every file when the
directory is not a git repository, so tool configuration (`pyproject.toml`, `ruff.toml`, `conftest.py`) applies
as it does in the real tree. One file at a time is replaced by an answer's text and put back afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redline.errors import RedlineError
from redline.private import DIR_MODE

#: folders never copied when the tree is not a git repository
_SKIP = {".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


class ScratchTree:
    def __init__(self, repo_root: Path) -> None:
        self.source = Path(repo_root)
        self.root = Path(tempfile.mkdtemp(prefix="redline-scratch-"))
        os.chmod(self.root, DIR_MODE)
        for rel in _files(self.source):
            src, dst = self.source / rel, self.root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink() or src.is_file():
                shutil.copy2(src, dst, follow_symlinks=False)

    @contextmanager
    def spliced(self, path: str, text: str) -> Iterator[Path]:
        """The scratch root with `path` holding `text` for the duration; the copy's own file comes back after."""
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise RedlineError(f"{path!r} is not a path inside the repository", fix="check the record's path")
        target.parent.mkdir(parents=True, exist_ok=True)
        saved = target.read_bytes() if target.is_file() else None
        target.write_text(text, encoding="utf-8")
        try:
            yield self.root
        finally:
            if saved is None:
                target.unlink(missing_ok=True)
            else:
                target.write_bytes(saved)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _files(root: Path) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                             capture_output=True, check=True, timeout=60).stdout
        return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        files = []
        for here, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if d not in _SKIP]
            files += [os.path.relpath(os.path.join(here, n), root) for n in names]
        return files
