"""The backtest job runner: a supervised loop dispatching queued runs to a process pool.

The queue is ``trading.runs`` itself (kind 'backtest', status 'queued', runner 'manager'): POST
/backtests inserts a row and wakes the runner, which also polls every second. Each run executes in
a worker process (``ProcessPoolExecutor`` with the 'spawn' context: a fresh interpreter, no forked
event loop or pool) through ``job.execute_run``; the event loop only awaits its future. The pool is
created on the first run, so a manager that never backtests starts no process.

Failure handling:
* a worker that dies (killed, out of memory) breaks the pool: every run it held is marked failed
  with the reason and the next run gets a fresh pool;
* a stopping manager marks its in-flight runs failed ("manager stopped"); workers see it at their
  next heartbeat and stop, and are terminated after a grace period;
* a manager that died leaves 'queued'/'running' rows: ``start`` marks them failed with reason
  "manager restarted" before the runner starts. This assumes one runner per database (one
  manager replica runs backtests); the CLI's runs (runner 'cli') are never touched.
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
from gordon_manager.backtests.job import RunJob, RunOutcome, execute_run
from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics

__all__ = ["BacktestRunner", "RESTART_REASON", "STOP_REASON", "default_workers", "init_worker", "run_in_process",
           "start"]

logger = logging.getLogger(__name__)

RESTART_REASON = "manager restarted"
STOP_REASON = "manager stopped"
POLL_S = 1.0
STOP_GRACE_S = 3.0


def default_workers() -> int:
    """Worker processes: one per CPU but one (left to the event loop and Postgres), 1..4."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def init_worker(log_level: str) -> None:
    """Pool initializer: the worker logs JSON lines on stderr like the manager."""
    from gordon_manager.observability.logging import configure_logging

    configure_logging(log_level)


def run_in_process(job: RunJob) -> RunOutcome:
    """Pool entry point: run one job on a fresh event loop in the worker process."""
    return asyncio.run(execute_run(job))


class BacktestRunner(LoopService):
    """Dispatches queued pool runs to worker processes and reaps their outcomes."""

    name = "backtest-runner"

    def __init__(self, *, pool: asyncpg.Pool, database_url: str, workers: int | None = None,
                 connect_timeout: float = 5.0, interval: float = POLL_S, log_level: str = "INFO",
                 target: Callable[[RunJob], RunOutcome] = run_in_process) -> None:
        super().__init__(interval=interval)
        self.pool = pool
        self.database_url = database_url
        self.workers = workers or default_workers()
        self.connect_timeout = connect_timeout
        self.target = target
        self.log_level = log_level
        self.inflight: dict[int, asyncio.Future[RunOutcome]] = {}
        self.outcomes: list[RunOutcome] = []  # the last few, for logs and tests
        self._executor: ProcessPoolExecutor | None = None

    def _pool_executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=self.workers,
                                                 mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=init_worker, initargs=(self.log_level,))
        return self._executor

    async def run_once(self) -> None:
        """Reap finished runs, then dispatch queued ones while a worker is free."""
        await self._reap()
        free = self.workers - len(self.inflight)
        if free <= 0:
            return
        async with self.pool.acquire() as conn:
            run_ids = await repo.queued_runs(conn, exclude=list(self.inflight), limit=free)
        for run_id in run_ids:
            job = RunJob(run_id=run_id, database_url=self.database_url, connect_timeout=self.connect_timeout)
            future = asyncio.wrap_future(self._pool_executor().submit(self.target, job))
            future.add_done_callback(lambda _: self.wake())
            self.inflight[run_id] = future
            logger.info("backtest dispatched", extra={"run_id": run_id})

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
                    await repo.mark_failed(conn, run_ids=[run_id], error=error)
        if broken and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def teardown(self) -> None:
        """Fail in-flight runs, give their workers a moment to stop, then end the pool."""
        if self.inflight:
            running = list(self.inflight)
            try:
                async with self.pool.acquire() as conn:
                    await repo.mark_failed(conn, run_ids=running, error=STOP_REASON)
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
    """Fail runs a dead manager left behind, then start the runner (the pool starts on first use)."""
    async with ctx.pool.acquire() as conn:
        recovered = await repo.recover_stale(conn, error=RESTART_REASON)
    if recovered:
        logger.warning("backtests left unfinished by a previous manager marked failed",
                       extra={"run_ids": recovered[:100], "count": len(recovered)})
    runner = BacktestRunner(pool=ctx.pool, database_url=ctx.database_url,
                            connect_timeout=ctx.settings.db_connect_timeout_s, log_level=ctx.settings.log_level)
    ctx.services["backtests"] = runner
    ctx.supervisor.start(runner)
