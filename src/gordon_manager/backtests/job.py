"""One backtest run from claim to result: load bars, run the engine, write the results.

The same coroutine runs in a pool worker process (API) and in the CLI process (``gordon-manager
backtest``). It opens its own connection as the service role and:

1. claims the run (queued -> running, ``started_at``; a run someone else claimed or cancelled is
   skipped);
2. loads its bars through ``v_klines_reader``;
3. runs ``run_backtest`` on a thread;
4. writes equity points (by chunks), round trips and stats and marks the run done
   (``finished_at`` = the wall clock then, not the write transaction's start), in one transaction,
   so a run is never 'done' without its results. A long run (``LONG_RUN_BARS``) writes its points
   over ``WRITE_CONNECTIONS`` more connections instead, each slice committing on its own
   (``writer.PointWriters``), while the run's transaction writes the rollups and round trips; it
   marks the run done only after every slice committed. A backtest ending failed or cancelled
   loses what committed (migration 0029's trigger), so the outcome is the same;

and marks the run cancelled or failed (with the error) otherwise: a run never stays 'running'
because its strategy raised. From the claim to the end, a heartbeat on the event loop, on a
connection of its own (the run's connection is busy loading and writing), records liveness every
0.25 s, writes the run's progress when it moved by 5% or more and reads ``cancel_requested`` back;
the engine's ``should_cancel`` reads that flag, so a cancel stops it at its next checkpoint.

Progress covers every phase and never goes back: loading is ``PHASES["load"]`` of it, the engine
``PHASES["engine"]``, the write ``PHASES["write"]`` (advancing with each chunk of equity points);
``done`` sets 1. The shares are rough: they were set from a 1M-bar run's phases when the write took
most of it, as it still does (2026-12-04: load ~0.4 s, engine ~0.2 s, write ~1.5 s); whatever they
are, the value written (and shown by the CLI) only grows.
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
import numpy as np

from gordon_manager.backtests import repo, writer
from gordon_manager.backtests.engine import BacktestCancelled, BacktestResult, run_backtest
from gordon_manager.db.connect import connect
from gordon_manager.execution.config import ExecutionConfig
from gordon_manager.marketdata import repo as klines
from gordon_manager.marketdata.synth import interval_ms

__all__ = ["HEARTBEAT_S", "PHASES", "PROGRESS_STEP", "RunJob", "RunOutcome", "execute_run"]

logger = logging.getLogger(__name__)

HEARTBEAT_S = 0.25  # cancel latency bound (plus one engine checkpoint)
PROGRESS_STEP = 0.05  # progress is written when it moved by this much: ~20 row updates per run
PHASES = {"load": (0.0, 0.15), "engine": (0.15, 0.40), "write": (0.40, 1.0)}
"""The share of the run's progress each phase covers, as (from, to)."""
ROUNDTRIPS_AT = 0.95  # of the write phase: the equity points before, round trips and stats after
# The points' statement triggers read each statement's new points as a transition table (100k a chunk); with
# the default 4 MB it spills to disk. Raised for the write transaction only.
WRITE_WORK_MEM = "256MB"
LONG_RUN_BARS = 200_000
"""Runs at least this long (in bars, by their range) open ``WRITE_CONNECTIONS`` more connections: they load
their bars over all of them in one snapshot and write their equity points over the extra ones while the
run's own connection writes the rollups and round trips (migration 0029). Below it, the extra
connections' set-up costs about what they save."""
WRITE_CONNECTIONS = 2
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
    """The run's progress over every phase (0..1, never decreasing): set from the engine thread and the
    event loop, drained by the heartbeat. ``on_phase(phase, progress)`` sees every value set."""

    def __init__(self, on_phase: Phase | None) -> None:
        self.value = 0.0
        self.written = 0.0
        self.on_phase = on_phase

    def at(self, phase: str, fraction: float) -> None:
        """``fraction`` (0..1) of ``phase`` done."""
        low, high = PHASES[phase]
        self.value = max(self.value, low + (high - low) * min(1.0, max(0.0, fraction)))
        if self.on_phase is not None:
            self.on_phase(phase, self.value)

    def engine(self, fraction: float) -> None:
        self.at("engine", fraction)

    def take(self) -> float | None:
        """The progress to write now, or None when it moved less than a step."""
        value = self.value
        if value - self.written >= PROGRESS_STEP:
            self.written = value
            return value
        return None


