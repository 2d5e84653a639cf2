"""Rules of parameter sweeps: validate and queue one, read it (ranked trials, heatmap), cancel it, re-run a
trial as a full backtest, and execute it (``execute_sweep``: the manager's ``SweepRunner`` and the CLI).

Execution: the bars are loaded once, a trial pool (``sweep_cluster.open_pool``: the local ``TrialPool``, or
a ``DaskTrialPool`` when a Dask scheduler address is set) ships them once to each worker, the pending
trials go out in chunks; after each finished chunk its outcomes are stored and the sweep row
gets its progress and best-so-far every ``PROGRESS_S`` (also with no chunk finished: it is the sweep's
heartbeat), which also reads back the cancel flag; a cancel kills the workers rather than waiting for
their chunks. A cancelled sweep keeps the trials it finished. The leading replica fails the running
sweeps whose heartbeat is older than ``GORDON_MANAGER_BACKTEST_STALE_AFTER_S`` (their manager died).

Walk-forward (``walkForward``, ``walkforward.py``): after the trials over the whole range, each fold runs every
trial on its train bars (a pool per fold, holding only those bars, on the Dask cluster when set), picks the best feasible one and
runs it on the fold's test bars only; the folds' trial runs count in the progress (``fold_trials_done``, the
heartbeat meanwhile), and a fold's result is stored when it is done.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import asyncpg

from gordon_manager.backtests import service as backtests
from gordon_manager.backtests import sweep, sweep_cluster, sweep_repo, walkforward
from gordon_manager.backtests.job import runner_identity
from gordon_manager.backtests.recovery import RESTART_REASON, StaleRecovery  # noqa: F401  (the reason a stale sweep gets)
from gordon_manager.backtests.schemas import BacktestCreate
from gordon_manager.backtests.sweep_schemas import (
    SweepCancel,
    SweepCreate,
    SweepDetail,
    SweepHeatmap,
    SweepPage,
    SweepRead,
    SweepTrial,
    WalkForwardFold,
    WalkForwardSummary,
    objective_field,
    sweep_read_fields,
)
from gordon_manager.errors import Conflict, NotFound, Unprocessable
from gordon_manager.execution.config import ExecutionConfig
from gordon_manager.http.casing import snakify
from gordon_manager.http.pagination import PageQuery, scope
from gordon_manager.loops import LoopService
from gordon_manager.marketdata import repo as klines

__all__ = ["SweepRunner", "cancel_sweep", "create_sweep", "execute_sweep", "get_sweep", "list_sweeps",
           "plan_folds", "plan_trials", "run_trial", "start"]

logger = logging.getLogger(__name__)

STOP_REASON = "manager stopped"
PROGRESS_S = 0.25
POLL_S = 1.0
MAX_ERROR = 2000


def _unprocessable(message: str, field: str) -> Unprocessable:
    return Unprocessable(message, extra={"errors": [{"field": field, "message": message}]})


def plan_trials(body: SweepCreate) -> tuple[BacktestCreate, list[dict[str, Any]], int, dict[str, Any]]:
    """Validate a sweep request: (its base backtest request, the valid trials, the dropped count, the space)."""
    base = BacktestCreate.model_validate({"strategy": body.strategy, "params": body.params, "symbol": body.symbol,
                                          "interval": body.interval, "from": body.from_, "to": body.to,
                                          "execution": body.execution})
    spec, _, _ = backtests.validate_request(base)
    properties = spec.params_schema().get("properties", {})
    fixed = snakify(body.params)
    search = body.search
    if body.grid is not None:
        space: dict[str, Any] = snakify(body.grid)
    else:
        assert search is not None  # SweepCreate holds a grid or a search, exactly one
        space = {k: v.model_dump(exclude_none=True) for k, v in snakify(search.space).items()}
    for name in space:
        if name not in properties:
            raise _unprocessable(f"{spec.name} has no param {name!r} (it has {', '.join(properties)})",
                                 f"{'grid' if body.grid is not None else 'search.space'}.{name}")
    if body.grid is not None:
        size = 1
        for values in space.values():
            size *= len(values)
        if size > sweep.MAX_TRIALS:
            raise _unprocessable(f"the grid has {size} combinations; at most {sweep.MAX_TRIALS}", "grid")
        trials, dropped = sweep.grid_trials(spec, space, fixed)
    else:
        assert search is not None
        trials, dropped = sweep.random_trials(spec, space, budget=search.trials, seed=search.seed, base=fixed)
    if not trials:
        raise _unprocessable(f"no valid parameter set: the strategy refused all {dropped} tried",
                             "grid" if body.grid is not None else "search")
    return base, trials, dropped, space


async def create_sweep(conn: asyncpg.Connection, *, body: SweepCreate, actor: str,
                       runner: str = "manager") -> tuple[asyncpg.Record, int]:
    """Validate and queue a sweep with its trials; returns (the sweep row, trials dropped)."""
    base, trials, dropped, space = plan_trials(body)
    if not await klines.has_klines(conn, symbol=body.symbol, interval=body.interval, start=body.from_, end=body.to):
        raise NotFound(f"no klines for {body.symbol} {body.interval} in the requested range "
                       f"(import some with `gordon-manager data import-klines`)")
    _, _, config = backtests.validate_request(base)
    walk_forward = None
    if body.walk_forward is not None:
        walk_forward = await plan_folds(conn, body, trials=len(trials))
    from gordon_manager.http.values import plain_decimal_strings

    async with conn.transaction():
        row = await sweep_repo.insert_sweep(
            conn, strategy=base.strategy, symbol=body.symbol, interval=body.interval, range_start=body.from_,
            range_end=body.to, config=plain_decimal_strings(config.model_dump(mode="json")),
            method="grid" if body.grid is not None else "random", space=space,
            seed=body.search.seed if body.search is not None else None, objective=objective_field(body.objective),
            min_trades=body.min_trades, trials=trials, created_by=actor, runner=runner, walk_forward=walk_forward)
    logger.info("sweep queued", extra={"sweep_id": row["id"], "strategy": base.strategy, "trials": len(trials),
                                       "dropped": dropped, "runner": runner})
    return row, dropped


MAX_FOLD_RUNS = 200_000  # trial runs over a walk-forward sweep's folds (trials × folds)


async def plan_folds(conn: asyncpg.Connection, body: SweepCreate, *, trials: int) -> dict[str, Any]:
    """Check that the walk-forward folds fit the range's bars; the settings to store (snake_case, the default
    testFraction filled in). 422 naming the walkForward member to change."""
    wf = body.walk_forward
    assert wf is not None  # called only for a sweep with walkForward
    if trials * wf.folds > MAX_FOLD_RUNS:
        raise _unprocessable(f"{trials} trials × {wf.folds} folds = {trials * wf.folds} trial runs; at most "
                             f"{MAX_FOLD_RUNS}", "walkForward.folds")
    settings = wf.model_dump()
    if wf.train_bars is None and wf.test_fraction is None:
        settings["test_fraction"] = walkforward.DEFAULT_TEST_FRACTION
    n = await klines.count_klines(conn, symbol=body.symbol, interval=body.interval, start=body.from_, end=body.to)
    try:
        layout = walkforward.fold_layout(n, **settings)
    except walkforward.FoldLayoutError as exc:
        raise _unprocessable(str(exc), f"walkForward.{exc.member}") from None
    short = [f for f in layout if f.train_bars < 2 or f.test_bars < 2]
    if short:
        raise _unprocessable(f"the range's {n} bars leave fold {short[0].index} a window under 2 bars",
                             "walkForward.testFraction" if wf.train_bars is None else "walkForward.trainBars")
    return settings


def _trial(row: Any, objective: str) -> SweepTrial:
    value = row["value"]
    if value is not None and objective == "max_drawdown":
        value = -value
    return SweepTrial(n=row["n"], rank=row.get("rank"), params=row["params"],
                      value=value, feasible=row["feasible"], stats=row["stats"], error=row["error"])


async def get_sweep(conn: asyncpg.Connection, *, sweep_id: int, limit: int = 100, x: str | None = None,
                    y: str | None = None) -> SweepDetail:
    """A sweep with its ``limit`` best trials (then the unranked), the best, and a heatmap over x, y (default:
    the first two swept params)."""
    row = await sweep_repo.get_sweep(conn, sweep_id=sweep_id)
    if row is None:
        raise NotFound(f"no sweep {sweep_id}")
    objective = row["objective"]
    trials = [_trial(dict(r), objective) for r in await sweep_repo.trials(conn, sweep_id=sweep_id, limit=limit)]
    swept = list(row["space"])
    x, y = x or (swept[0] if swept else None), y or (swept[1] if len(swept) > 1 else None)
    heat = None
    if x is not None and y is not None:
        for axis, name in (("x", x), ("y", y)):
            if name not in swept:
                raise _unprocessable(f"{name!r} is not a swept param ({', '.join(swept)})", axis)
        cells = [dict(r) for r in await sweep_repo.heatmap_trials(conn, sweep_id=sweep_id)]
        heat = sweep.heatmap(cells, x, y)  # stored values: higher is better (a drawdown is negated)
        if objective == "max_drawdown":
            heat["values"] = [[None if v is None else -v for v in line] for line in heat["values"]]
    best = trials[0] if trials and trials[0].rank == 1 else None
    folds, degradation = [], None
    if row["walk_forward"] is not None:
        shown = [_fold(dict(r), objective) for r in await sweep_repo.folds(conn, sweep_id=sweep_id)]
        folds = [_fold_read(f) for f in shown]
        degradation = WalkForwardSummary.model_validate(
            walkforward.summary(shown, total_folds=row["walk_forward"]["folds"]))
    return SweepDetail(**sweep_read_fields(row), best=best, trials=trials,
                       heatmap=SweepHeatmap.model_validate(heat) if heat else None, folds=folds,
                       degradation=degradation)


def _fold(row: dict[str, Any], objective: str) -> dict[str, Any]:
    """A folds row with its values as shown (a drawdown positive) and the ratio of the two."""
    sign = -1.0 if objective == "max_drawdown" else 1.0
    for key in ("is_value", "oos_value"):
        if row[key] is not None:
            row[key] = sign * row[key]
    return {**row, "ratio": walkforward.ratio(row["is_value"], row["oos_value"])}


def _fold_read(fold: dict[str, Any]) -> WalkForwardFold:
    fields = {k: v for k, v in fold.items() if k not in ("train_first", "test_first", "is_value", "is_stats",
                                                         "oos_value", "oos_stats")}
    return WalkForwardFold(**fields, in_sample_value=fold["is_value"], in_sample_stats=fold["is_stats"],
                           out_of_sample_value=fold["oos_value"], out_of_sample_stats=fold["oos_stats"])


async def list_sweeps(conn: asyncpg.Connection, *, page: PageQuery, status: str | None) -> SweepPage:
    """Sweeps newest first."""
    list_scope = scope("sweeps", status)
    before_id = page.int_key(list_scope, "id")
    rows = await sweep_repo.list_sweeps(conn, limit=page.limit, before_id=before_id, status=status)
    return SweepPage(items=[SweepRead.model_validate(sweep_read_fields(r)) for r in rows],
                     next_cursor=page.next_cursor(list_scope, rows, lambda r: {"id": r["id"]}))


async def cancel_sweep(conn: asyncpg.Connection, *, sweep_id: int) -> SweepCancel:
    """Cancel a queued sweep at once or ask a running one to stop; 404 unknown, 409 already finished."""
    row = await sweep_repo.request_cancel(conn, sweep_id=sweep_id)
    if row is None:
        existing = await sweep_repo.get_sweep(conn, sweep_id=sweep_id)
        if existing is None:
            raise NotFound(f"no sweep {sweep_id}")
        raise Conflict(f"sweep {sweep_id} is already {existing['status']}")
    return SweepCancel(id=row["id"], status=row["status"], cancel_requested=row["cancel_requested"])


async def run_trial(conn: asyncpg.Connection, *, sweep_id: int, n: int, actor: str,
                    runner: str = "manager") -> asyncpg.Record:
    """Queue trial ``n`` of a sweep as a full backtest run (equity, round trips); returns the run row."""
    row = await sweep_repo.get_sweep(conn, sweep_id=sweep_id)
    if row is None:
        raise NotFound(f"no sweep {sweep_id}")
    trial = await sweep_repo.get_trial(conn, sweep_id=sweep_id, n=n)
    if trial is None:
        raise NotFound(f"sweep {sweep_id} has no trial {n} (it has {row['trials_total']})")
    body = BacktestCreate.model_validate({"strategy": row["strategy"], "params": trial["params"],
                                          "symbol": row["symbol"], "interval": row["interval"],
                                          "from": row["range_start"], "to": row["range_end"],
                                          "execution": row["config"]})
    return await backtests.create_backtest(conn, body=body, actor=actor, runner=runner)


# -- execution -------------------------------------------------------------------------------------
Progress = Callable[[int, int], None]


async def execute_sweep(conn: asyncpg.Connection, *, sweep_id: int, owner: str, workers: int,
                        log_level: str = "WARNING", on_progress: Progress | None = None,
                        interrupted: tuple[str, str] = ("cancelled", "interrupted"),
                        dask_address: str | None = None) -> str:
    """Claim and run a queued sweep to its end; returns its final status ('skipped' when not queued). When the
    task is cancelled (Ctrl-C, a stopping manager) the sweep ends with ``interrupted`` (status, error).
    ``workers=0`` runs the trials on the event loop's thread (the CLI's ``--workers 0``, tests);
    ``dask_address`` runs them on that Dask cluster instead (``workers`` is then unused)."""
    row = await sweep_repo.claim_sweep(conn, sweep_id=sweep_id, owner=owner)
    if row is None:
        return "skipped"
    try:
        status = await _run(conn, row, workers=workers, log_level=log_level, on_progress=on_progress,
                            dask_address=dask_address)
        if status == "done" and row["walk_forward"] is not None:
            status = await _run_folds(conn, row, workers=workers, log_level=log_level, on_progress=on_progress,
                                      dask_address=dask_address)
    except asyncio.CancelledError:
        await asyncio.shield(sweep_repo.finish_sweep(conn, sweep_id=sweep_id, status=interrupted[0],
                                                     error=interrupted[1]))
        raise
    except Exception as exc:  # data or pool failure: the sweep ends failed, with the reason
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
        logger.warning("sweep failed", extra={"sweep_id": sweep_id, "error": error})
        await sweep_repo.progress(conn, sweep_id=sweep_id)
        await sweep_repo.finish_sweep(conn, sweep_id=sweep_id, status="failed", error=error)
        return "failed"
    await sweep_repo.finish_sweep(conn, sweep_id=sweep_id, status=status)
    logger.info("sweep ended", extra={"sweep_id": sweep_id, "status": status})
    return status


async def _run(conn: asyncpg.Connection, row: Any, *, workers: int, log_level: str,
               on_progress: Progress | None, dask_address: str | None = None) -> str:
    sweep_id, objective, min_trades = row["id"], row["objective"], row["min_trades"]
    if row["cancel_requested"]:
        return "cancelled"
    bars = await klines.load_bars(conn, symbol=row["symbol"], interval=row["interval"], start=row["range_start"],
                                  end=row["range_end"])
    if len(bars) == 0:
        raise LookupError(f"no klines for {row['symbol']} {row['interval']} in the sweep's range")
    pending = await sweep_repo.pending_trials(conn, sweep_id=sweep_id)
    total, done = row["trials_total"], row["trials_total"] - len(pending)
    config = ExecutionConfig(**row["config"])
    pool = await asyncio.to_thread(sweep_cluster.open_pool, bars, row["strategy"], config,
                                   workers=min(workers, len(pending)) if workers > 0 else 0, log_level=log_level,
                                   dask_address=dask_address)
    ended = False
    inflight: set[asyncio.Future] = set()
    ready: set[asyncio.Future] = set()
    try:
        size = pool.chunk_size(len(pending))
        chunks = [pending[i:i + size] for i in range(0, len(pending), size)]
        window = max(1, pool.workers * 2)  # chunks in flight: workers stay busy, a cancel drops the rest
        finished: list[sweep.TrialOutcome] = []
        last = time.monotonic()
        stop = False
        while (chunks or inflight) and not stop:
            while chunks and len(inflight) < window:
                future: Future = pool.submit(chunks.pop(0))
                inflight.add(asyncio.wrap_future(future))
            # Wakes at least every PROGRESS_S: the progress write is also the heartbeat and the cancel check.
            ready, inflight = await asyncio.wait(inflight, timeout=PROGRESS_S, return_when=asyncio.FIRST_COMPLETED)
            for f in ready:
                finished.extend(f.result())
            if time.monotonic() - last >= PROGRESS_S or not (chunks or inflight):
                done += await _store(conn, sweep_id, finished, objective, min_trades)
                finished = []
                last = time.monotonic()
                stop = await sweep_repo.progress(conn, sweep_id=sweep_id)
                if on_progress is not None:
                    on_progress(done, total)
        if stop and (chunks or inflight):
            for f in inflight:
                f.cancel()
            if finished:
                await _store(conn, sweep_id, finished, objective, min_trades)
                await sweep_repo.progress(conn, sweep_id=sweep_id)
            return "cancelled"
        ended = True
        return "done"
    finally:
        # Done: every chunk finished, the workers just exit. Otherwise (a cancel, a stopping manager, an
        # error) the chunks in flight are not worth waiting for.
        for f in ready | inflight:  # after an error, the other chunks' outcomes (often the same error) are dropped
            if not f.cancel() and not f.cancelled():
                f.exception()
        await asyncio.shield(asyncio.to_thread(pool.close if ended else pool.terminate))


async def _store(conn: asyncpg.Connection, sweep_id: int, outcomes: list[sweep.TrialOutcome], objective: str,
                 min_trades: int) -> int:
    if not outcomes:
        return 0
    values = [sweep.objective_value(o.stats, objective) for o in outcomes]
    await sweep_repo.record_trials(conn, sweep_id=sweep_id, ns=[o.n for o in outcomes],
                                   stats=[o.stats for o in outcomes], values=values,
                                   feasible=[sweep.feasible(o.stats, v, min_trades=min_trades)
                                             for o, v in zip(outcomes, values, strict=True)],
                                   errors=[o.error for o in outcomes])
    return len(outcomes)


async def _run_folds(conn: asyncpg.Connection, row: Any, *, workers: int, log_level: str,
                     on_progress: Progress | None, dask_address: str | None = None) -> str:
    """The walk-forward part of a sweep: per fold, every trial on the train bars (a pool holding them),
    then the best feasible one on the test bars only. Returns 'done' or 'cancelled'."""
    sweep_id, objective, min_trades = row["id"], row["objective"], row["min_trades"]
    bars = await klines.load_bars(conn, symbol=row["symbol"], interval=row["interval"], start=row["range_start"],
                                  end=row["range_end"])
    layout = walkforward.fold_layout(len(bars), **row["walk_forward"])
    stamp = _at
    await sweep_repo.insert_folds(conn, sweep_id=sweep_id, folds=[
        {"fold": f.index, "train_first": f.train_first, "train_bars": f.train_bars, "test_first": f.test_first,
         "test_bars": f.test_bars, "train_from": stamp(bars.ts[f.train_first]), "train_to": stamp(bars.ts[f.test_first]),
         "test_from": stamp(bars.ts[f.test_first]),
         "test_to": stamp(bars.ts[f.test_end]) if f.test_end < len(bars) else row["range_end"]} for f in layout])
    trials = await sweep_repo.all_trials(conn, sweep_id=sweep_id)
    config = ExecutionConfig(**row["config"])
    total = row["trials_total"] * (1 + len(layout))
    runs = 0

    async def tick(done: int) -> bool:
        if on_progress is not None:
            on_progress(row["trials_total"] + done, total)
        return await sweep_repo.fold_progress(conn, sweep_id=sweep_id, done=done)

    for fold in layout:
        outcomes = await _fold_trials(bars.slice(fold.train_first, fold.train_end), row["strategy"], config, trials,
                                      workers=workers, log_level=log_level, dask_address=dask_address,
                                      tick=functools.partial(_offset, tick, runs))
        if outcomes is None:
            return "cancelled"
        runs += len(outcomes)
        best, is_value, feasible = walkforward.best_in_sample(outcomes, objective, min_trades=min_trades)
        oos = None
        if best is not None:
            test = bars.slice(fold.test_first, fold.test_end)
            oos = await asyncio.to_thread(sweep.run_trial, test, row["strategy"], config, best.n, best.params)
        await sweep_repo.finish_fold(
            conn, sweep_id=sweep_id, fold=fold.index, feasible_trials=feasible,
            best_trial=None if best is None else best.n, params=None if best is None else best.params,
            is_value=is_value, is_stats=None if best is None else best.stats,
            oos_value=None if oos is None else sweep.objective_value(oos.stats, objective),
            oos_stats=None if oos is None else oos.stats, error=None if oos is None else oos.error)
        if await tick(runs):
            return "cancelled" if fold.index < len(layout) - 1 else "done"
    return "done"


def _offset(tick: Callable[[int], Any], base: int, done: int) -> Any:
    """A fold's progress callback: its trial runs counted after the ``base`` runs of the folds before it."""
    return tick(base + done)


