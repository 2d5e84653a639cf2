"""The run reaper: bot runs whose bot stopped heartbeating become ``abandoned``, so none stays ``running``.

A bot heartbeats every 5 s. A run whose heartbeat is older than ``GORDON_MANAGER_RUN_ABANDON_AFTER_S``
(default 30 s, six missed beats) belonged to a process that was killed or lost with its host: the
reaper marks it ``abandoned`` with a ``run_abandoned`` bot event, counted in
``gordon_manager_runs_abandoned_total``. A bot that restarts does the same to its own leftover runs at
once; a bot that was only frozen finds its run abandoned at its next heartbeat and exits, and the
reconciler restarts it with a new run. The update is idempotent, so replicas could all run it; the
reconciling one does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg

from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics
from gordon_manager.runs import repo

logger = logging.getLogger(__name__)


class RunReaper(LoopService):
    """Every ``interval``: abandon the bot runs whose heartbeat is older than ``stale_after_s``."""

    name = "run-reaper"

    def __init__(self, pool: asyncpg.Pool, *, stale_after_s: float, interval: float,
                 active: Callable[[], bool] = lambda: True) -> None:
        super().__init__(interval=interval)
        self._pool = pool
        self._stale_after_s = stale_after_s
        self._active = active

    async def run_once(self) -> None:
        if not self._active():
            return
        async with self._pool.acquire() as conn:
            abandoned = await repo.abandon_stale_runs(conn, stale_after_s=self._stale_after_s)
        if abandoned:
            metrics.RUNS_ABANDONED.inc(len(abandoned))
            logger.warning("bot runs abandoned", extra={"runs": abandoned})


async def start(ctx) -> None:
    """Start the reaper (background worker; it acts while ``ctx.leads()``)."""
    stale = ctx.settings.run_abandon_after_s
    reaper = RunReaper(ctx.pool, stale_after_s=stale, interval=max(1.0, stale / 3), active=ctx.leads)
    ctx.services.reaper = reaper
    ctx.supervisor.start(reaper)
