"""Shared keyset-pagination query parameters (``limit`` + opaque ``cursor``).

Offset is banned: pages are positioned by the last row's sort key, carried in a signed cursor
(see ``http.cursor``), so inserts while paging never skip or repeat a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from gordon_manager.errors import BadCursor
from gordon_manager.http.cursor import CursorCodec

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class PageQuery:
    """``limit`` and the decoded-on-demand ``cursor`` of one list request."""

    limit: int
    cursor: str | None
    codec: CursorCodec

    def position(self, scope: str) -> dict[str, Any] | None:
        """The cursor's position for list ``scope`` (None on the first page); BadCursor if tampered."""
        return self.codec.decode(scope, self.cursor) if self.cursor else None

    def int_key(self, scope: str, key: str = "id") -> int | None:
        """The integer sort key ``key`` of the cursor's position (None on the first page); BadCursor if
        the (signed, so ours) position has no such integer, e.g. a cursor of another version."""
        position = self.position(scope)
        value = position.get(key) if position else None
        if position is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise BadCursor("The cursor is not valid.")
        return value

    def next_cursor(self, scope: str, rows: list[Any], key) -> str | None:
        """Cursor after the last of ``rows`` when the page is full (``key(row)`` → position dict)."""
        if len(rows) < self.limit:
            return None
        return self.codec.encode(scope, key(rows[-1]))


def page_query(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=2048, description="Opaque cursor from `nextCursor`.")] = None,
) -> PageQuery:
    """FastAPI dependency for list endpoints."""
    return PageQuery(limit=limit, cursor=cursor, codec=request.app.state.ctx.cursors)


Pagination = Annotated[PageQuery, Depends(page_query)]


def scope(name: str, *parts: Any) -> str:
    """The cursor scope of a list: its name and every filter, so a cursor only fits its own list."""
    return "|".join([name, *("" if p is None else str(p) for p in parts)])