def _at(ms: Any) -> datetime:
    """Epoch milliseconds (a bar's ts) as an aware UTC datetime."""
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


async def _fold_trials(bars: Any, strategy: str, config: ExecutionConfig, trials: list[tuple[int, dict[str, Any]]],
                       *, workers: int, log_level: str, tick: Callable[[int], Any],
                       dask_address: str | None = None) -> list[sweep.TrialOutcome] | None:
    """Every trial on one fold's train bars, on a pool of their own (the Dask cluster's when an address is
    set); None when the sweep must stop (``tick(done)``, awaited every PROGRESS_S, said so: the workers are
    killed)."""
    pool = await asyncio.to_thread(sweep_cluster.open_pool, bars, strategy, config,
                                   workers=min(workers, len(trials)) if workers > 0 else 0, log_level=log_level,
                                   dask_address=dask_address)
    ended = False
    try:
        size = pool.chunk_size(len(trials))
        chunks = [trials[i:i + size] for i in range(0, len(trials), size)]
        window = max(1, pool.workers * 2)
        inflight: set[asyncio.Future] = set()
        outcomes: list[sweep.TrialOutcome] = []
        last = time.monotonic()
        while chunks or inflight:
            while chunks and len(inflight) < window:
                inflight.add(asyncio.wrap_future(pool.submit(chunks.pop(0))))
            ready, inflight = await asyncio.wait(inflight, timeout=PROGRESS_S, return_when=asyncio.FIRST_COMPLETED)
            for f in ready:
                outcomes.extend(f.result())
            if time.monotonic() - last >= PROGRESS_S and (chunks or inflight):
                last = time.monotonic()
                if await tick(len(outcomes)):
                    return None
        ended = True
        return outcomes
    finally:
        await asyncio.shield(asyncio.to_thread(pool.close if ended else pool.terminate))


