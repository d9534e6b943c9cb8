"""Redline's state is private to the user: directories it creates are 0700 and files it writes 0600.

The queue, spool files, adapters and exports can hold prompts, code and (scrubbed) feedback from private
repositories; on a shared machine other users must not read them.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str]) -> Path:
    """`mkdir -p path`, every directory it creates 0700; returns `path`. Existing directories are left as they are
    (one may be the user's repository), except by `tighten`."""
    path = Path(path)
    missing = []
    here = path
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)  # mkdir's mode is filtered by the umask; make it exact
    return path


def tighten(path: str | os.PathLike[str]) -> None:
    """Make an existing directory Redline owns 0700 (state dirs created by an older version were 0755)."""
    try:
        st = os.stat(path)
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.chmod(path, DIR_MODE)
    except OSError:
        pass


def private_file(file: str, flags: int) -> int:
    """An `opener` for `open()` that creates the file 0600."""
    return os.open(file, flags, FILE_MODE)
