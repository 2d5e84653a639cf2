"""The equity rollups (migration 0010) equal an aggregate of the raw points after any sequence of
inserts (several statements, out of order, by the bot role), updates and deletes."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import numpy as np

from gordon_manager.botrunner import credentials
from tests.conftest import Database
from tests.runs.helpers import T0, add_points, make_bot, make_run

EXPECTED = """
SELECT w.width_s, date_bin(make_interval(secs => w.width_s), ts, timestamptz '1970-01-01 00:00:00+00') AS bucket_at,
       count(*) AS n, min(ts) AS first_at, max(ts) AS last_at, min(equity) AS min_equity, max(equity) AS max_equity,
       (array_agg(equity ORDER BY ts))[1] AS first_equity, (array_agg(equity ORDER BY ts DESC))[1] AS last_equity,
       (array_agg(ts ORDER BY equity, ts))[1] AS min_at, (array_agg(ts ORDER BY equity DESC, ts))[1] AS max_at
FROM trading.equity_points, (VALUES (300), (3600), (86400)) AS w(width_s)
WHERE run_id = $1 GROUP BY 1, 2 ORDER BY 1, 2
"""
ACTUAL = """
SELECT width_s, bucket_at, n, first_at, last_at, min_equity, max_equity, first_equity, last_equity, min_at, max_at
FROM trading.equity_rollups WHERE run_id = $1 ORDER BY 1, 2
"""


async def assert_consistent(conn: asyncpg.Connection, run_id: int) -> int:
    expected = [tuple(r) for r in await conn.fetch(EXPECTED, run_id)]
    actual = [tuple(r) for r in await conn.fetch(ACTUAL, run_id)]
    assert actual == expected
    return len(actual)


async def test_inserts_in_many_statements_and_out_of_order_merge_exactly(admin):
    run = await make_run(admin)
    rng = np.random.default_rng(11)
    minutes = rng.permutation(3 * 24 * 60)[:2500]
    values = rng.normal(1000, 50, minutes.shape[0]).round(4)
    values[17] = values.max() + 1  # a unique top and a tie at the bottom (earliest wins)
    values[18] = values[19] = values.min() - 1
    chunks = np.array_split(np.arange(minutes.shape[0]), 9)
    for chunk in chunks:  # 9 COPY statements, each touching buckets the others touch too
        await admin.copy_records_to_table(
            "equity_points", schema_name="trading", columns=["run_id", "ts", "equity"],
            records=[(run, T0 + timedelta(minutes=int(minutes[i]), seconds=7), float(values[i])) for i in chunk])
    for i in range(5):  # and single-row INSERTs like a bot's
        await admin.execute("INSERT INTO trading.equity_points (run_id, ts, equity) VALUES ($1, $2, $3)",
                            run, T0 + timedelta(days=3, minutes=i), 1000.0 + i)
    assert await assert_consistent(admin, run) > 100


async def test_updates_and_deletes_recompute_the_touched_days(admin):
    run = await make_run(admin)
    stamps = await add_points(admin, run, [float(100 + (i % 37)) for i in range(3000)], step=timedelta(minutes=3))
    await admin.execute("UPDATE trading.equity_points SET equity = 5000 WHERE run_id = $1 AND ts = $2", run, stamps[10])
    await admin.execute("UPDATE trading.equity_points SET equity = equity - 1000 WHERE run_id = $1 AND ts >= $2"
                        " AND ts < $3", run, stamps[500], stamps[900])
    await assert_consistent(admin, run)
    await admin.execute("DELETE FROM trading.equity_points WHERE run_id = $1 AND ts < $2", run, stamps[1000])
    await assert_consistent(admin, run)
    # an upsert (INSERT … ON CONFLICT DO UPDATE) fires both paths
    await admin.execute("INSERT INTO trading.equity_points (run_id, ts, equity) VALUES ($1, $2, -1), ($1, $3, 7)"
                        " ON CONFLICT (run_id, ts) DO UPDATE SET equity = excluded.equity", run, stamps[2000],
                        stamps[-1] + timedelta(days=2))
    await assert_consistent(admin, run)


async def test_deleting_a_run_removes_its_rollups(admin):
    run = await make_run(admin)
    await add_points(admin, run, [1.0, 2.0, 3.0])
    assert await admin.fetchval("SELECT count(*) FROM trading.equity_rollups WHERE run_id = $1", run) == 3
    await admin.execute("DELETE FROM trading.runs WHERE id = $1", run)
    assert await admin.fetchval("SELECT count(*) FROM trading.equity_rollups WHERE run_id = $1", run) == 0


async def test_the_bot_role_writes_points_without_any_right_on_the_rollups(admin, reads_db: Database):
    bot = await make_bot(admin)
    run = await make_run(admin, kind="paper", bot_id=bot, status="running")
    token = await credentials.issue(admin, key=b"tests-runs-token-key", bot_id=bot)
    conn = await asyncpg.connect(reads_db.bot_url)
    try:
        await credentials.login(conn, bot_id=bot, token=token)  # the bot role writes only its own runs' points
        await conn.execute("INSERT INTO trading.equity_points (run_id, ts, equity) VALUES ($1, $2, 10), ($1, $3, 12)",
                           run, T0, T0 + timedelta(minutes=1))
        assert await conn.fetchval("SELECT has_table_privilege('trading.equity_rollups', 'INSERT')") is False
    finally:
        await conn.close()
    await assert_consistent(admin, run)


async def test_the_manager_reads_but_cannot_write_rollups(reads_db: Database):
    conn = await asyncpg.connect(reads_db.manager_url)
    try:
        await conn.fetchval("SELECT count(*) FROM trading.equity_rollups")
        try:
            await conn.execute("DELETE FROM trading.equity_rollups")
        except asyncpg.InsufficientPrivilegeError:
            pass
        else:
            raise AssertionError("the manager must not write the rollups")
    finally:
        await conn.close()
