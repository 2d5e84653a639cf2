"""Benchmark: shadow-compare throughput and lag of one deploy fed at ≥ 1,000 decisions/s.

Two bots (a live bot and its candidate) write what bot runners write: per bar one equity point and
one decision row each (every bar decides: the worst case for the compare join; 1% of the
candidate's decisions differ, so divergence rows are written too), in batch transactions every
50 ms. The DeployController (the production class, at its production tick of 0.5 s) compares them
on a deploy in state comparing whose window is larger than the run (so it never swaps).

1. sustained: the writer inserts RATE bars/s (RATE decisions/s per bot) for SECONDS; reported:
   write rate, compare rate, and lag = wall time from a bar's commit to the controller having
   compared it (p50 / p99 / max).
2. catch-up: BACKLOG bars already stored; time to compare them all = the compare ceiling.

Target: compare rate ≥ write rate at 1,000 decisions/s with bounded lag (≈ one tick).

    .venv/bin/python bench/shadow_compare.py [--rate 1000] [--seconds 20] [--backlog 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from _common import embedded_postgres, fresh_database, pct

from gordon_manager.db.connect import connect, create_pool
from gordon_manager.deploys.controller import DeployController

T0 = datetime(2024, 1, 1, tzinfo=UTC)
BATCH_S = 0.05


class Leader:
    is_leader = True


async def setup(admin) -> dict:
    """A live bot, its candidate, their running runs and a deploy in state comparing."""
    ids = {}
    for name, mode, shadow_of in (("live", "paper", None), ("cand", "shadow", "live")):
        ids[name] = await admin.fetchval(
            "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, params, mode, image, desired_state,"
            " shadow_of, created_by) VALUES ($1, 'sma_crossover', 'BTCUSDT', '1m', '{}', $2, 'gordon-bot:1',"
            " 'running', $3, 'bench') RETURNING id", f"bench-{name}-{time.time_ns()}", mode, ids.get(shadow_of))
        await admin.execute("INSERT INTO trading.bot_status (bot_id, observed_state) VALUES ($1, 'running')",
                            ids[name])
        ids[f"{name}_run"] = await admin.fetchval(
            "INSERT INTO trading.runs (kind, bot_id, status, strategy, symbol, interval, range_start)"
            " VALUES ($1, $2, 'running', 'sma_crossover', 'BTCUSDT', '1m', $3) RETURNING id",
            "paper" if name == "live" else "shadow", ids[name], T0)
    ids["deploy"] = await admin.fetchval(
        "INSERT INTO trading.bot_deploys (bot_id, candidate_bot_id, state, from_version, from_spec_version,"
        " candidate, compare_window, match_threshold, lease_ttl_s, live_run_id, candidate_run_id, actor)"
        " VALUES ($1, $2, 'comparing', 1, 1, '{}', 1000000000, 0, 30, $3, $4, 'bench') RETURNING id",
        ids["live"], ids["cand"], ids["live_run"], ids["cand_run"])
    return ids


async def write_bars(admin, ids: dict, first: int, n: int) -> None:
    """Bars first..first+n-1 for both bots: one transaction per bot, like two bot runners."""
    for who in ("live", "cand"):
        points, decisions = [], []
        for i in range(first, first + n):
            ts = T0 + timedelta(minutes=i)
            points.append((ids[f"{who}_run"], ts, 10_000.0, 10_000.0, 0.0, 100.0))
            qty = Decimal("0.5") if who == "live" or i % 100 else Decimal("0.7")  # 1% of bars diverge
            decisions.append((ids[who], ids[f"{who}_run"], ts, "buy" if i % 2 else "sell", qty, "market",
                              Decimal("100.5"), "signal"))
        async with admin.transaction():
            await admin.copy_records_to_table("equity_points", schema_name="trading", records=points,
                                              columns=["run_id", "ts", "equity", "cash", "position_qty", "price"])
            await admin.copy_records_to_table(
                "bot_decisions", schema_name="trading", records=decisions,
                columns=["bot_id", "run_id", "bar_at", "side", "qty", "order_type", "price", "reason"])


async def sustained(server_url: str, rate: int, seconds: float) -> None:
    db = await fresh_database(server_url)
    admin = await connect(db.admin_url)
    ids = await setup(admin)
    pool = await create_pool(db.manager_url, min_size=1, max_size=4)
    controller = DeployController(pool=pool, leader=Leader(), interval=0.5)
    task = asyncio.create_task(controller.run(), name="bench-controller")
    committed: deque[tuple[datetime, float]] = deque()  # (bar ts, commit time), in bar order
    lags: list[float] = []
    done_writing = asyncio.Event()

    async def writer() -> None:
        per_batch = max(1, round(rate * BATCH_S))
        first, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            await write_bars(admin, ids, first, per_batch)
            now = time.perf_counter()
            committed.extend((T0 + timedelta(minutes=i), now) for i in range(first, first + per_batch))
            first += per_batch
            # pace to the target rate (absolute schedule: a slow batch is caught up, not forgiven)
            await asyncio.sleep(max(0.0, started + first / rate - time.perf_counter()))
        done_writing.set()

    async def monitor(conn) -> None:
        seen = None
        while True:
            through = await conn.fetchval("SELECT compared_through FROM trading.bot_deploys WHERE id = $1",
                                          ids["deploy"])
            now = time.perf_counter()
            if through is not None and through != seen:
                while committed and committed[0][0] <= through:
                    lags.append(now - committed.popleft()[1])
                seen = through
            if done_writing.is_set() and not committed:
                return
            await asyncio.sleep(0.01)

    mon = await connect(db.admin_url)
    started = time.perf_counter()
    await asyncio.gather(writer(), monitor(mon))
    elapsed = time.perf_counter() - started
    row = await admin.fetchrow("SELECT bars_compared, matches, divergences, state FROM trading.bot_deploys"
                               " WHERE id = $1", ids["deploy"])
    controller.stop()
    await task
    total = len(lags)
    print(f"sustained  rate target {rate} decisions/s per bot for {seconds:g}s: wrote {total} bars "
          f"({total / seconds:.0f}/s per bot, {2 * total / seconds:.0f} decision rows/s)")
    print(f"           compared {row['bars_compared']} bars ({row['matches']} matches, {row['divergences']} "
          f"divergences, state {row['state']}) in {elapsed:.2f}s → {row['bars_compared'] / elapsed:.0f} bars/s")
    print(f"           lag commit→compared: p50 {pct(lags, 50) * 1000:.0f} ms, p99 {pct(lags, 99) * 1000:.0f} ms, "
          f"max {max(lags) * 1000:.0f} ms (controller tick 500 ms)")
    await mon.close()
    await admin.close()
    await pool.close()


async def catch_up(server_url: str, backlog: int) -> None:
    db = await fresh_database(server_url)
    admin = await connect(db.admin_url)
    ids = await setup(admin)
    for first in range(0, backlog, 10_000):
        await write_bars(admin, ids, first, min(10_000, backlog - first))
    await admin.execute("ANALYZE trading.equity_points; ANALYZE trading.bot_decisions")
    pool = await create_pool(db.manager_url, min_size=1, max_size=4)
    controller = DeployController(pool=pool, leader=Leader(), interval=0.5)
    started = time.perf_counter()
    ticks = 0
    while controller.compared_bars < backlog:
        await controller.run_once()
        ticks += 1
    elapsed = time.perf_counter() - started
    print(f"catch-up   {backlog} stored bars compared in {elapsed:.2f}s over {ticks} ticks → "
          f"{backlog / elapsed:.0f} bars/s ({backlog / elapsed / 1000:.1f}× the 1,000/s target)")
    await admin.close()
    await pool.close()


async def main(args) -> None:
    with embedded_postgres() as server_url:
        await sustained(server_url, args.rate, args.seconds)
        await catch_up(server_url, args.backlog)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000, help="bars (= decisions per bot) per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--backlog", type=int, default=100_000)
    asyncio.run(main(parser.parse_args()))
