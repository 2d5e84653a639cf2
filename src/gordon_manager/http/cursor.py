"""Opaque, tamper-evident keyset cursors: base64url(JSON) + HMAC-SHA256 tag.

A modified or foreign cursor fails verification and is a 400 (BadCursor), never a wrong page.
The cursor also binds the list it belongs to (``scope``), so a cursor of one list cannot be
replayed against another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from gordon_manager.errors import BadCursor

_TAG_BYTES = 16


class CursorCodec:
    """Encode and verify cursors with one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("cursor key must be at least 16 bytes")
        self._key = key

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, scope: str, position: dict[str, Any]) -> str:
        """An opaque cursor for ``position`` in the list ``scope``."""
        body = orjson.dumps({"s": scope, "p": position}, option=orjson.OPT_SORT_KEYS)
        return base64.urlsafe_b64encode(self._tag(body) + body).rstrip(b"=").decode()

    def decode(self, scope: str, cursor: str) -> dict[str, Any]:
        """The position inside ``cursor``; BadCursor when it was tampered with or is foreign."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, TypeError) as exc:
            raise BadCursor("The cursor is not valid.") from exc
        tag, body = raw[:_TAG_BYTES], raw[_TAG_BYTES:]
        if len(tag) != _TAG_BYTES or not hmac.compare_digest(tag, self._tag(body)):
            raise BadCursor("The cursor is not valid (modified or issued by another list).")
        data = orjson.loads(body)
        if data.get("s") != scope or not isinstance(data.get("p"), dict):
            raise BadCursor("The cursor belongs to another list.")
        return data["p"]