class _Heartbeat:
    """Beats every HEARTBEAT_S on its own connection while the run lives; sets ``stop`` when the run must stop.

    ``now()`` beats at once (between phases); ``close()`` ends the beats, the last one finished, so no
    progress is written after the run's end. A failed beat is logged, never fatal."""

    def __init__(self, conn: asyncpg.Connection, run_id: int, progress: _Progress, stop: threading.Event) -> None:
        self.conn, self.run_id, self.progress, self.stop = conn, run_id, progress, stop
        self._lock = asyncio.Lock()  # one query at a time on the connection
        self._finished = asyncio.Event()
        self._task: asyncio.Future[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._beat())

    async def now(self) -> None:
        async with self._lock:
            if self._finished.is_set():
                return
            try:
                if await repo.heartbeat(self.conn, run_id=self.run_id, progress=self.progress.take()):
                    self.stop.set()
            except (asyncpg.PostgresError, OSError) as exc:  # a missed beat is not worth failing the run
                logger.warning("backtest heartbeat failed", extra={"run_id": self.run_id, "error": str(exc)})

    async def _beat(self) -> None:
        while not self._finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), HEARTBEAT_S)
            await self.now()

    async def close(self) -> None:
        async with self._lock:  # waits for a beat in flight: never cancel a query mid-flight
            self._finished.set()
        if self._task is not None:
            await self._task


@contextlib.asynccontextmanager
async def _heartbeat(database_url: str, timeout: float, run_id: int, progress: _Progress,
                     stop: threading.Event) -> AsyncIterator[_Heartbeat]:
    """A running heartbeat for the body; closed (and its connection) when it ends."""
    conn = await connect(database_url, timeout=timeout)
    beat = _Heartbeat(conn, run_id, progress, stop)
    beat.start()
    try:
        yield beat
    finally:
        try:
            await beat.close()
        finally:
            await conn.close()


def _expected_bars(run: asyncpg.Record) -> float:
    """The run's length in bars, from its range and interval (0 for an interval without a fixed length)."""
    try:
        return (run["range_end"] - run["range_start"]).total_seconds() * 1000 / interval_ms(run["interval"])
    except ValueError:  # 1w, 1M
        return 0


@contextlib.asynccontextmanager
async def _extra_connections(job: RunJob, run: asyncpg.Record) -> AsyncIterator[list[asyncpg.Connection]]:
    """``WRITE_CONNECTIONS`` more connections for a long run (``LONG_RUN_BARS`` bars or more, by its
    range), none for a short one (their set-up would cost about what they save); every one that
    opened is closed at the end, also when another failed to open or the run was cancelled meanwhile."""
    if _expected_bars(run) < LONG_RUN_BARS:
        yield []
        return
    opening = [asyncio.ensure_future(connect(job.database_url, timeout=job.connect_timeout))
               for _ in range(WRITE_CONNECTIONS)]
    try:
        yield list(await asyncio.gather(*opening))
    finally:
        for task in opening:
            task.cancel()
        opened = await asyncio.gather(*opening, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in opened if isinstance(c, asyncpg.Connection)),
                             return_exceptions=True)


