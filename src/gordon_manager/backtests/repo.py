"""SQL of backtest runs (``trading.runs`` rows of kind 'backtest'). Functions never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

__all__ = [
    "claim_run", "finish_run", "get_run", "heartbeat", "insert_run", "mark_failed", "queued_runs",
    "recover_stale", "request_cancel",
]

INSERT_RUN = """
INSERT INTO trading.runs (kind, status, strategy, params, symbol, interval, range_start, range_end, config,
                          created_by, runner)
VALUES ('backtest', 'queued', $1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id, status, created_at
"""

GET_RUN = """
SELECT id, kind, status, strategy, params, symbol, interval, range_start, range_end, config, progress, stats,
       error, cancel_requested, runner, created_at, started_at, finished_at
  FROM trading.runs WHERE id = $1 AND kind = 'backtest'
"""

# queued -> running happens exactly once, in the worker: two dispatchers (or a cancel) racing for
# the same run see one winner, and the run records whose runner it is.
CLAIM_RUN = """
UPDATE trading.runs
   SET status = 'running', started_at = now(), heartbeat_at = now(), updated_at = now(), claimed_by = $2
 WHERE id = $1 AND kind = 'backtest' AND status = 'queued'
RETURNING id, strategy, params, symbol, interval, range_start, range_end, config, cancel_requested
"""

# The worker's heartbeat: liveness, progress when it moved (never back), and the cancel flag back. A
# run that is no longer 'running' (failed by a stopping manager, or ended) is left alone and must stop
# as if cancelled (no row: stop).
HEARTBEAT = """
UPDATE trading.runs
   SET heartbeat_at = now(), progress = greatest(progress, coalesce($2, progress)), updated_at = now()
 WHERE id = $1 AND status = 'running'
RETURNING cancel_requested AS stop
"""

# finished_at is the wall clock (clock_timestamp), not now(): the run ends inside its write transaction,
# whose now() is when the write began.
FINISH_RUN = """
UPDATE trading.runs
   SET status = $2, progress = CASE WHEN $2 = 'done' THEN 1 ELSE progress END, stats = $3, error = $4,
       finished_at = clock_timestamp(), heartbeat_at = clock_timestamp(), updated_at = clock_timestamp()
 WHERE id = $1 AND status = 'running'
RETURNING id
"""

# Ends runs a runner's workers cannot finish (a crashed worker, a stopping manager): those running
# under this runner's claim, and, when asked, those still queued (a worker that crashed before it
# claimed). A run another replica's worker claimed is never touched.
MARK_FAILED = """
UPDATE trading.runs
   SET status = 'failed', error = $2, finished_at = now(), updated_at = now()
 WHERE id = ANY($1::bigint[]) AND kind = 'backtest'
   AND ((status = 'running' AND claimed_by = $3) OR (status = 'queued' AND $4))
RETURNING id
"""

QUEUED_RUNS = """
SELECT id FROM trading.runs
 WHERE kind = 'backtest' AND status = 'queued' AND runner = 'manager' AND NOT (id = ANY($1::bigint[]))
 ORDER BY id
 LIMIT $2
"""

RECOVER_STALE = """
UPDATE trading.runs
   SET status = 'failed', error = $1, finished_at = now(), updated_at = now()
 WHERE kind = 'backtest' AND status = 'running' AND runner = 'manager'
   AND coalesce(heartbeat_at, started_at, created_at) < now() - $2::double precision * interval '1 second'
RETURNING id
"""

# A queued run is cancelled on the spot; a running one is flagged and its worker stops at its next
# check. Finished runs are left alone (the caller reports the conflict).
REQUEST_CANCEL = """
UPDATE trading.runs
   SET cancel_requested = true, updated_at = now(),
       status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
       finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END
 WHERE id = $1 AND kind = 'backtest' AND status IN ('queued', 'running')
RETURNING id, status, cancel_requested
"""


async def insert_run(conn: asyncpg.Connection, *, strategy: str, params: dict[str, Any], symbol: str, interval: str,
                     range_start: datetime, range_end: datetime, config: dict[str, Any], created_by: str,
                     runner: str) -> asyncpg.Record:
    """A queued backtest run; returns id, status, created_at."""
    return await conn.fetchrow(INSERT_RUN, strategy, params, symbol, interval, range_start, range_end, config,
                               created_by, runner)


async def get_run(conn: asyncpg.Connection, *, run_id: int) -> asyncpg.Record | None:
    """One backtest run, or None."""
    return await conn.fetchrow(GET_RUN, run_id)


async def claim_run(conn: asyncpg.Connection, *, run_id: int, owner: str) -> asyncpg.Record | None:
    """Move a queued run to running under ``owner``'s claim and return what the worker needs; None when it
    is not queued."""
    return await conn.fetchrow(CLAIM_RUN, run_id, owner)


async def heartbeat(conn: asyncpg.Connection, *, run_id: int, progress: float | None,
                    timeout: float = 5.0) -> bool:
    """Record liveness (and progress); True when the worker must stop."""
    stop = await conn.fetchval(HEARTBEAT, run_id, progress, timeout=timeout)
    return stop is None or bool(stop)


async def finish_run(conn: asyncpg.Connection, *, run_id: int, status: str, stats: dict[str, Any] | None = None,
                     error: str | None = None) -> bool:
    """End a running run (done, failed or cancelled); False when it was no longer running."""
    return await conn.fetchval(FINISH_RUN, run_id, status, stats, error) is not None


async def mark_failed(conn: asyncpg.Connection, *, run_ids: list[int], error: str, owner: str,
                      queued: bool = True) -> list[int]:
    """Fail the runs among ``run_ids`` running under ``owner``'s claim (and, with ``queued``, those still
    queued); returns their ids."""
    return [r["id"] for r in await conn.fetch(MARK_FAILED, run_ids, error, owner, queued)]


async def queued_runs(conn: asyncpg.Connection, *, exclude: list[int], limit: int) -> list[int]:
    """Oldest queued runs of the manager's pool, except those already dispatched."""
    return [r["id"] for r in await conn.fetch(QUEUED_RUNS, exclude, limit)]


async def recover_stale(conn: asyncpg.Connection, *, error: str, stale_after_s: float) -> list[int]:
    """Fail the running pool backtests whose heartbeat is older than ``stale_after_s`` (their worker died
    with its manager; a live worker beats every 0.25 s). Queued runs are left for a runner to take."""
    return [r["id"] for r in await conn.fetch(RECOVER_STALE, error, stale_after_s)]


async def request_cancel(conn: asyncpg.Connection, *, run_id: int) -> asyncpg.Record | None:
    """Cancel a queued run or flag a running one; None when the run is not queued or running."""
    return await conn.fetchrow(REQUEST_CANCEL, run_id)
