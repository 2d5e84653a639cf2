"""The backtest job runner: a supervised loop dispatching queued runs to a process pool.

The queue is ``trading.runs`` itself (kind 'backtest', status 'queued', runner 'manager'): POST
/backtests inserts a row and wakes the runner, which also polls every second. Each run executes in
a worker process (``ProcessPoolExecutor`` with the 'spawn' context: a fresh interpreter, no forked
event loop or pool) through ``job.execute_run``; the event loop only awaits its future. The pool is
created on the first run, so a manager that never backtests starts no process.

Failure handling:
* a worker that dies (killed, out of memory) breaks the pool: every run it held is marked failed
  with the reason and the next run gets a fresh pool;
* a stopping manager marks the runs its own workers run failed ("manager stopped"; each run
  records whose runner claimed it, ``claimed_by``); workers see it at their next heartbeat and stop,
  and are terminated after a grace period. Runs it dispatched that no worker claimed yet stay queued
  for the next runner;
* a manager that died leaves 'running' rows whose heartbeat stops: the leading replica
  (``AppContext.leads``) fails those whose heartbeat is older than
  ``GORDON_MANAGER_BACKTEST_STALE_AFTER_S`` ("manager restarted"), checked every third of it —
  never "every queued or running run", so another replica starting never fails this one's runs.
  Several replicas may run backtests: a run is claimed once (queued → running), by one worker.
  The CLI's runs (runner 'cli') are never touched.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import asyncpg

from gordon_manager.backtests import repo
from gordon_manager.backtests.job import RunJob, RunOutcome, execute_run, runner_identity
from gordon_manager.backtests.recovery import RESTART_REASON, StaleRecovery
from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics

__all__ = ["BacktestRunner", "RESTART_REASON", "STOP_REASON", "default_workers", "init_worker", "run_in_process",
           "start"]

logger = logging.getLogger(__name__)

STOP_REASON = "manager stopped"
POLL_S = 1.0
STOP_GRACE_S = 3.0


def default_workers() -> int:
    """Worker processes: one per CPU but one (left to the event loop and Postgres), 1..4."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def init_worker(log_level: str) -> None:
    """Pool initializer: the worker logs like the manager, and ignores Ctrl-C (the terminal sends SIGINT to
    the whole process group; the manager stops its workers itself, without a traceback from each)."""
    import signal

    from gordon_manager.observability.logging import configure_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(log_level)


def warm_up() -> int:
    """Pool warm-up: the worker process has started and imported what a run needs (this module imports
    the job, which imports the engine, the strategies and numpy). Returns the worker's pid."""
    return os.getpid()


def run_in_process(job: RunJob) -> RunOutcome:
    """Pool entry point: run one job on a fresh event loop in the worker process."""
    return asyncio.run(execute_run(job))


