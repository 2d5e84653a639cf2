"""SQL of the portfolio rule: each trading bot's ledger position next to gordon-executor's portfolio row."""

from __future__ import annotations

from typing import Any

import asyncpg

# Per bot with a running paper or live run (its newest one): the ledger's qty and portfolio_state's.
POSITIONS = """
WITH live_runs AS (
    SELECT DISTINCT ON (r.bot_id) r.id AS run_id, r.bot_id, r.symbol, r.kind
    FROM trading.runs r
    JOIN trading.bot_configs c ON c.id = r.bot_id AND c.deleted_at IS NULL
    WHERE r.status = 'running' AND r.kind IN ('paper', 'live') AND r.bot_id IS NOT NULL
    ORDER BY r.bot_id, r.id DESC
)
SELECT lr.run_id, lr.bot_id, lr.symbol, lr.kind, l.qty AS implied_qty, l.updated_at AS implied_at,
       p.qty AS portfolio_qty, p.updated_at AS portfolio_at
FROM live_runs lr
JOIN trading.bot_ledgers l ON l.bot_id = lr.bot_id AND l.symbol = lr.symbol
LEFT JOIN trading.portfolio_state p ON p.bot_id = lr.bot_id AND p.symbol = lr.symbol
ORDER BY lr.bot_id
"""

INSERT_EVENT = """
INSERT INTO trading.bot_events (bot_id, run_id, kind, level, message, data)
VALUES ($1, $2, $3, 'warning', $4, $5)
"""


async def positions(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Implied (ledger) and recorded (portfolio_state) quantity of every trading bot."""
    return await conn.fetch(POSITIONS)


async def insert_drift_event(conn: asyncpg.Connection, *, bot_id: int, run_id: int, kind: str, message: str,
                             data: dict[str, Any]) -> None:
    await conn.execute(INSERT_EVENT, bot_id, run_id, kind, message, data)
