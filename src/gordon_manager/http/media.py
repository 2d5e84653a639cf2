"""The media types request bodies may have: JSON everywhere, and JSON Merge Patch for PATCH.

Every body this API reads is JSON. A write (POST, PUT, PATCH) that carries a body in anything else —
``curl -d 'x=1'`` sends ``application/x-www-form-urlencoded``, a browser's "simple" request
``text/plain`` — or that says no ``Content-Type`` at all is a 415 naming the types accepted, rather
than whatever a route's validation makes of bytes it cannot read. An empty body passes: the route
decides whether it needs one. Parameters (``; charset=utf-8``) are ignored; JSON is UTF-8.
"""

from __future__ import annotations

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
PATCH_TYPES = (MERGE_PATCH, JSON)
"""What a PATCH body may be (RFC 7396's merge patch, or plain JSON read as one); sent as ``Accept-Patch``."""
WRITES = frozenset({"POST", "PUT", "PATCH"})


def accepted(method: str) -> tuple[str, ...]:
    """The media types a ``method`` request's body may have."""
    return PATCH_TYPES if method == "PATCH" else (JSON,)


def media_type(header: bytes | None) -> str | None:
    """``Content-Type`` without its parameters, lower case; None when absent or empty."""
    if header is None:
        return None
    value = header.split(b";", 1)[0].strip().lower()
    return value.decode("latin-1") or None


def acceptable(method: str, header: bytes | None) -> bool:
    """Whether a body with this ``Content-Type`` may be sent with ``method``."""
    return media_type(header) in accepted(method)
