"""SQL of the proxies domain (constants, parameterised; repos never commit)."""

from __future__ import annotations

from typing import Any

import asyncpg

INSERT_OPERATOR_AUDIT = """
INSERT INTO trading.operator_audit (actor, action, target, outcome, status_code, detail, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
"""


async def insert_operator_audit(conn: asyncpg.Connection, *, actor: str, action: str, target: str | None,
                                outcome: str, status_code: int | None, detail: dict[str, Any],
                                request_id: str | None) -> int:
    """Record one operator command proxied to gordon-risk; returns the audit id."""
    return await conn.fetchval(INSERT_OPERATOR_AUDIT, actor, action, target, outcome, status_code, detail, request_id)
