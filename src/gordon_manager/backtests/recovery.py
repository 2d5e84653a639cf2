"""Lease recovery of the backtest work a dead manager left `running` (runs and sweeps): the leading replica
(``AppContext.leads``) fails the rows whose heartbeat is older than ``GORDON_MANAGER_BACKTEST_STALE_AFTER_S``,
checking at most every third of it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

from gordon_manager.observability import metrics

logger = logging.getLogger(__name__)

RESTART_REASON = "its manager stopped heartbeating (restarted or died)"


class StaleRecovery:
    """``await recovery()`` (or ``recovery(now=…)`` in tests): the ids failed by this check."""

    def __init__(self, *, pool: asyncpg.Pool, leads: Callable[[], bool], stale_after_s: float,
                 fail_stale: Callable[..., Awaitable[list[int]]], what: str, metric_kind: str | None = None) -> None:
        self.pool = pool
        self.leads = leads
        self.stale_after_s = stale_after_s
        self._fail_stale = fail_stale  # repo function: (conn, *, error, stale_after_s) -> ids failed
        self._what = what
        self._metric_kind = metric_kind
        self._checked_at = float("-inf")

    async def __call__(self, *, now: float | None = None) -> list[int]:
        now = time.monotonic() if now is None else now
        if now - self._checked_at < self.stale_after_s / 3 or not self.leads():
            return []
        self._checked_at = now
        async with self.pool.acquire() as conn:
            failed = await self._fail_stale(conn, error=RESTART_REASON, stale_after_s=self.stale_after_s)
        if failed:
            if self._metric_kind is not None:
                metrics.ERRORS.labels(component="backtests", kind=self._metric_kind).inc(len(failed))
            logger.warning(f"{self._what} whose manager stopped heartbeating marked failed",
                           extra={"ids": failed[:100], "count": len(failed)})
        return failed