class BacktestRunner(LoopService):
    """Dispatches queued pool runs to worker processes and reaps their outcomes."""

    name = "backtest-runner"

    def __init__(self, *, pool: asyncpg.Pool, database_url: str, workers: int | None = None,
                 connect_timeout: float = 5.0, interval: float = POLL_S, log_level: str = "INFO",
                 target: Callable[[RunJob], RunOutcome] = run_in_process,
                 leads: Callable[[], bool] = lambda: False, stale_after_s: float = 30.0,
                 prewarm: bool = False) -> None:
        super().__init__(interval=interval)
        self.owner = runner_identity("manager")
        self._recovery = StaleRecovery(pool=pool, leads=leads, stale_after_s=stale_after_s,
                                       fail_stale=repo.recover_stale, what="backtests", metric_kind="stale_run")
        self.pool = pool
        self.database_url = database_url
        self.workers = workers or default_workers()
        self.connect_timeout = connect_timeout
        self.target = target
        self.log_level = log_level
        self.inflight: dict[int, asyncio.Future[RunOutcome]] = {}
        self.outcomes: list[RunOutcome] = []  # the last few, for logs and tests
        self._executor: ProcessPoolExecutor | None = None
        self.prewarm = prewarm
        self.warmed: asyncio.Future[int] | None = None  # the warm-up's outcome: the worker's pid

    async def setup(self) -> None:
        """With ``prewarm``: start a worker process now (spawned, modules imported), not at the first run."""
        if self.prewarm:
            self.warmed = asyncio.wrap_future(self._pool_executor().submit(warm_up))
            self.warmed.add_done_callback(self._warm_done)

    def _warm_done(self, warmed: asyncio.Future[int]) -> None:
        if warmed.cancelled() or warmed.exception() is None:
            return
        exc = warmed.exception()
        logger.warning("backtest worker warm-up failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        self._drop_executor()  # a broken pool: the next run gets a fresh one

    def _drop_executor(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _pool_executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=self.workers,
                                                 mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=init_worker, initargs=(self.log_level,))
        return self._executor

    async def run_once(self) -> None:
        """Recover stale runs (leading replica), reap finished runs, then dispatch queued ones while a
        worker is free."""
        await self.recover_stale()
        await self._reap()
        free = self.workers - len(self.inflight)
        if free <= 0:
            return
        async with self.pool.acquire() as conn:
            run_ids = await repo.queued_runs(conn, exclude=list(self.inflight), limit=free)
        for run_id in run_ids:
            job = RunJob(run_id=run_id, database_url=self.database_url, connect_timeout=self.connect_timeout,
                         owner=self.owner)
            try:
                future = asyncio.wrap_future(self._pool_executor().submit(self.target, job))
            except BrokenProcessPool as exc:  # a worker died while idle (killed, out of memory): the run
                # stays queued and the next iteration dispatches it to a fresh pool
                metrics.ERRORS.labels(component="backtests", kind="BrokenProcessPool").inc()
                logger.warning("backtest pool broken while idle", extra={"error": str(exc)})
                self._drop_executor()
                self.wake()
                return
            future.add_done_callback(lambda _: self.wake())
            self.inflight[run_id] = future
            logger.info("backtest dispatched", extra={"run_id": run_id})

    async def recover_stale(self, *, now: float | None = None) -> list[int]:
        """Fail the running runs whose heartbeat stopped (their manager died), while this replica leads;
        at most every third of ``stale_after_s``. Returns the runs failed."""
        return await self._recovery(now=now)

    async def _reap(self) -> None:
        failed: dict[int, str] = {}
        broken = False
        for run_id, future in list(self.inflight.items()):
            if not future.done():
                continue
            del self.inflight[run_id]
            exc = future.exception()
            if exc is None:
                outcome = future.result()
                self.outcomes = [*self.outcomes[-49:], outcome]
                if outcome.status == "failed":
                    metrics.ERRORS.labels(component="backtests", kind="run_failed").inc()
                continue
            broken = broken or isinstance(exc, BrokenProcessPool)
            metrics.ERRORS.labels(component="backtests", kind=type(exc).__name__).inc()
            failed[run_id] = f"worker process failed: {type(exc).__name__}: {exc}"[:2000]
            logger.error("backtest worker failed", extra={"run_id": run_id, "error": failed[run_id]})
        if failed:
            async with self.pool.acquire() as conn:
                for run_id, error in failed.items():
                    await repo.mark_failed(conn, run_ids=[run_id], error=error, owner=self.owner)
        if broken:
            self._drop_executor()

    async def teardown(self) -> None:
        """Fail in-flight runs, give their workers a moment to stop, then end the pool."""
        if self.inflight:
            running = list(self.inflight)
            try:
                async with self.pool.acquire() as conn:
                    await repo.mark_failed(conn, run_ids=running, error=STOP_REASON, owner=self.owner, queued=False)
            except (asyncpg.PostgresError, OSError) as exc:
                logger.warning("could not mark in-flight backtests failed", extra={"error": str(exc)})
            await asyncio.wait(list(self.inflight.values()), timeout=STOP_GRACE_S)
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if any(not f.done() for f in self.inflight.values()):
            # concurrent.futures has no public "stop now"; a worker still busy past the grace period
            # must not hold the manager's shutdown.
            for process in list(getattr(executor, "_processes", {}).values()):
                process.terminate()
        await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
        self.inflight.clear()


async def start(ctx) -> None:
    """Start the runner (its worker process starts now with ``backtest_prewarm``, else on first use); it
    recovers stale runs while ``ctx.leads()``."""
    runner = BacktestRunner(pool=ctx.pool, database_url=ctx.database_url,
                            connect_timeout=ctx.settings.db_connect_timeout_s, log_level=ctx.settings.log_level,
                            leads=ctx.leads, stale_after_s=ctx.settings.backtest_stale_after_s,
                            prewarm=ctx.settings.backtest_prewarm)
    ctx.services.backtests = runner
    ctx.supervisor.start(runner)
