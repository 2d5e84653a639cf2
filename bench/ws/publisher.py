"""Publisher worker: inserts trading.bot_events rows at a steady rate, so every event goes through the
outbox trigger (INSERT → trading.events → pg_notify, one NOTIFY per row) like production writes.

Up to TICK_RATE events/s, every row is its own transaction, evenly spaced. Above that (a single
connection cannot commit — and fsync — much faster), the publisher writes one multi-row INSERT per
10 ms tick; still one outbox row and one NOTIFY per event. Each row carries ``{"t": time.time()
taken just before its INSERT, "p": phase}``, so a measured latency is commit→client *plus* the
INSERT and its commit (fsync included): an upper bound, never flattering.
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection

INSERT = "INSERT INTO trading.bot_events (bot_id, kind, data) VALUES ($1, 'bench', $2::jsonb)"
INSERT_MANY = ("INSERT INTO trading.bot_events (bot_id, kind, data) "
               "SELECT $1, 'bench', $2::jsonb FROM generate_series(1, $3)")
PREFILL = ("INSERT INTO trading.runs (kind, strategy, symbol, interval, config) "
           "SELECT 'backtest', 'bench-prefill', 'BTCUSDT', '1m', jsonb_build_object('blob', repeat('x', $1)) "
           "FROM generate_series(1, $2)")
TICK_RATE = 100.0
TICK_S = 0.010


async def _publish(conn, bot_id: int, phase: int, rate: float, duration: float) -> tuple[int, float, float]:
    if rate <= TICK_RATE:
        step, per_tick = 1.0 / rate, 1
    else:
        step, per_tick = TICK_S, rate * TICK_S
    ticks = int(duration / step)
    started = time.perf_counter() + 0.05
    worst_lag, published, owed = 0.0, 0, 0.0
    for i in range(ticks):
        delay = started + i * step - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            worst_lag = max(worst_lag, -delay)
        owed += per_tick
        count = int(owed)
        owed -= count
        stamp = f'{{"t": {time.time()!r}, "p": {phase:d}}}'
        if count == 1:
            await conn.execute(INSERT, bot_id, stamp)
        elif count:
            await conn.execute(INSERT_MANY, bot_id, stamp, count)
        published += count
    return published, time.perf_counter() - started, worst_lag


async def _serve(pipe: Connection, url: str, bot_id: int) -> None:
    import asyncpg

    loop = asyncio.get_running_loop()
    conn = await asyncpg.connect(url)
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "stop":
            break
        if command[0] == "prefill":  # big rows on run_progress (only the stalled client listens there)
            _, count, size = command
            for _ in range(count):
                await conn.execute(PREFILL, size, 1)
            pipe.send(("done", count, 0.0, 0.0))
            continue
        _, phase, rate, duration = command
        published, elapsed, lag = await _publish(conn, bot_id, phase, rate, duration)
        pipe.send(("done", published, elapsed, lag))
    await conn.close()


def worker(pipe: Connection, url: str, bot_id: int) -> None:
    """Process entry point."""
    import uvloop

    uvloop.run(_serve(pipe, url, bot_id))
