"""Binding and running an ASGI app with uvicorn on a socket we open ourselves, so `--port 0` works and the
real port is known before the first request (serve.json, the startup line)."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from pathlib import Path
from typing import Any

from redline.errors import ConfigError
from redline.fsutil import atomic_write
from redline.private import private_dir
from redline.records import utc_now


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int, *, allow_remote: bool) -> socket.socket:
    """A listening socket; a non-loopback host needs `allow_remote` (the endpoints have no authentication)."""
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(f"refusing to listen on {host}: the model endpoint has no authentication",
                          fix="use --host 127.0.0.1, or pass --allow-remote to expose it on purpose")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and without it a response
    # written as headers then body waits ~40 ms for the client's delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror})",
                          fix="pick another --port, or stop what is using it") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run(app: Any, sock: socket.socket, *, log_level: str = "warning") -> None:
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, lifespan="on", timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


class ServeFile:
    """`<state_dir>/serve.json`, so the daemon, the CLI and editor plugins can find this server: {pid, host, port,
    started_at, token} and, once an adapter failed to load, `failed` ({version: why}). Written 0600 (the control
    token is in it) and atomically; `remove` deletes it only while it is still this process's."""

    def __init__(self, path: Path, sock: socket.socket, host: str, token: str) -> None:
        self.path = path
        self.info: dict[str, Any] = {"pid": os.getpid(), "host": host, "port": sock.getsockname()[1],
                                     "started_at": utc_now(), "token": token}

    def write(self, **extra: Any) -> None:
        self.info.update(extra)
        private_dir(self.path.parent)
        atomic_write(self.path, json.dumps(self.info) + "\n")

    def note_failed(self, failed: dict[str, str]) -> None:
        self.write(failed=failed)

    def remove(self) -> None:
        try:
            if json.loads(self.path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass
