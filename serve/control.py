"""Talking to a running `redline serve` from another process (the daemon): find it, reload, yield, resume.

Standard library only (no torch, no HTTP client package), so the daemon and the CLI can import it anywhere.
The server writes `<state_dir>/serve.json` ({pid, host, port, started_at, token}, mode 0600) at start and removes
it on exit; a stale file (its pid is gone) counts as no server. Every call is a no-op returning False when none
runs. `reload`, `yield_gpu` and `resume` send the file's token: the server refuses them without it, so only this
user's processes (not a web page, not another user) can unload the model.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SERVE_FILE = "serve.json"


class _HasStateDir(Protocol):
    state_dir: Path


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    host: str
    port: int
    started_at: str
    token: str = ""
    #: adapters the server could not load: version → why (one line)
    failed: dict[str, str] | None = None

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else ("[::1]" if self.host == "::" else self.host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def serve_file(config: _HasStateDir) -> Path:
    return Path(config.state_dir) / SERVE_FILE


def find_server(config: _HasStateDir) -> ServerInfo | None:
    """The server this repo's serve.json names, if its process is alive; None otherwise."""
    try:
        data = json.loads(serve_file(config).read_text(encoding="utf-8"))
        failed = data.get("failed")
        info = ServerInfo(pid=int(data["pid"]), host=str(data["host"]), port=int(data["port"]),
                          started_at=str(data.get("started_at", "")), token=str(data.get("token") or ""),
                          failed={str(k): str(v) for k, v in failed.items()} if isinstance(failed, dict) else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return info if _alive(info.pid) else None


def health(config: _HasStateDir, *, timeout: float = 5.0) -> dict[str, Any] | None:
    """`GET /redline/health` → {model, adapter, state}; None when no server answers."""
    return _call(config, "GET", "/redline/health", None, timeout)


def reload(config: _HasStateDir, *, timeout: float = 30.0) -> bool:
    """Ask the server to re-read the registry's current adapter now (it also polls on its own)."""
    return _call(config, "POST", "/redline/reload", {}, timeout) is not None


def yield_gpu(config: _HasStateDir, reason: str, *, timeout: float = 120.0) -> bool:
    """Ask the server to free the GPU (waits for the request in flight); it answers 503 until `resume`."""
    return _call(config, "POST", "/redline/yield", {"reason": reason}, timeout) is not None


def resume(config: _HasStateDir, *, timeout: float = 300.0) -> bool:
    """Ask a yielded server to load the model again and serve."""
    return _call(config, "POST", "/redline/resume", {}, timeout) is not None


def _call(config: _HasStateDir, method: str, path: str, body: dict[str, Any] | None,
          timeout: float) -> dict[str, Any] | None:
    info = find_server(config)
    if info is None:
        return None
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(info.base_url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", "X-Redline-Token": info.token})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = json.loads(resp.read() or b"{}")
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return answer if isinstance(answer, dict) else {}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
