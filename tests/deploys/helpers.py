"""Rows the way bots and the reconciler write them, for controller tests that need no processes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

T0 = datetime(2024, 3, 1, tzinfo=UTC)


class Leader:
    """A stand-in for the LeaderElector."""

    def __init__(self, is_leader: bool = True) -> None:
        self.is_leader = is_leader


async def live_bot(admin: asyncpg.Connection, *, symbol: str = "BTCUSDT", params: dict | None = None,
                   desired: str = "running", observed: str = "running", labels: dict | None = None,
                   mode: str = "paper", shadow_of: int | None = None) -> int:
    """A bot row as the API would create it, with the status the reconciler would have recorded."""
    bot_id = await admin.fetchval(
        "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, params, execution, mode, image,"
        " desired_state, labels, shadow_of, created_by) VALUES ($1, 'sma_crossover', $2, '1m', $3, '{}', $4,"
        " 'gordon-bot:1', $5, $6, $7, 'test') RETURNING id",
        f"d-{uuid.uuid4().hex[:8]}", symbol, params or {"fast": 3, "slow": 8}, mode, desired, labels or {},
        shadow_of)
    await admin.execute("INSERT INTO trading.bot_status (bot_id, observed_state) VALUES ($1, $2)", bot_id, observed)
    return bot_id


async def set_observed(admin: asyncpg.Connection, bot_id: int, state: str, **extra) -> None:
    sets = ", ".join(f"{k} = ${i + 3}" for i, k in enumerate(extra))
    await admin.execute(f"UPDATE trading.bot_status SET observed_state = $2{', ' + sets if sets else ''}"
                        " WHERE bot_id = $1", bot_id, state, *extra.values())


async def run(admin: asyncpg.Connection, bot_id: int, *, kind: str = "paper", status: str = "running") -> int:
    return await admin.fetchval(
        "INSERT INTO trading.runs (kind, bot_id, status, strategy, symbol, interval, range_start)"
        " VALUES ($1, $2, $3, 'sma_crossover', 'BTCUSDT', '1m', $4) RETURNING id", kind, bot_id, status, T0)


async def bars(admin: asyncpg.Connection, *, bot_id: int, run_id: int, first: int, n: int,
               decisions: dict[int, tuple] | None = None) -> None:
    """Equity points for bars first..first+n-1 and decision rows for those in ``decisions``
    ({bar index: (side, qty, order_type, price)})."""
    decisions = decisions or {}
    points = [(run_id, T0 + timedelta(minutes=i), 10_000.0, 10_000.0, 0.0, 100.0) for i in range(first, first + n)]
    await admin.copy_records_to_table("equity_points", schema_name="trading", records=points,
                                      columns=["run_id", "ts", "equity", "cash", "position_qty", "price"])
    rows = [(bot_id, run_id, T0 + timedelta(minutes=i), side, Decimal(str(qty)), otype,
             None if price is None else Decimal(str(price)), "signal")
            for i, (side, qty, otype, price) in decisions.items() if first <= i < first + n]
    if rows:
        await admin.executemany(
            "INSERT INTO trading.bot_decisions (bot_id, run_id, bar_at, side, qty, order_type, price, reason)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", rows)
