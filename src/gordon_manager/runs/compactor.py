"""Equity compaction: the background worker packs runs' new equity points into blocks.

Blocks (migration 0014) hold a run's points 96 to a row, columns packed binary. The equity page
read takes whole blocks and reads only the points after them raw. Nothing here is needed for
correctness: a run without blocks is read raw, and a change to points already packed cuts the
blocks back at once, in the writer's own statement. Compaction only keeps the raw tail short.
Each call packs at most ``BATCH_POINTS`` in its own transaction, so a 10M-point backlog goes in
short steps that never hold up writers for long.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg

from gordon_manager.context import AppContext
from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics
from gordon_manager.runs import repo

logger = logging.getLogger(__name__)
BATCH_POINTS = 96 * 512
CANDIDATES_PER_PASS = 100


class EquityCompactor(LoopService):
    """Each pass: for the runs with the most unpacked points, pack them in batches."""

    name = "equity-compactor"

    def __init__(self, pool: asyncpg.Pool, *, interval: float, active: Callable[[], bool] = lambda: True) -> None:
        super().__init__(interval=interval)
        self._pool = pool
        self._active = active
        self.packed = 0

    async def run_once(self) -> None:
        if not self._active():  # singleton work: only the leading replica packs
            return
        async with self._pool.acquire() as conn:
            runs = await repo.compaction_candidates(conn, limit=CANDIDATES_PER_PASS)
        for run_id in runs:
            packed_run = 0
            while not self.stopping:
                async with self._pool.acquire() as conn:
                    packed = await repo.compact(conn, run_id=run_id, max_points=BATCH_POINTS)
                packed_run += packed
                metrics.EQUITY_POINTS_COMPACTED.inc(packed)
                if packed < BATCH_POINTS:
                    break
            if packed_run:
                self.packed += packed_run
                logger.info("equity points packed into blocks", extra={"run_id": run_id, "points": packed_run})


async def start(ctx: AppContext) -> None:
    """Start the compactor (background worker only)."""
    compactor = EquityCompactor(ctx.pool, interval=ctx.settings.equity_compact_interval_s, active=ctx.leads)
    ctx.services.compactor = compactor  # tests hold it still while they compact by hand
    ctx.supervisor.start(compactor)
