"""GET /portfolio: positions, cash and exposure per bot and in total.

Sources: ``trading.portfolio_state`` (one row per (bot, symbol), written by the executor / bot
runner; ``bot_id`` NULL = account-level) and each bot's newest running paper/shadow/live run with
its newest equity point. Formulas, per bot and for the total:

* ``cash`` = Σ cash of the rows; ``exposure`` = Σ exposure (signed notional, net);
  ``grossExposure`` = Σ |exposure|; ``unrealizedPnl`` = Σ unrealized_pnl (all exact decimals);
* ``positions`` = rows with qty ≠ 0;
* ``equity`` = the live run's newest equity point (total: Σ over bots with one; null if none).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from gordon_manager.bff import repo
from gordon_manager.bff.schemas import BotPortfolio, LiveRunRead, PortfolioRead, PortfolioTotals, PositionRead

ZERO = Decimal(0)
POSITION_FIELDS = tuple(PositionRead.model_fields)


def totals(rows: list[Any], equities: list[float | None]) -> PortfolioTotals:
    """The sums of a set of portfolio rows (see the module docstring)."""
    known = [e for e in equities if e is not None]
    return PortfolioTotals(
        cash=sum((r["cash"] for r in rows), ZERO),
        exposure=sum((r["exposure"] for r in rows), ZERO),
        gross_exposure=sum((abs(r["exposure"]) for r in rows), ZERO),
        unrealized_pnl=sum((r["unrealized_pnl"] for r in rows), ZERO),
        equity=sum(known) if known else None,
        positions=sum(1 for r in rows if r["qty"] != 0),
    )


async def portfolio(conn: asyncpg.Connection) -> PortfolioRead:
    """The current portfolio: every bot with a position or a live run, then the total."""
    rows = await repo.positions(conn)
    runs = {r["bot_id"]: r for r in await repo.live_runs(conn)}
    by_bot: dict[int | None, list[Any]] = {}
    for row in rows:
        by_bot.setdefault(row["bot_id"], []).append(row)
    for bot_id in runs:
        by_bot.setdefault(bot_id, [])
    bots = []
    for bot_id in sorted(by_bot, key=lambda b: (b is not None, b or 0)):
        bot_rows = by_bot[bot_id]
        run = runs.get(bot_id)
        meta = bot_rows[0] if bot_rows else run
        live = None
        if run is not None:
            live = LiveRunRead(id=run["id"], kind=run["kind"], symbol=run["symbol"], started_at=run["started_at"],
                               equity=run["equity"], equity_at=run["equity_at"], position_qty=run["position_qty"])
        bots.append(BotPortfolio(
            bot_id=bot_id, bot_name=meta["bot_name"] if meta else None, mode=meta["mode"] if meta else None,
            positions=[PositionRead.model_validate({k: r[k] for k in POSITION_FIELDS}) for r in bot_rows],
            totals=totals(bot_rows, [live.equity if live else None]), live_run=live))
    return PortfolioRead(as_of=datetime.now(UTC), bots=bots,
                         total=totals(rows, [r["equity"] for r in runs.values()]))
