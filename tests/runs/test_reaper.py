"""The run reaper: bot runs that stopped heartbeating become 'abandoned', nothing else is touched.

The reaper updates every stale bot run of the database it is pointed at, so these tests use a
database of their own (the session's is shared with bots of other tests) and start each test from
an empty runs table.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from gordon_manager.db.connect import connect, create_pool
from gordon_manager.runs.reaper import RunReaper
from gordon_manager.runs.repo import abandon_stale_runs
from tests.conftest import Database, create_database, wait_for

STALE_AFTER_S = 30.0
OLD_BEAT = datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)


@pytest.fixture(scope="module")
async def reaper_db(pg_server_url: str) -> Database:
    return await create_database(pg_server_url)


@pytest.fixture
async def admin(reaper_db: Database) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(reaper_db.admin_url)
    await conn.execute("DELETE FROM trading.bot_events")
    await conn.execute("DELETE FROM trading.runs")
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def pool(reaper_db: Database) -> AsyncIterator[asyncpg.Pool]:
    """A pool logged in as the manager's role, like the service's (so the grants are exercised too)."""
    pool = await create_pool(reaper_db.manager_url, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def bot_id(admin: asyncpg.Connection) -> int:
    return await admin.fetchval(
        "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, created_by, mode)"
        " VALUES ('reaper-' || gen_random_uuid(), 'sma_crossover', 'BTCUSDT', '1m', 'gordon-bot:1', 'test', 'live')"
        " RETURNING id")


async def run(admin, *, kind: str = "live", bot_id: int | None, status: str = "running",
              heartbeat: datetime | None = OLD_BEAT, started: datetime | None = OLD_BEAT) -> int:
    return await admin.fetchval(
        "INSERT INTO trading.runs (kind, bot_id, status, strategy, symbol, interval, started_at, heartbeat_at)"
        " VALUES ($1, $2, $3, 'sma_crossover', 'BTCUSDT', '1m', $4, $5) RETURNING id",
        kind, bot_id, status, started, heartbeat)


async def fresh(admin, **kw) -> int:
    """A running run whose bot heartbeated a moment ago."""
    now = await admin.fetchval("SELECT now()")
    return await run(admin, heartbeat=now - timedelta(seconds=2), started=now - timedelta(hours=1), **kw)


async def statuses(admin) -> dict[int, str]:
    return {r["id"]: r["status"] for r in await admin.fetch("SELECT id, status FROM trading.runs")}


def abandoned_total() -> float:
    return REGISTRY.get_sample_value("gordon_manager_runs_abandoned_total") or 0.0


async def test_stale_bot_runs_are_abandoned_with_an_event(admin, bot_id):
    before = await admin.fetchval("SELECT now()")
    stale = {kind: await run(admin, kind=kind, bot_id=bot_id) for kind in ("paper", "shadow", "live")}
    alive = await fresh(admin, bot_id=bot_id)
    backtest = await run(admin, kind="backtest", bot_id=None)  # backtests have their own worker
    finished = await run(admin, bot_id=bot_id, status="stopped")

    assert sorted(await abandon_stale_runs(admin, stale_after_s=STALE_AFTER_S)) == sorted(stale.values())
    assert await statuses(admin) == {**{i: "abandoned" for i in stale.values()}, alive: "running",
                                     backtest: "running", finished: "stopped"}
    row = await admin.fetchrow("SELECT error, finished_at, updated_at FROM trading.runs WHERE id = $1",
                               stale["live"])
    assert row["error"] == "no heartbeat since 2024-03-01T10:00:00Z"
    assert row["finished_at"] >= before and row["updated_at"] >= before

    events = await admin.fetch("SELECT bot_id, run_id, kind, level, message, data FROM trading.bot_events"
                               " ORDER BY run_id")
    assert [(e["bot_id"], e["run_id"], e["kind"], e["level"]) for e in events] == [
        (bot_id, i, "run_abandoned", "warning") for i in sorted(stale.values())]
    assert events[0]["message"] == "run abandoned: its bot stopped heartbeating"
    assert datetime.fromisoformat(events[0]["data"]["lastHeartbeatAt"]) == OLD_BEAT

    # idempotent: a second pass finds nothing
    assert await abandon_stale_runs(admin, stale_after_s=STALE_AFTER_S) == []
    assert await admin.fetchval("SELECT count(*) FROM trading.bot_events") == 3


async def test_a_run_that_never_heartbeated_counts_from_its_start(admin, bot_id):
    never = await run(admin, bot_id=bot_id, heartbeat=None)
    now = await admin.fetchval("SELECT now()")
    starting = await run(admin, bot_id=bot_id, heartbeat=None, started=now - timedelta(seconds=5))
    assert await abandon_stale_runs(admin, stale_after_s=STALE_AFTER_S) == [never]
    assert (await statuses(admin))[starting] == "running"


async def test_the_error_of_a_run_that_never_heartbeated_names_a_time(admin, bot_id):
    never = await run(admin, bot_id=bot_id, heartbeat=None)
    await abandon_stale_runs(admin, stale_after_s=STALE_AFTER_S)
    error = await admin.fetchval("SELECT error FROM trading.runs WHERE id = $1", never)
    assert re.fullmatch(r"no heartbeat since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", error), error


async def test_the_threshold_is_the_argument(admin, bot_id):
    now = await admin.fetchval("SELECT now()")
    quiet = await run(admin, bot_id=bot_id, heartbeat=now - timedelta(seconds=60))
    assert await abandon_stale_runs(admin, stale_after_s=120) == []
    assert await abandon_stale_runs(admin, stale_after_s=30) == [quiet]


async def test_reaper_pass_abandons_and_counts(admin, pool, bot_id):
    stale = [await run(admin, bot_id=bot_id), await run(admin, kind="paper", bot_id=bot_id)]
    alive = await fresh(admin, bot_id=bot_id)
    counted = abandoned_total()
    reaper = RunReaper(pool, stale_after_s=STALE_AFTER_S, interval=60)
    await reaper.run_once()
    assert await statuses(admin) == {stale[0]: "abandoned", stale[1]: "abandoned", alive: "running"}
    assert abandoned_total() == counted + 2
    await reaper.run_once()  # nothing left: the counter stays
    assert abandoned_total() == counted + 2


async def test_an_inactive_reaper_does_nothing(admin, pool, bot_id):
    stale = await run(admin, bot_id=bot_id)
    counted = abandoned_total()
    reaper = RunReaper(pool, stale_after_s=STALE_AFTER_S, interval=60, active=lambda: False)
    await reaper.run_once()
    assert (await statuses(admin))[stale] == "running"
    assert abandoned_total() == counted
    assert await admin.fetchval("SELECT count(*) FROM trading.bot_events") == 0


async def test_the_running_loop_reaps_a_run_that_goes_quiet(admin, pool, bot_id):
    reaper = RunReaper(pool, stale_after_s=STALE_AFTER_S, interval=0.05)
    task = asyncio.create_task(reaper.run())
    try:
        await wait_for(lambda: reaper.iterations >= 1)
        quiet = await run(admin, bot_id=bot_id)
        reaper.wake()

        async def reaped() -> bool:
            return (await statuses(admin))[quiet] == "abandoned"

        await wait_for(reaped)
    finally:
        reaper.stop()
        await asyncio.wait_for(task, timeout=10)
    assert reaper.failures == 0
