"""A real PostgreSQL server in a temporary directory, for the team tests and `bench/team_queue.py`.

`initdb` + `pg_ctl` from Debian's `postgresql` package (or `REDLINE_PG_BIN`), listening on a Unix socket in its
own directory and on a free 127.0.0.1 port. PostgreSQL refuses to run as root, so under root (CI, containers) the
server runs as an unprivileged user (`nobody`, or `REDLINE_PG_USER`): its directory is given to that user, and
root, which connects, may read any socket. Trust authentication: the server listens only on this machine.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

DATABASE = "redline"
ROLE = "redline"


def find_bin() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres: `REDLINE_PG_BIN`, the newest Debian one, else PATH."""
    env = os.environ.get("REDLINE_PG_BIN")
    if env:
        return Path(env) if (Path(env) / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster: `start`, `stop` (fast: connections are cut, as in a crash or restart), `url`."""

    def __init__(self, bin_dir: Path, *, settings: dict[str, str] | None = None) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="redline-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.settings = settings or {}
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = os.environ.get("REDLINE_PG_USER", "nobody")
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", ROLE, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        conf = {
            "listen_addresses": "'127.0.0.1'", "port": str(self.port), "unix_socket_directories": f"'{self.root}'",
            "max_connections": "300", "shared_buffers": "128MB", "log_min_messages": "warning",
            "logging_collector": "off", **self.settings,
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as fh:
            fh.writelines(f"{k} = {v}\n" for k, v in conf.items())

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kw: dict[str, Any] = {}
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            kw = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "HOME": str(self.root)}
        return subprocess.run([str(self.bin / tool), *args], capture_output=True, text=True, check=check,
                              cwd=self.root, env=env, timeout=120, **kw)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def start(self) -> None:
        """Start the server (nothing to do when it runs)."""
        if self.running():
            return
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                         "start", check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr or done.stdout}\n{self.log()}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def url(self, database: str = DATABASE) -> str:
        """A URL over TCP on 127.0.0.1 (what a team's machines use)."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = DATABASE) -> str:
        return f"postgresql://{ROLE}@/{database}?host={self.root}&port={self.port}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def start_server(**kw: Any) -> PgServer:
    """A started server with the `redline` database, or RuntimeError saying why there is none."""
    bin_dir = find_bin()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl): `apt-get install postgresql`, or set "
                           "REDLINE_PG_BIN")
    server = PgServer(bin_dir, **kw)
    try:
        server.start()
        server.create_database(DATABASE)
    except BaseException:
        server.close()
        raise
    return server
