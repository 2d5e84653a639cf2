"""One backtest run from claim to result: load bars, run the engine, write the results.

The same coroutine runs in a pool worker process (API) and in the CLI process (``gordon-manager
backtest``). It opens its own connection as the service role and:

1. claims the run (queued -> running; a run someone else claimed or cancelled is skipped);
2. loads its bars through ``v_klines_reader``;
3. runs ``run_backtest`` on a thread, while a heartbeat on the event loop writes the run's
   progress (only when it moved by 5% or more) and reads ``cancel_requested`` back every 0.25 s;
   the engine's ``should_cancel`` reads that flag, so a cancel stops it at its next checkpoint;
4. writes equity points, round trips and stats and marks the run done, in one transaction, so a
   run is never 'done' without its results;

and marks the run cancelled or failed (with the error) otherwise: a run never stays 'running'
because its strategy raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gordon_manager.backtests import repo, writer
from gordon_manager.backtests.engine import BacktestCancelled, run_backtest
from gordon_manager.db.connect import connect
from gordon_manager.execution.config import ExecutionConfig
from gordon_manager.marketdata import repo as klines

__all__ = ["HEARTBEAT_S", "PROGRESS_STEP", "RunJob", "RunOutcome", "execute_run"]

logger = logging.getLogger(__name__)

HEARTBEAT_S = 0.25  # cancel latency bound (plus one engine checkpoint)
PROGRESS_STEP = 0.05  # progress is written when it moved by this much: ~20 row updates per run
ENGINE_SHARE = 0.9  # progress 0..0.9 is the engine; loading and writing take the rest
# The equity rollup trigger aggregates every new point in one statement; with the default 4 MB it
# spills a 1M-point run to disk. Raised for the write transaction only.
WRITE_WORK_MEM = "256MB"
MAX_ERROR = 2000

Phase = Callable[[str, float], None]


@dataclass(frozen=True)
class RunJob:
    """What a worker needs to execute a run (picklable: it crosses into the worker process)."""

    run_id: int
    database_url: str
    connect_timeout: float = 5.0
    owner: str = field(default_factory=lambda: runner_identity("cli"))
    """Whose claim the run is under (``trading.runs.claimed_by``): the dispatching runner's identity."""


