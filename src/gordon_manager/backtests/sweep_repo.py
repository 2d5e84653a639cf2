"""SQL of parameter sweeps (``trading.backtest_sweeps`` and their trials). Functions never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

__all__ = ["all_trials", "claim_sweep", "finish_fold", "finish_sweep", "fold_progress", "folds", "get_sweep",
           "get_trial", "insert_folds", "insert_sweep", "list_sweeps", "progress", "queued_sweeps", "record_trials",
           "recover_stale", "request_cancel", "trials"]

_COLUMNS = """id, status, strategy, symbol, interval, range_start, range_end, config, method, space, seed, objective,
       min_trades, trials_total, trials_done, best_trial, best_value, cancel_requested, error, runner, claimed_by,
       created_by, created_at, started_at, finished_at, walk_forward, fold_trials_done"""

INSERT_SWEEP = f"""
INSERT INTO trading.backtest_sweeps (strategy, symbol, interval, range_start, range_end, config, method, space, seed,
                                     objective, min_trades, trials_total, created_by, runner, walk_forward)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
RETURNING {_COLUMNS}
"""

INSERT_TRIALS = """
INSERT INTO trading.backtest_sweep_trials (sweep_id, n, params)
SELECT $1, n - 1, p FROM unnest($2::jsonb[]) WITH ORDINALITY AS t (p, n)
"""

GET_SWEEP = f"SELECT {_COLUMNS} FROM trading.backtest_sweeps WHERE id = $1"

LIST_SWEEPS = f"""
SELECT {_COLUMNS} FROM trading.backtest_sweeps
 WHERE ($2::bigint IS NULL OR id < $2) AND ($3::text IS NULL OR status = $3)
 ORDER BY id DESC
 LIMIT $1
"""

CLAIM_SWEEP = f"""
UPDATE trading.backtest_sweeps
   SET status = 'running', started_at = now(), heartbeat_at = now(), updated_at = now(), claimed_by = $2
 WHERE id = $1 AND status = 'queued'
RETURNING {_COLUMNS}
"""

QUEUED_SWEEPS = """
SELECT id FROM trading.backtest_sweeps WHERE status = 'queued' AND runner = 'manager' ORDER BY id LIMIT $1
"""

PENDING_TRIALS = "SELECT n, params FROM trading.backtest_sweep_trials WHERE sweep_id = $1 AND stats IS NULL " \
                 "AND error IS NULL ORDER BY n"

RECORD_TRIALS = """
UPDATE trading.backtest_sweep_trials AS t
   SET stats = r.stats, value = r.value, feasible = r.feasible, error = r.error
  FROM unnest($2::int[], $3::jsonb[], $4::float8[], $5::bool[], $6::text[]) AS r (n, stats, value, feasible, error)
 WHERE t.sweep_id = $1 AND t.n = r.n
"""

# Progress: trials done and the best feasible trial so far (one row update: one /ws event).
PROGRESS = """
UPDATE trading.backtest_sweeps AS s
   SET trials_done = (SELECT count(*) FROM trading.backtest_sweep_trials t
                       WHERE t.sweep_id = s.id AND (t.stats IS NOT NULL OR t.error IS NOT NULL)),
       (best_trial, best_value) = (SELECT t.n, t.value FROM trading.backtest_sweep_trials t
                                    WHERE t.sweep_id = s.id AND t.feasible ORDER BY t.value DESC, t.n LIMIT 1),
       heartbeat_at = now(), updated_at = now()
 WHERE s.id = $1
RETURNING cancel_requested OR status <> 'running' AS stop
"""

FINISH_SWEEP = """
UPDATE trading.backtest_sweeps
   SET status = $2, error = $3, finished_at = now(), heartbeat_at = now(), updated_at = now()
 WHERE id = $1 AND status = 'running'
RETURNING id
"""

# A dead manager's sweep (its heartbeat, written with the progress every 0.25 s, stopped).
RECOVER_STALE = """
UPDATE trading.backtest_sweeps
   SET status = 'failed', error = $1, finished_at = now(), updated_at = now()
 WHERE status = 'running' AND runner = 'manager'
   AND coalesce(heartbeat_at, started_at, created_at) < now() - $2::double precision * interval '1 second'
RETURNING id
"""

REQUEST_CANCEL = """
UPDATE trading.backtest_sweeps
   SET cancel_requested = true, updated_at = now(),
       status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
       finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END
 WHERE id = $1 AND status IN ('queued', 'running')
