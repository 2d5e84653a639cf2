"""Migrations 0027, 0028: a backtest writer writes the equity rollups of its points itself (numpy
buckets: one COPY for a run without rollups, ``trading.equity_rollups_put`` merging into a run that
has some) and the rollup trigger skips its COPY; the rollups are exactly the ones the trigger makes,
and a rebuild from the raw points."""

from __future__ import annotations

import dataclasses

import asyncpg
import numpy as np
import pytest

from gordon_manager.backtests import run_backtest, writer
from gordon_manager.marketdata import generate_klines
from tests.conftest import create_database

RUN = "INSERT INTO trading.runs (kind, strategy, symbol, interval) VALUES ('backtest', 's', 'BTCUSDT', '1m') RETURNING id"
ROLLUPS = ("SELECT width_s, bucket_at, n, first_at, first_equity, last_at, last_equity, min_at, min_equity, max_at,"
           " max_equity FROM trading.equity_rollups WHERE run_id = $1 ORDER BY width_s, bucket_at")


@pytest.fixture(scope="module")
async def rollup_db(pg_server_url):
    return await create_database(pg_server_url)


def _results():
    bars = generate_klines(n_bars=3_000, seed=5, interval="1m", start_ts=1_704_150_120_000)
    real = run_backtest(bars, "sma_crossover", {"fast": 5, "slow": 20})
    rng = np.random.default_rng(3)
    ties = np.round(rng.normal(100, 2, size=len(bars)))  # many equal values in a bucket: earliest wins
    return bars, [real, dataclasses.replace(real, equity=ties)]


async def _write(conn: asyncpg.Connection, result, bars, *, by_writer: bool, monkeypatch) -> int:
    monkeypatch.setattr(writer, "rollups_by_writer", lambda ts, eq: by_writer)
    run_id = await conn.fetchval(RUN)
    async with conn.transaction():
        await writer.write_equity(conn, run_id=run_id, result=result, close=bars.close, chunk_rows=777)
    return run_id


async def test_put_rollups_equal_the_triggers_and_a_rebuild(rollup_db, monkeypatch):
    conn = await asyncpg.connect(rollup_db.manager_url)  # the backtest writer's role
    admin = await asyncpg.connect(rollup_db.admin_url)
    try:
        bars, results = _results()
        for result in results:
            put = await _write(conn, result, bars, by_writer=True, monkeypatch=monkeypatch)
            trig = await _write(conn, result, bars, by_writer=False, monkeypatch=monkeypatch)
            put_rows = [tuple(r) for r in await conn.fetch(ROLLUPS, put)]
            assert {r[0] for r in put_rows} == {300, 3600, 86400}
            assert sum(r[2] for r in put_rows if r[0] == 86400) == len(bars)
            assert put_rows == [tuple(r) for r in await conn.fetch(ROLLUPS, trig)]
            await admin.execute("SELECT trading.equity_rollups_rebuild($1, '-infinity', 'infinity')", put)
            assert put_rows == [tuple(r) for r in await conn.fetch(ROLLUPS, put)]
    finally:
        await conn.close()
        await admin.close()


async def test_rollups_merged_into_a_run_that_has_some(rollup_db, monkeypatch):
    """A second write to a run with rollups merges (equity_rollups_put) instead of copying: the
    buckets that span both writes come out as one, equal to the trigger's over all the points."""
    conn = await asyncpg.connect(rollup_db.manager_url)
    try:
        bars, (result, _) = _results()
        k = 1_237  # inside a 5-minute and an hourly bucket
        halves = [(dataclasses.replace(result, ts=result.ts[part], equity=result.equity[part],
                                       cash=result.cash[part], qty=result.qty[part]), bars.close[part])
                  for part in (slice(0, k), slice(k, None))]
        run_id = await conn.fetchval(RUN)
        for half, close in halves:
            async with conn.transaction():
                await writer.write_equity(conn, run_id=run_id, result=half, close=close, chunk_rows=500)
        trig = await _write(conn, result, bars, by_writer=False, monkeypatch=monkeypatch)
        assert [tuple(r) for r in await conn.fetch(ROLLUPS, run_id)] == [tuple(r) for r in await conn.fetch(ROLLUPS, trig)]
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.fetchval("SELECT trading.equity_rollups_copy_begin($1)", run_id + 1000)
    finally:
        await conn.close()


