"""A team queue's URL (`queue_url`): whether it carries a password, and how to show it without one.

Standard library only, so reading a config never needs psycopg. A password may sit in the URL's user part
(`postgresql://me:pw@host/db`) or in its query (`?password=pw`); libpq reads PGPASSFILE (~/.pgpass) and
PGPASSWORD on its own, so the URL never needs one, and Redline prints and logs only `redact(url)`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit


def _query_password(query: str) -> bool:
    return any(key.lower() == "password" for key, _ in parse_qsl(query, keep_blank_values=True))


def has_password(url: str) -> bool:
    """Whether `url` carries a password (in its user part or its query)."""
    try:
        parts = urlsplit(url)
        return bool(parts.password) or _query_password(parts.query)
    except ValueError:  # malformed (a bad port): a user part may hold one, so warn rather than guess it clean
        return "@" in url


def redact(url: str) -> str:
    """`url` as it may be printed: no password, whatever else it holds (user, host, port, database, options)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        if parts.username:
            netloc = f"{quote(parts.username, safe='')}@{netloc}"
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                           if k.lower() != "password"])
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return url.split("://", 1)[0] + "://…"


def secrets_of(url: str) -> list[str]:
    """The password(s) in `url`, so an error text from the driver can be cut of them before anyone sees it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [parts.password, unquote(parts.password)] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() == "password" and v]
    return found