RETURNING id, status, cancel_requested
"""

# Ranked first (best first, ties by n), then the rest by n; rank among the feasible.
TRIALS = """
SELECT n, params, stats, value, feasible, error,
       CASE WHEN feasible THEN row_number() OVER (PARTITION BY feasible ORDER BY value DESC, n) END AS rank
  FROM trading.backtest_sweep_trials
 WHERE sweep_id = $1
 ORDER BY feasible DESC, value DESC NULLS LAST, n
 LIMIT $2
"""

GET_TRIAL = "SELECT n, params, stats, value, feasible, error FROM trading.backtest_sweep_trials " \
            "WHERE sweep_id = $1 AND n = $2"

# -- walk-forward (migration 0025) -----------------------------------------------------------------
ALL_TRIALS = "SELECT n, params FROM trading.backtest_sweep_trials WHERE sweep_id = $1 ORDER BY n"

INSERT_FOLDS = """
INSERT INTO trading.backtest_sweep_folds (sweep_id, fold, train_first, train_bars, test_first, test_bars, train_from,
                                          train_to, test_from, test_to)
SELECT $1, f.* FROM unnest($2::int[], $3::int[], $4::int[], $5::int[], $6::int[], $7::timestamptz[],
                           $8::timestamptz[], $9::timestamptz[], $10::timestamptz[]) AS f
ON CONFLICT (sweep_id, fold) DO NOTHING
"""

FINISH_FOLD = """
UPDATE trading.backtest_sweep_folds
   SET feasible_trials = $3, best_trial = $4, params = $5, is_value = $6, is_stats = $7, oos_value = $8,
       oos_stats = $9, error = $10, done = true
 WHERE sweep_id = $1 AND fold = $2
"""

# The folds' progress: also the sweep's heartbeat and its cancel check while the folds run.
FOLD_PROGRESS = """
UPDATE trading.backtest_sweeps SET fold_trials_done = $2, heartbeat_at = now(), updated_at = now()
 WHERE id = $1
RETURNING cancel_requested OR status <> 'running' AS stop
"""

FOLDS = """
SELECT fold, train_first, train_bars, test_first, test_bars, train_from, train_to, test_from, test_to,
       feasible_trials, best_trial, params, is_value, is_stats, oos_value, oos_stats, error, done
  FROM trading.backtest_sweep_folds WHERE sweep_id = $1 ORDER BY fold
"""

HEATMAP_TRIALS = "SELECT params, value, feasible FROM trading.backtest_sweep_trials WHERE sweep_id = $1"


async def insert_sweep(conn: asyncpg.Connection, *, strategy: str, symbol: str, interval: str, range_start: datetime,
                       range_end: datetime, config: dict[str, Any], method: str, space: dict[str, Any],
                       seed: int | None, objective: str, min_trades: int, trials: list[dict[str, Any]],
                       created_by: str, runner: str, walk_forward: dict[str, Any] | None = None) -> asyncpg.Record:
    """A queued sweep and its pending trials (call inside a transaction)."""
    row = await conn.fetchrow(INSERT_SWEEP, strategy, symbol, interval, range_start, range_end, config, method,
                              space, seed, objective, min_trades, len(trials), created_by, runner, walk_forward)
    await conn.execute(INSERT_TRIALS, row["id"], trials)
    return row


async def get_sweep(conn: asyncpg.Connection, *, sweep_id: int) -> asyncpg.Record | None:
    """One sweep, or None."""
    return await conn.fetchrow(GET_SWEEP, sweep_id)


async def list_sweeps(conn: asyncpg.Connection, *, limit: int, before_id: int | None,
                      status: str | None) -> list[asyncpg.Record]:
    """Sweeps newest first."""
    return await conn.fetch(LIST_SWEEPS, limit, before_id, status)


async def claim_sweep(conn: asyncpg.Connection, *, sweep_id: int, owner: str) -> asyncpg.Record | None:
    """queued → running under ``owner``; None when it is not queued."""
    return await conn.fetchrow(CLAIM_SWEEP, sweep_id, owner)


async def queued_sweeps(conn: asyncpg.Connection, *, limit: int) -> list[int]:
    """Oldest queued sweeps of the manager."""
    return [r["id"] for r in await conn.fetch(QUEUED_SWEEPS, limit)]


async def pending_trials(conn: asyncpg.Connection, *, sweep_id: int) -> list[tuple[int, dict[str, Any]]]:
    """Trials not run yet, by n."""
    return [(r["n"], r["params"]) for r in await conn.fetch(PENDING_TRIALS, sweep_id)]


async def record_trials(conn: asyncpg.Connection, *, sweep_id: int, ns: list[int], stats: list[dict | None],
                        values: list[float | None], feasible: list[bool], errors: list[str | None]) -> None:
    """Store the outcomes of finished trials."""
    await conn.execute(RECORD_TRIALS, sweep_id, ns, stats, values, feasible, errors)


async def progress(conn: asyncpg.Connection, *, sweep_id: int) -> bool:
    """Update trials done and the best so far; True when the sweep must stop (cancel, or ended elsewhere)."""
    stop = await conn.fetchval(PROGRESS, sweep_id)
    return stop is None or bool(stop)


async def finish_sweep(conn: asyncpg.Connection, *, sweep_id: int, status: str, error: str | None = None) -> bool:
    """End a running sweep; False when it was not running."""
    return await conn.fetchval(FINISH_SWEEP, sweep_id, status, error) is not None


async def recover_stale(conn: asyncpg.Connection, *, error: str, stale_after_s: float) -> list[int]:
    """Fail the manager's running sweeps whose heartbeat is older than ``stale_after_s``; returns their ids."""
    return [r["id"] for r in await conn.fetch(RECOVER_STALE, error, stale_after_s)]