class SweepRunner(LoopService):
    """Runs the manager's queued sweeps, one at a time, each on its own trial pool (on the Dask cluster at
    ``dask_address`` when set)."""

    name = "sweep-runner"

    def __init__(self, *, pool: asyncpg.Pool, workers: int | None = None, interval: float = POLL_S,
                 log_level: str = "WARNING", leads: Callable[[], bool] = lambda: False,
                 stale_after_s: float = 30.0, dask_address: str | None = None) -> None:
        super().__init__(interval=interval)
        from gordon_manager.backtests.worker import default_workers

        self.owner = runner_identity("manager")
        self.pool = pool
        self.workers = default_workers() if workers is None else workers
        self.log_level = log_level
        self.dask_address = dask_address
        self.statuses: dict[int, str] = {}  # the last few sweeps' outcomes, for logs and tests
        self._recovery = StaleRecovery(pool=pool, leads=leads, stale_after_s=stale_after_s,
                                       fail_stale=sweep_repo.recover_stale, what="sweeps")

    async def recover_stale(self, *, now: float | None = None) -> list[int]:
        """Fail the running sweeps whose manager stopped heartbeating, while this replica leads; at most every
        third of ``stale_after_s`` (checked between sweeps). Returns the sweeps failed."""
        return await self._recovery(now=now)

    async def run_once(self) -> None:
        """Recover stale sweeps (leading replica), then run the oldest queued sweep (if any) to its end."""
        await self.recover_stale()
        async with self.pool.acquire() as conn:
            ids = await sweep_repo.queued_sweeps(conn, limit=1)
            for sweep_id in ids:
                status = await self.until_stopped(execute_sweep(
                    conn, sweep_id=sweep_id, owner=self.owner, workers=self.workers, log_level=self.log_level,
                    interrupted=("failed", STOP_REASON), dask_address=self.dask_address))
                self.statuses[sweep_id] = status or "failed"
                while len(self.statuses) > 50:
                    del self.statuses[next(iter(self.statuses))]
                self.wake()  # another may be queued


async def start(ctx) -> None:
    """Start the sweep runner (its pools start per sweep; on the Dask cluster when its address is set)."""
    runner = SweepRunner(pool=ctx.pool, log_level=ctx.settings.log_level, leads=ctx.leads,
                         stale_after_s=ctx.settings.backtest_stale_after_s,
                         dask_address=ctx.settings.sweep_dask_address)
    ctx.services.sweeps = runner
    ctx.supervisor.start(runner)