def runner_identity(kind: str) -> str:
    """``kind:host:pid:nonce``, unique per runner (a restarted process is another runner)."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class RunOutcome:
    """How a run ended: done, failed, cancelled, or skipped (it was not queued any more)."""

    run_id: int
    status: str
    error: str | None = None
    stats: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)


class _Progress:
    """Engine progress, written from the engine thread and drained by the heartbeat."""

    def __init__(self, on_phase: Phase | None) -> None:
        self.value = 0.0
        self.written = 0.0
        self.on_phase = on_phase

    def engine(self, fraction: float) -> None:
        self.value = ENGINE_SHARE * fraction
        if self.on_phase is not None:
            self.on_phase("engine", fraction)

    def take(self) -> float | None:
        """The progress to write now, or None when it moved less than a step."""
        value = self.value
        if value - self.written >= PROGRESS_STEP:
            self.written = value
            return value
        return None


@contextlib.asynccontextmanager
async def _heartbeat(conn: asyncpg.Connection, run_id: int, progress: _Progress,
                     stop: threading.Event) -> AsyncIterator[None]:
    """Beat every HEARTBEAT_S while the body runs; set ``stop`` when the run must stop."""
    finished = asyncio.Event()

    async def beat() -> None:
        while not finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), HEARTBEAT_S)
            if finished.is_set():
                return
            try:
                if await repo.heartbeat(conn, run_id=run_id, progress=progress.take()):
                    stop.set()
            except (asyncpg.PostgresError, OSError) as exc:  # a missed beat is not worth failing the run
                logger.warning("backtest heartbeat failed", extra={"run_id": run_id, "error": str(exc)})

    task = asyncio.ensure_future(beat())
    try:
        yield
    finally:
        finished.set()
        await task  # the beat finishes its query: never cancel a query mid-flight on this connection


async def execute_run(job: RunJob, *, on_phase: Phase | None = None) -> RunOutcome:
    """Execute one queued run (see the module docstring); never raises for a failing run."""
    conn = await connect(job.database_url, timeout=job.connect_timeout)
    try:
        return await _execute(conn, job.run_id, job.owner, on_phase)
    finally:
        await conn.close()


async def _execute(conn: asyncpg.Connection, run_id: int, owner: str, on_phase: Phase | None) -> RunOutcome:
    run = await repo.claim_run(conn, run_id=run_id, owner=owner)
    if run is None:
        return RunOutcome(run_id, "skipped")
    stop = threading.Event()
    if run["cancel_requested"]:
        stop.set()
    timings: dict[str, float] = {}
    progress = _Progress(on_phase)
    try:
        if on_phase is not None:
            on_phase("load", 0.0)
        started = time.perf_counter()
        bars = await klines.load_bars(conn, symbol=run["symbol"], interval=run["interval"],
                                      start=run["range_start"], end=run["range_end"])
        timings["load_bars_s"] = time.perf_counter() - started
        if len(bars) == 0:
            raise LookupError(f"no klines for {run['symbol']} {run['interval']} between "
                              f"{run['range_start'].isoformat()} and {run['range_end'].isoformat()}")
        config = ExecutionConfig(**run["config"])
        # A cancel that came while the bars loaded stops the run before the engine starts.
        if await repo.heartbeat(conn, run_id=run_id, progress=None):
            stop.set()
        async with _heartbeat(conn, run_id, progress, stop):
            started = time.perf_counter()
            # On a thread: the event loop stays free for the heartbeat (and its cancel check).
            result = await asyncio.to_thread(run_backtest, bars, run["strategy"], run["params"], config,
                                             progress=progress.engine, should_cancel=stop.is_set)
            timings["engine_s"] = time.perf_counter() - started
        timings["engine_bars_per_s"] = len(bars) / max(timings["engine_s"], 1e-9)
        if on_phase is not None:
            on_phase("write", 0.0)
        async with conn.transaction():
            await conn.execute(f"SET LOCAL work_mem = '{WRITE_WORK_MEM}'")
            started = time.perf_counter()
            await writer.write_equity(conn, run_id=run_id, result=result, close=bars.close)
            timings["write_equity_s"] = time.perf_counter() - started
            started = time.perf_counter()
            await writer.write_roundtrips(conn, run_id=run_id, symbol=run["symbol"], trips=result.round_trips)
            timings["write_roundtrips_s"] = time.perf_counter() - started
            stats = writer.stats_json(result, timings=timings)
            if not await repo.finish_run(conn, run_id=run_id, status="done", stats=stats):
                raise _Abandoned(run_id)
        if on_phase is not None:
            on_phase("done", 1.0)
        logger.info("backtest done", extra={"run_id": run_id, "bars": len(bars), **timings})
        return RunOutcome(run_id, "done", stats=stats, timings=timings)
    except _Abandoned:
        logger.warning("backtest abandoned: the run was ended elsewhere", extra={"run_id": run_id})
        return RunOutcome(run_id, "failed", error="the run was ended while it was writing", timings=timings)
    except BacktestCancelled:
        ended = await repo.finish_run(conn, run_id=run_id, status="cancelled")
        logger.info("backtest cancelled", extra={"run_id": run_id, "by_request": ended})
        return RunOutcome(run_id, "cancelled", timings=timings)
    except asyncio.CancelledError:  # Ctrl-C in the CLI: stop the engine thread, record why, re-raise
        stop.set()
        await asyncio.shield(repo.finish_run(conn, run_id=run_id, status="cancelled", error="interrupted"))
        raise
    except Exception as exc:  # any strategy or data failure ends the run as failed, with the reason
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
        logger.warning("backtest failed", extra={"run_id": run_id, "error": error})
        await repo.finish_run(conn, run_id=run_id, status="failed", error=error)
        return RunOutcome(run_id, "failed", error=error, timings=timings)


class _Abandoned(Exception):
    """The run stopped being 'running' (a stopping manager failed it) before its results committed."""