async def request_cancel(conn: asyncpg.Connection, *, sweep_id: int) -> asyncpg.Record | None:
    """Cancel a queued sweep or flag a running one; None when it already ended (or does not exist)."""
    return await conn.fetchrow(REQUEST_CANCEL, sweep_id)


async def trials(conn: asyncpg.Connection, *, sweep_id: int, limit: int) -> list[asyncpg.Record]:
    """Ranked trials, best first, then the unranked."""
    return await conn.fetch(TRIALS, sweep_id, limit)


async def get_trial(conn: asyncpg.Connection, *, sweep_id: int, n: int) -> asyncpg.Record | None:
    """One trial, or None."""
    return await conn.fetchrow(GET_TRIAL, sweep_id, n)


async def heatmap_trials(conn: asyncpg.Connection, *, sweep_id: int) -> list[asyncpg.Record]:
    """Every trial's params, value and feasibility."""
    return await conn.fetch(HEATMAP_TRIALS, sweep_id)


async def all_trials(conn: asyncpg.Connection, *, sweep_id: int) -> list[tuple[int, dict[str, Any]]]:
    """Every trial's (n, params), by n."""
    return [(r["n"], r["params"]) for r in await conn.fetch(ALL_TRIALS, sweep_id)]


async def insert_folds(conn: asyncpg.Connection, *, sweep_id: int, folds: list[dict[str, Any]]) -> None:
    """A walk-forward sweep's folds (windows only; existing ones are kept)."""
    names = ("fold", "train_first", "train_bars", "test_first", "test_bars", "train_from", "train_to", "test_from",
             "test_to")
    await conn.execute(INSERT_FOLDS, sweep_id, *([f[name] for f in folds] for name in names))


async def finish_fold(conn: asyncpg.Connection, *, sweep_id: int, fold: int, feasible_trials: int,
                      best_trial: int | None, params: dict[str, Any] | None, is_value: float | None,
                      is_stats: dict[str, Any] | None, oos_value: float | None, oos_stats: dict[str, Any] | None,
                      error: str | None) -> None:
    """Store a fold's in-sample pick and its out-of-sample result (values higher-is-better, like trials')."""
    await conn.execute(FINISH_FOLD, sweep_id, fold, feasible_trials, best_trial, params, is_value, is_stats,
                       oos_value, oos_stats, error)


async def fold_progress(conn: asyncpg.Connection, *, sweep_id: int, done: int) -> bool:
    """Record the trial runs done over the folds (heartbeat); True when the sweep must stop."""
    stop = await conn.fetchval(FOLD_PROGRESS, sweep_id, done)
    return stop is None or bool(stop)


async def folds(conn: asyncpg.Connection, *, sweep_id: int) -> list[asyncpg.Record]:
    """A walk-forward sweep's folds, in time order."""
    return await conn.fetch(FOLDS, sweep_id)
