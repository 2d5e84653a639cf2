"""Small helpers on PostgreSQL URLs (role swap, database swap, host naming); redaction is in health/redact.py."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit, urlunsplit


def with_user(url: str, user: str) -> str:
    """The same server and database, logging in as ``user`` with no password (trust/peer auth)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{quote(user, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def with_database(url: str, database: str) -> str:
    """The same server, another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


def describe_host(url: str) -> str:
    """A human name for the server a URL points at (host:port or the socket dir)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.hostname:
        return f"{parts.hostname}:{parts.port or 5432}"
    if "host" in query:
        return f"socket {query['host'][0]}"
    return "localhost:5432"
