"""Portfolio drift: what the bots' ledgers hold versus what ``trading.portfolio_state`` holds.

The rule, per bot with a running ``paper`` or ``live`` run (its newest one):

* implied quantity = ``qty`` of the bot's ledger (``trading.bot_ledgers``), which the bot commits
  with every fill it books: the executor's fills for a live bot, simulated ones for a paper bot. A
  bot without a ledger row (it has not started trading yet) implies nothing and is skipped;
* actual quantity = ``portfolio_state.qty`` for (bot_id, the run's symbol). A missing row counts as
  0 for a ``live`` bot (the executor must track every live position) and is skipped for a ``paper``
  bot (nothing is obliged to mirror paper positions);
* they drift when ``|implied - actual| > ABS_TOLERANCE + REL_TOLERANCE * max(|implied|, |actual|)``
  (float equity points against numeric portfolio rows);
* a drift is reported only once it has been seen with the same values on CONFIRMATIONS consecutive
  passes (the bot writes its equity point and the executor its portfolio row moments apart), then
  once per distinct (run, implied, actual): ``portfolio_drift_total`` +1 and a ``portfolio_drift``
  warning in ``trading.bot_events`` carrying both values. It reports again if the values change,
  or if it resolves and comes back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics
from gordon_manager.portfolio import repo

logger = logging.getLogger(__name__)

INTERVAL_S = 30.0
ABS_TOLERANCE = 1e-8
REL_TOLERANCE = 1e-6
CONFIRMATIONS = 2
EVENT_KIND = "portfolio_drift"

def tolerance(implied: float, actual: float) -> float:
    """The largest difference that is not drift."""
    return ABS_TOLERANCE + REL_TOLERANCE * max(abs(implied), abs(actual))


def compare(row: Any) -> tuple[float, float] | None:
    """(implied, actual) when ``row`` drifts, None when it agrees or is not comparable."""
    if row["implied_qty"] is None:
        return None
    implied = float(row["implied_qty"])
    if row["portfolio_qty"] is None:
        if row["kind"] != "live":
            return None
        actual = 0.0
    else:
        actual = float(row["portfolio_qty"])
    return (implied, actual) if abs(implied - actual) > tolerance(implied, actual) else None


class DriftChecker(LoopService):
    """Compares implied and recorded positions every interval; reports confirmed drift."""

    name = "portfolio_drift"

    def __init__(self, *, pool: asyncpg.Pool, interval: float = INTERVAL_S,
                 active: Callable[[], bool] = lambda: True) -> None:
        super().__init__(interval=interval)
        self.pool = pool
        # With several replicas only one (the reconciler leader) reports, so drift is counted once.
        self.active = active
        self._seen: dict[tuple[int, str], tuple[tuple[Any, ...], int]] = {}
        self._reported: dict[tuple[int, str], tuple[Any, ...]] = {}

    async def run_once(self) -> None:
        """One comparison pass."""
        if not self.active():
            return
        async with self.pool.acquire() as conn:
            rows = await repo.positions(conn)
            drifting: set[tuple[int, str]] = set()
            for row in rows:
                values = compare(row)
                if values is None:
                    continue
                key = (row["bot_id"], row["symbol"])
                drifting.add(key)
                signature = (row["run_id"], *values)
                previous, count = self._seen.get(key, (None, 0))
                count = count + 1 if previous == signature else 1
                self._seen[key] = (signature, count)
                if count >= CONFIRMATIONS and self._reported.get(key) != signature:
                    await self._report(conn, row, *values)
                    self._reported[key] = signature
        for key in set(self._seen) - drifting:
            self._seen.pop(key, None)
            self._reported.pop(key, None)

    async def _report(self, conn: asyncpg.Connection, row: Any, implied: float, actual: float) -> None:
        data = {"symbol": row["symbol"], "mode": row["kind"], "run_id": row["run_id"], "implied_qty": implied,
                "portfolio_qty": actual, "difference": implied - actual, "tolerance": tolerance(implied, actual),
                "implied_at": row["implied_at"].isoformat(),
                "portfolio_at": row["portfolio_at"].isoformat() if row["portfolio_at"] else None}
        message = (f"portfolio drift on {row['symbol']}: the bot's ledger holds {implied:g}, "
                   f"portfolio_state holds {actual:g}")
        await repo.insert_drift_event(conn, bot_id=row["bot_id"], run_id=row["run_id"], kind=EVENT_KIND,
                                     message=message, data=data)
        metrics.PORTFOLIO_DRIFT.inc()
        logger.warning("portfolio drift", extra={"bot_id": row["bot_id"], **data})
