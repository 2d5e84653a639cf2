"""Migration 0012: equity_points keeps foreign-key semantics with a statement-level check."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import create_database

RUN = "INSERT INTO trading.runs (kind, strategy, symbol, interval) VALUES ('backtest', 's', 'BTCUSDT', '1m') RETURNING id"
POINTS = ("INSERT INTO trading.equity_points (run_id, ts, equity) SELECT $1, t, 100"
          " FROM generate_series(timestamptz '2024-01-01', timestamptz '2024-01-01 02:00', interval '1 minute') t")


@pytest.fixture(scope="module")
async def fk_db(pg_server_url):
    """A database of its own: the TRUNCATE case empties trading.runs."""
    return await create_database(pg_server_url)


async def test_points_need_an_existing_run(fk_db):
    conn = await asyncpg.connect(fk_db.manager_url)  # the service role: the check works with its rights
    try:
        run_id = await conn.fetchval(RUN)
        await conn.execute(POINTS, run_id)
        with pytest.raises(asyncpg.ForeignKeyViolationError) as info:
            await conn.execute(POINTS, run_id + 1000)
        assert info.value.detail == f'Key (run_id)=({run_id + 1000}) is not present in table "runs".'
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute("UPDATE trading.equity_points SET run_id = $2 WHERE run_id = $1", run_id, run_id + 1000)
        assert await conn.fetchval("SELECT count(*) FROM trading.equity_points WHERE run_id = $1", run_id) == 121
    finally:
        await conn.close()


async def test_deleting_a_run_removes_its_points_and_rollups(fk_db):
    conn = await asyncpg.connect(fk_db.admin_url)
    try:
        keep, gone = await conn.fetchval(RUN), await conn.fetchval(RUN)
        await conn.execute(POINTS, keep)
        await conn.execute(POINTS, gone)
        assert await conn.fetchval("SELECT count(*) FROM trading.equity_rollups WHERE run_id = $1", gone) > 0
        await conn.execute("DELETE FROM trading.runs WHERE id = $1", gone)
        assert await conn.fetchval("SELECT count(*) FROM trading.equity_points WHERE run_id = $1", gone) == 0
        assert await conn.fetchval("SELECT count(*) FROM trading.equity_rollups WHERE run_id = $1", gone) == 0
        assert await conn.fetchval("SELECT count(*) FROM trading.equity_points WHERE run_id = $1", keep) == 121
        await conn.execute("TRUNCATE trading.runs CASCADE")
        assert await conn.fetchval("SELECT count(*) FROM trading.equity_points") == 0
    finally:
        await conn.close()


async def test_a_writer_locks_its_run_against_deletion(fk_db):
    writer = await asyncpg.connect(fk_db.manager_url)
    admin = await asyncpg.connect(fk_db.admin_url)
    try:
        run_id = await writer.fetchval(RUN)
        async with writer.transaction():
            await writer.execute(POINTS, run_id)
            await admin.execute("SET lock_timeout = '200ms'")
            with pytest.raises(asyncpg.LockNotAvailableError):
                await admin.execute("DELETE FROM trading.runs WHERE id = $1", run_id)
        await admin.execute("DELETE FROM trading.runs WHERE id = $1", run_id)
        assert await admin.fetchval("SELECT count(*) FROM trading.equity_points WHERE run_id = $1", run_id) == 0
    finally:
        await writer.close()
        await admin.close()