async def test_the_skip_ends_with_the_write(rollup_db):
    conn = await asyncpg.connect(rollup_db.manager_url)
    try:
        bars, (result, _) = _results()
        run_id = await conn.fetchval(RUN)
        async with conn.transaction():
            await writer.write_equity(conn, run_id=run_id, result=result, close=bars.close)
            # Later points in the same transaction (and everyone else's) go through the trigger again.
            await conn.execute("INSERT INTO trading.equity_points (run_id, ts, equity) VALUES ($1, now(), 1)", run_id)
        n = await conn.fetchval("SELECT sum(n) FROM trading.equity_rollups WHERE run_id = $1 AND width_s = 300", run_id)
        assert n == len(bars) + 1
        assert await conn.fetchval("SELECT current_setting('gordon.equity_rollups', true)") in (None, "")
    finally:
        await conn.close()


async def test_only_the_manager_puts_rollups(rollup_db):
    bot = await asyncpg.connect(rollup_db.bot_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await bot.execute("SELECT trading.equity_rollups_put(1, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await bot.execute("SELECT trading.equity_rollups_copy_begin(1)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await bot.execute("INSERT INTO trading.equity_rollups VALUES (1, 300, now(), 1, now(), 1, now(), 1, now(), 1,"
                              " now(), 1)")
    finally:
        await bot.close()


def test_buckets_of_unsorted_or_non_finite_points_are_left_to_the_trigger():
    ts = np.array([0, 60_000, 120_000], dtype=np.int64)
    assert writer.rollups_by_writer(ts, np.array([1.0, 2.0, 3.0]))
    assert not writer.rollups_by_writer(ts[::-1], np.array([1.0, 2.0, 3.0]))
    assert not writer.rollups_by_writer(ts, np.array([1.0, np.nan, 3.0]))


async def test_rollups_need_their_run_and_go_with_it(rollup_db):
    conn = await asyncpg.connect(rollup_db.manager_url)
    admin = await asyncpg.connect(rollup_db.admin_url)
    try:
        bars, (result, _) = _results()
        run_id = await conn.fetchval(RUN)
        async with conn.transaction():
            await writer.write_equity(conn, run_id=run_id, result=result, close=bars.close)
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute("SELECT trading.equity_rollups_put($1, '{300}', '{0}', '{1}', '{0}', '{1}', '{0}',"
                               " '{1}', '{0}', '{1}', '{0}', '{1}')", run_id + 1000)
        with pytest.raises(asyncpg.ForeignKeyViolationError):  # the points' check fires before the rollup trigger
            await conn.execute("INSERT INTO trading.equity_points (run_id, ts, equity) VALUES ($1, now(), 1)",
                               run_id + 1000)
        assert await admin.fetchval("SELECT count(*) FROM trading.equity_rollups WHERE run_id = $1", run_id + 1000) == 0
        assert await admin.fetchval("SELECT count(*) FROM trading.equity_rollups WHERE run_id = $1", run_id) > 0
        await admin.execute("DELETE FROM trading.runs WHERE id = $1", run_id)
        assert await admin.fetchval("SELECT count(*) FROM trading.equity_rollups WHERE run_id = $1", run_id) == 0
    finally:
        await conn.close()
        await admin.close()


async def test_round_trips_are_copied_exactly(rollup_db):
    """The text COPY of round trips: every Decimal reads back equal, times to the millisecond, and a
    text value with COPY's special characters arrives unchanged."""
    conn = await asyncpg.connect(rollup_db.manager_url)
    try:
        _, (result, _) = _results()
        trips = result.round_trips
        assert trips
        run_id = await conn.fetchval(RUN)
        symbol = "odd\tname\\with\nbreaks"
        async with conn.transaction():
            assert await writer.write_roundtrips(conn, run_id=run_id, symbol=symbol, trips=trips) == len(trips)
            assert await writer.write_roundtrips(conn, run_id=run_id, symbol=symbol, trips=[]) == 0
        rows = await conn.fetch("SELECT * FROM trading.roundtrips WHERE run_id = $1 ORDER BY id", run_id)
        assert [(r["symbol"], r["side"], int(r["entry_at"].timestamp() * 1000), int(r["exit_at"].timestamp() * 1000),
                 r["entry_price"], r["exit_price"], r["qty"], r["gross_pnl"], r["fees"], r["net_pnl"], r["duration_s"],
                 r["exit_reason"]) for r in rows] == [
            (symbol, "long", t.entry_ts, t.exit_ts, t.entry_price, t.exit_price, t.qty, t.gross_pnl, t.fees, t.net_pnl,
             t.duration_ms / 1000, str(t.exit_reason)) for t in trips]
    finally:
        await conn.close()
