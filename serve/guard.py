"""What keeps web pages off `redline serve` and `redline proxy`: both listen on loopback, and a browser is a
loopback client too, so the peer's address says nothing about who sent a request.

A page can send three kinds of requests without a CORS preflight — GET, and POST with a `text/plain`, form or
multipart body — and both servers would parse any of those bodies as JSON, use the model and write a row to the
queue. After DNS rebinding (the page's own name re-pointed at 127.0.0.1) it could read the answers as well. So every
request must pass four checks before any route runs (none reads the body):

* `Host` is an IP address, `localhost`, or a name the user allowed (`--allow-host`). A rebound name arrives as the
  page's own name; an IP literal cannot be rebound.
* `Origin` is absent or allowed (`--allow-origin`). Browsers put it on every POST, `no-cors` ones included;
  editor plugins (Node's fetch, curl, Python) send none.
* `Sec-Fetch-Site`, when a browser sent it without an allowed `Origin`, is not `cross-site` or `same-site`: that is
  a page's `no-cors` GET (an `<img>` or `<script>` pointed at `/v1/models`).
* POST bodies are `Content-Type: application/json`, which a page can only send after a preflight this server does
  not grant (unless the origin is allowed).

Allowed origins also get CORS answers (Starlette's `CORSMiddleware`), so a web-based editor the user chose can read
them. Starlette's own `TrustedHostMiddleware` is not used: it answers a plain-text 400 and knows nothing of
`Origin`; these refusals are one-line JSON errors like every other.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from redline.errors import ConfigError
from redline.serve.answers import error_body

#: what an allowed web page may send and read (never the control token's header: a page cannot control the server)
CORS_HEADERS = ["Content-Type", "Authorization", "X-Redline-Path"]
EXPOSED = ["X-Redline-Generation", "X-Redline-State", "Retry-After"]
_BROWSER_OTHER_SITE = {"cross-site", "same-site"}


@dataclass(frozen=True)
class Policy:
    """Names and origins the user allowed on top of the loopback defaults (both lower-case)."""

    hosts: frozenset[str] = field(default_factory=frozenset)
    origins: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, hosts: Iterable[str] = (), origins: Iterable[str] = ()) -> Policy:
        """From `--allow-host` / `--allow-origin` values; ConfigError naming a value that is not a name or origin."""
        names = set()
        for h in hosts:  # IP addresses need no allowing (they cannot be rebound), so only names are taken
            name = h.strip().lower().rstrip(".")
            if not name or any(c in name for c in "/:@[] "):
                raise ConfigError(f"--allow-host {h!r} is not a host name", fix="give a name like devbox.lan")
            names.add(name)
        return cls(frozenset(names), frozenset(normal_origin(o) for o in origins))

    def host_ok(self, host: str) -> bool:
        return host == "localhost" or is_ip(host) or host in self.hosts

    def middleware(self) -> list[Middleware]:
        """The guard, and CORS answers for the allowed origins (a preflight from any other origin never gets far)."""
        stack = [Middleware(Guard, policy=self)]
        if self.origins:
            stack.append(Middleware(CORSMiddleware, allow_origins=sorted(self.origins), allow_methods=["GET", "POST"],
                                    allow_headers=CORS_HEADERS, expose_headers=EXPOSED, max_age=600))
        return stack


def normal_origin(value: str) -> str:
    """`https://VSCode.dev/` → `https://vscode.dev`; `null` stays `null` (sandboxed frames, file pages)."""
    text = value.strip().lower().rstrip("/")
    if text == "null":
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https", "vscode-webview", "vscode-file") or not parts.netloc \
            or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigError(f"--allow-origin {value!r} is not an origin",
                          fix="give scheme://host[:port] with no path, e.g. https://vscode.dev")
    return f"{parts.scheme}://{parts.netloc}"


def host_name(header: str | None) -> str | None:
    """The name in a `Host` header without its port, lower-case (`[::1]:8012` → `::1`); None when malformed."""
    if not header:
        return None
    text = header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1:] if end > 0 else "?"
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return text[1:end]
    name, colon, port = text.partition(":")
    if colon and not port.isdigit():
        return None  # a bare IPv6 address, or garbage
    return name.rstrip(".") if name else None


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Guard:
    """Pure ASGI middleware (it runs before routing and never touches the body): the four checks above."""

    def __init__(self, app: Any, policy: Policy) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        body = json.dumps(error_body(message, status), ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def refusal(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        """(status, one-line message) for a request that must not reach the routes; None when it may."""
        headers: dict[str, str] = {}
        for k, v in scope.get("headers") or ():
            headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
        raw_host = headers.get("host")
        host = host_name(raw_host)
        if host is None or not self.policy.host_ok(host):
            shown = (raw_host or "none")[:80]
            return 403, (f"Host {shown!r} is not a loopback name: a web page that reached this server under its own "
                         "name (DNS rebinding) is refused — use http://127.0.0.1:PORT, or start the server with "
                         f"--allow-host {host or 'NAME'} if that name is yours")
        origin = headers.get("origin")
        if origin is not None:
            try:
                allowed = normal_origin(origin) in self.policy.origins
            except ConfigError:
                allowed = False
            if not allowed:
                return 403, (f"requests from web pages are refused (Origin {origin[:80]!r}): a page must not use the "
                             "model or write to the queue — start the server with --allow-origin ORIGIN to let a "
                             "web-based editor in")
        elif headers.get("sec-fetch-site", "").lower() in _BROWSER_OTHER_SITE:
            return 403, ("a browser request from another site is refused (Sec-Fetch-Site: "
                         f"{headers['sec-fetch-site'][:20]}) — open the server from an editor plugin, not a web page")
        if scope.get("method") == "POST":
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                return 415, (f"the body must be sent as Content-Type: application/json (got {media[:60] or 'none'}) "
                             "— curl: add -H 'Content-Type: application/json'")
        return None