async def _write_results(conn: asyncpg.Connection, extra: list[asyncpg.Connection], run: asyncpg.Record,
                         result: BacktestResult, close: np.ndarray, progress: _Progress,
                         timings: dict[str, float]) -> None:
    """Equity points, their rollups and the round trips, in the caller's transaction; with extra
    connections, the points over them (``writer.PointWriters``) while this one writes the rest."""
    run_id, points = run["id"], len(result.ts)

    def on_rows(rows: int) -> None:
        progress.at("write", ROUNDTRIPS_AT * rows / points)

    started = time.perf_counter()
    if not extra or not writer.rollups_by_writer(result.ts, result.equity):
        await writer.write_equity(conn, run_id=run_id, result=result, close=close, on_rows=on_rows)
        timings["write_equity_s"] = time.perf_counter() - started
        started = time.perf_counter()
        await writer.write_roundtrips(conn, run_id=run_id, symbol=run["symbol"], trips=result.round_trips)
        timings["write_roundtrips_s"] = time.perf_counter() - started
        return
    writers = writer.PointWriters(extra, run_id=run_id, result=result, close=close, on_rows=on_rows,
                                  work_mem=WRITE_WORK_MEM)
    # While the writers run, this transaction must not write equity points: it would hold the run's
    # lock of their statement trigger (migration 0014) until it commits, and it waits for them first.
    try:
        await writer.write_rollups(conn, run_id=run_id, result=result)
        trips_started = time.perf_counter()
        await writer.write_roundtrips(conn, run_id=run_id, symbol=run["symbol"], trips=result.round_trips)
        timings["write_roundtrips_s"] = time.perf_counter() - trips_started
        if not await writers.wait():
            raise _Abandoned(run_id)
    finally:
        await writers.close()
    # The round trips went in while the points did: the equity's time is the rest of the write.
    timings["write_equity_s"] = time.perf_counter() - started - timings["write_roundtrips_s"]


def _run_with_events(*args: Any, **kwargs: Any) -> BacktestResult:
    """``run_backtest`` with its events made (on the same thread: the writer reads them, and making
    them would otherwise hold the event loop while the points are written)."""
    result = run_backtest(*args, **kwargs)
    result.round_trips  # noqa: B018 -- reading one makes all four
    return result


async def execute_run(job: RunJob, *, on_phase: Phase | None = None) -> RunOutcome:
    """Execute one queued run (see the module docstring); never raises for a failing run.

    ``on_phase(phase, progress)``: the phase (load, engine, write, done) and the run's progress over all
    phases (0..1, never decreasing); engine calls come from the engine thread."""
    conn = await connect(job.database_url, timeout=job.connect_timeout)
    try:
        return await _execute(conn, job, on_phase)
    finally:
        await conn.close()


async def _execute(conn: asyncpg.Connection, job: RunJob, on_phase: Phase | None) -> RunOutcome:
    run_id = job.run_id
    run = await repo.claim_run(conn, run_id=run_id, owner=job.owner)
    if run is None:
        return RunOutcome(run_id, "skipped")
    claimed = time.perf_counter()
    stop = threading.Event()
    if run["cancel_requested"]:
        stop.set()
    timings: dict[str, float] = {}
    progress = _Progress(on_phase)
    try:
        progress.at("load", 0.0)
        async with (_heartbeat(job.database_url, job.connect_timeout, run_id, progress, stop) as beat,
                    _extra_connections(job, run) as extra):
            started = time.perf_counter()
            # over the extra connections too, when there are any, in one snapshot
            bars = await klines.load_bars_split([conn, *extra], symbol=run["symbol"], interval=run["interval"],
                                                start=run["range_start"], end=run["range_end"])
            timings["load_bars_s"] = time.perf_counter() - started
            if len(bars) == 0:
                raise LookupError(f"no klines for {run['symbol']} {run['interval']} between "
                                  f"{run['range_start'].isoformat()} and {run['range_end'].isoformat()}")
            config = ExecutionConfig(**run["config"])
            progress.at("load", 1.0)
            await beat.now()  # a cancel that came while the bars loaded stops the run before the engine starts
            started = time.perf_counter()
            # On a thread: the event loop stays free for the heartbeat (and its cancel check).
            result = await asyncio.to_thread(_run_with_events, bars, run["strategy"], run["params"], config,
                                             progress=progress.engine, should_cancel=stop.is_set)
            timings["engine_s"] = time.perf_counter() - started
            timings["engine_bars_per_s"] = len(bars) / max(timings["engine_s"], 1e-9)
            progress.at("write", 0.0)
            async with conn.transaction():
                await conn.execute(f"SET LOCAL work_mem = '{WRITE_WORK_MEM}'")
                await _write_results(conn, extra, run, result, bars.close, progress, timings)
                progress.at("write", 1.0)
                await beat.close()  # no beat after this: the run's end sets its last progress
                timings["total_s"] = time.perf_counter() - claimed
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
