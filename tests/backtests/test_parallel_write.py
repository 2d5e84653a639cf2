"""Migration 0029: a long backtest writes its equity points over other connections, each slice committing on
its own, while the run's transaction writes the rollups and round trips and then ends the run. The run is
never done without every point, and a backtest that ends failed or cancelled keeps nothing, whoever ends it
and whenever."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from gordon_manager.backtests import job, repo, writer
from gordon_manager.backtests.job import RunJob, execute_run
from tests.backtests.test_worker import mconn, queued, status_of  # noqa: F401
from tests.conftest import wait_for
from tests.marketdata.fixtures import kadmin, kline_db  # noqa: F401

BARS = 6_000
POINTS = "SELECT ts, equity, cash, position_qty, price FROM trading.equity_points WHERE run_id = $1 ORDER BY ts"
ROLLUPS = ("SELECT width_s, bucket_at, n, first_at, first_equity, last_at, last_equity, min_at, min_equity, max_at,"
           " max_equity FROM trading.equity_rollups WHERE run_id = $1 ORDER BY width_s, bucket_at")
TRIPS = ("SELECT entry_at, exit_at, entry_price, exit_price, qty, gross_pnl, fees, net_pnl, exit_reason"
         " FROM trading.roundtrips WHERE run_id = $1 ORDER BY entry_at")


@pytest.fixture
def long_runs(monkeypatch):
    """Runs of 1,000 bars or more count as long; the points go out in 1,000-row chunks."""
    monkeypatch.setattr(job, "LONG_RUN_BARS", 1_000)
    monkeypatch.setattr(writer, "EQUITY_CHUNK_ROWS", 1_000)


async def results(kadmin, run_id: int) -> list[list[tuple]]:
    return [[tuple(r) for r in await kadmin.fetch(q, run_id)] for q in (POINTS, ROLLUPS, TRIPS)]


async def counts(kadmin, run_id: int) -> tuple[int, ...]:
    return tuple([await kadmin.fetchval(f"SELECT count(*) FROM trading.{t} WHERE run_id = $1", run_id)
                  for t in ("equity_points", "equity_rollups", "roundtrips")])


async def test_a_long_run_writes_the_same_results_its_points_committed_by_other_transactions(kline_db, kadmin, mconn,
                                                                                          monkeypatch):
    short = await queued(mconn, kline_db, runner="cli", stop=BARS)
    assert (await execute_run(RunJob(short, kline_db.db.manager_url))).status == "done"

    monkeypatch.setattr(job, "LONG_RUN_BARS", 1_000)
    monkeypatch.setattr(writer, "EQUITY_CHUNK_ROWS", 1_000)
    long = await queued(mconn, kline_db, runner="cli", stop=BARS)
    seen: list[tuple[str, float]] = []
    outcome = await execute_run(RunJob(long, kline_db.db.manager_url), on_phase=lambda p, v: seen.append((p, v)))
    assert outcome.status == "done", outcome.error

    one, two = await results(kadmin, short), await results(kadmin, long)
    assert len(two[0]) == BARS and len(two[2]) == outcome.stats["trade_count"] > 0
    assert two == one  # points, rollups, round trips: as the single transaction writes them
    # Two writers' transactions hold the points; the run's own (round trips, the run's end) holds none of them.
    point_xids = {r["xmin"] for r in await kadmin.fetch("SELECT xmin::text FROM trading.equity_points"
                                                         " WHERE run_id = $1", long)}
    run_xid = await kadmin.fetchval("SELECT xmin::text FROM trading.runs WHERE id = $1", long)
    trip_xids = {r["xmin"] for r in await kadmin.fetch("SELECT xmin::text FROM trading.roundtrips WHERE run_id = $1",
                                                       long)}
    assert len(point_xids) == job.WRITE_CONNECTIONS and trip_xids == {run_xid} and run_xid not in point_xids
    # Progress went through the points of both writers, never back.
    writes = [v for p, v in seen if p == "write"]
    assert writes == sorted(writes) and len(set(writes)) >= 6
    timings = outcome.timings
    assert timings["write_equity_s"] > 0 and timings["write_roundtrips_s"] > 0
    assert timings["total_s"] >= sum(timings[k] for k in ("load_bars_s", "engine_s", "write_equity_s",
                                                          "write_roundtrips_s"))


async def test_a_run_failing_after_its_points_committed_keeps_none(kline_db, kadmin, mconn, long_runs, monkeypatch):
    run_id = await queued(mconn, kline_db, runner="cli", stop=BARS)
    real = writer.write_roundtrips

    async def fail_once_the_points_are_in(conn, **kwargs):
        await real(conn, **kwargs)

        async def committed():
            return await kadmin.fetchval("SELECT count(*) FROM trading.equity_points WHERE run_id = $1", run_id) == BARS

        await wait_for(committed, timeout=30)
        raise OSError("disk full")

    monkeypatch.setattr(writer, "write_roundtrips", fail_once_the_points_are_in)
    outcome = await execute_run(RunJob(run_id, kline_db.db.manager_url))
    assert (outcome.status, outcome.error) == ("failed", "OSError: disk full")
    assert (await status_of(kadmin, run_id))["status"] == "failed"
    assert await counts(kadmin, run_id) == (0, 0, 0)


async def test_an_interrupt_while_the_points_are_written_keeps_none(kline_db, kadmin, mconn, long_runs):
    run_id = await queued(mconn, kline_db, runner="cli", stop=BARS)
    writing = asyncio.Event()
    task = asyncio.ensure_future(execute_run(RunJob(run_id, kline_db.db.manager_url),
                                             on_phase=lambda p, v: writing.set() if p == "write" and v > 0.4 else None))
    await asyncio.wait_for(writing.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    row = await status_of(kadmin, run_id)
    assert (row["status"], row["error"]) == ("cancelled", "interrupted")
    assert await counts(kadmin, run_id) == (0, 0, 0)


async def _running_backtest(kadmin) -> int:
    return await kadmin.fetchval("INSERT INTO trading.runs (kind, status, strategy, symbol, interval, started_at)"
                                 " VALUES ('backtest', 'running', 's', 'BTCUSDT', '1m', now()) RETURNING id")


async def _blocked_on_a_lock(kadmin, pid: int) -> bool:
    return await kadmin.fetchval("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid)


@pytest.fixture
async def sessions(kline_db):
    """A points writer's session (the manager's role) and one that ends runs (admin)."""
    points_writer = await asyncpg.connect(kline_db.db.manager_url)
    ender = await asyncpg.connect(kline_db.db.admin_url)
    yield points_writer, ender
    await points_writer.close()
    await ender.close()


async def test_ending_a_run_waits_for_a_points_writer_in_flight_then_drops_its_points(kadmin, sessions):
    points_writer, ender = sessions
    run_id = await _running_backtest(kadmin)
    tx = points_writer.transaction()
    await tx.start()
    assert await points_writer.fetchval("SELECT trading.equity_points_copy_begin($1)", run_id) is True
    await points_writer.execute("INSERT INTO trading.equity_points (run_id, ts, equity)"
                                " SELECT $1, t, 100 FROM generate_series(now() - interval '1 hour', now(),"
                                " interval '1 minute') t", run_id)
    # Heartbeats, progress and cancel requests do not wait for the writer.
    assert await repo.heartbeat(kadmin, run_id=run_id, progress=0.5, timeout=5) is False
    assert (await repo.request_cancel(kadmin, run_id=run_id))["status"] == "running"
    end = asyncio.ensure_future(ender.execute("UPDATE trading.runs SET status = 'failed' WHERE id = $1", run_id))
    await wait_for(lambda: _blocked_on_a_lock(kadmin, ender.get_server_pid()), timeout=10)
    assert not end.done()
    await tx.commit()  # the points land, then the run's end (waiting on the writer's lock) removes them
    await asyncio.wait_for(end, 10)
    assert (await status_of(kadmin, run_id))["status"] == "failed"
    assert await counts(kadmin, run_id) == (0, 0, 0)
    # A writer that begins after the run ended is told so, and writes nothing.
    assert await points_writer.fetchval("SELECT trading.equity_points_copy_begin($1)", run_id) is False
    missing = await kadmin.fetchval("SELECT max(id) + 1 FROM trading.runs")
    assert await points_writer.fetchval("SELECT trading.equity_points_copy_begin($1)", missing) is False


async def test_a_writer_beginning_while_the_run_is_being_ended_waits_and_is_told_it_ended(kadmin, sessions):
    points_writer, ender = sessions
    run_id = await _running_backtest(kadmin)
    tx = ender.transaction()
    await tx.start()
    await ender.execute("UPDATE trading.runs SET status = 'cancelled' WHERE id = $1", run_id)
    begin = asyncio.ensure_future(points_writer.fetchval("SELECT trading.equity_points_copy_begin($1)", run_id))
    await wait_for(lambda: _blocked_on_a_lock(kadmin, points_writer.get_server_pid()), timeout=10)
    assert not begin.done()
    await tx.commit()
    assert await asyncio.wait_for(begin, 10) is False


@pytest.mark.parametrize("isolation", ["repeatable_read", "serializable"])
async def test_a_running_backtest_is_ended_in_read_committed_only(kline_db, kadmin, isolation):
    run_id = await _running_backtest(kadmin)
    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="READ COMMITTED"):
        async with kadmin.transaction(isolation=isolation):
            await kadmin.execute("UPDATE trading.runs SET status = 'failed' WHERE id = $1", run_id)
    assert (await status_of(kadmin, run_id))["status"] == "running"
    async with kadmin.transaction(isolation=isolation):  # other changes of the row, and bots' runs, are not refused
        await kadmin.execute("UPDATE trading.runs SET progress = 0.5 WHERE id = $1", run_id)


@pytest.mark.parametrize(("kind", "to", "kept"), [
    ("backtest", "cancelled", False),
    ("backtest", "failed", False),
    ("backtest", "done", True),
    ("paper", "failed", True),  # a bot's run keeps its equity, however it ended
    ("live", "stopped", True),
])
async def test_only_an_unfinished_backtest_loses_its_results(kline_db, kadmin, kind, to, kept):
    run_id = await kadmin.fetchval("INSERT INTO trading.runs (kind, status, strategy, symbol, interval, started_at)"
                                   " VALUES ($1, 'running', 's', 'BTCUSDT', '1m', now()) RETURNING id", kind)
    await kadmin.execute("INSERT INTO trading.equity_points (run_id, ts, equity) SELECT $1, t, 100"
                         " FROM generate_series(now() - interval '1 hour', now(), interval '1 minute') t", run_id)
    await kadmin.execute("INSERT INTO trading.roundtrips (run_id, symbol, side, entry_at, exit_at, entry_price,"
                         " exit_price, qty, gross_pnl, fees, net_pnl, duration_s, exit_reason)"
                         " VALUES ($1, 'BTCUSDT', 'long', now() - interval '1 hour', now(), 1, 2, 1, 1, 0, 1, 3600,"
                         " 'signal')", run_id)
    before = await counts(kadmin, run_id)
    assert before[0] == 61 and before[1] > 0 and before[2] == 1
    await kadmin.execute("UPDATE trading.runs SET status = $2 WHERE id = $1", run_id, to)
    assert await counts(kadmin, run_id) == (before if kept else (0, 0, 0))


async def test_bots_cannot_begin_a_points_write(kline_db):
    bot = await asyncpg.connect(kline_db.db.bot_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await bot.execute("SELECT trading.equity_points_copy_begin(1)")
    finally:
        await bot.close()
