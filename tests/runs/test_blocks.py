"""Equity blocks (migration 0014): pages read from blocks plus the raw tail are the pages of the raw
points, whatever was packed, cut or changed, and whatever a concurrent writer does."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from gordon_manager.runs import repo
from gordon_manager.runs.compactor import EquityCompactor
from tests.conftest import wait_for
from tests.runs.helpers import T0, add_points, collect, make_run

BLOCK = 96


@pytest.fixture
def reads_settings_overrides() -> dict:
    """These tests compact by hand: the app's own compactor makes one pass at start-up, then waits."""
    return {"equity_compact_interval_s": 3600.0}


@pytest.fixture(autouse=True)
async def quiet_compactor(reads_app):
    """Wait for the app compactor's start-up pass, so it cannot pack a test's points behind its back."""
    compactor = reads_app.state.ctx.services.compactor
    await wait_for(lambda: compactor.iterations >= 1, timeout=30, interval=0.02)


async def compact(conn: asyncpg.Connection, run: int, max_points: int = 10**9) -> int:
    return await conn.fetchval("SELECT trading.equity_compact($1, $2)", run, max_points)


async def blocks(conn: asyncpg.Connection, run: int) -> int:
    return await conn.fetchval("SELECT count(*) FROM trading.equity_blocks WHERE run_id = $1", run)


async def every_view(api, run: int, n: int) -> dict:
    """Pages of several sizes and windows, as the client sees them."""
    out = {}
    for limit in (9, 95, 96, 97, 250, 500, 1000):
        out[("all", limit)] = await collect(api, f"/runs/{run}/equity", {"limit": limit})
    for lo, hi in ((0, n), (95, 96), (95, 97), (100, 400), (190, 193), (n - 130, n + 5), (n + 10, n + 20)):
        window = {"from": (T0 + timedelta(minutes=lo)).isoformat(), "to": (T0 + timedelta(minutes=hi)).isoformat()}
        for limit in (7, 96, 500):
            out[(lo, hi, limit)] = await collect(api, f"/runs/{run}/equity", {**window, "limit": limit})
    return out


def values(n: int) -> list[float]:
    return [10_000.0 + (i * 37 % 101) - i / 3 for i in range(n)]


async def test_pages_are_the_same_from_blocks_as_from_raw_points(api, admin):
    n = 1000
    run = await make_run(admin)
    await add_points(admin, run, values(n))
    raw = await every_view(api, run, n)
    assert [float(i["equity"]) for i in raw[("all", 500)]] == values(n)
    assert await compact(admin, run, 300) == 288  # only whole blocks, at most max_points
    assert await blocks(admin, run) == 3
    assert await every_view(api, run, n) == raw  # blocks + a long raw tail
    assert await compact(admin, run) == 1000 - 40 - 288
    assert await blocks(admin, run) == n // BLOCK
    assert await compact(admin, run) == 0  # the 40-point tail stays raw
    assert await every_view(api, run, n) == raw


async def test_changes_to_packed_points_cut_the_blocks_back(api, admin):
    n = 600
    run = await make_run(admin)
    stamps = await add_points(admin, run, values(n))
    await compact(admin, run)
    assert await blocks(admin, run) == 6
    # a point inserted inside block 3 (between two existing points): blocks 3.. are cut
    await admin.execute("INSERT INTO trading.equity_points (run_id, ts, equity) VALUES ($1, $2, 1.5)",
                        run, stamps[250] + timedelta(seconds=30))
    assert await blocks(admin, run) == 2
    items = await collect(api, f"/runs/{run}/equity", {"limit": 97})
    assert len(items) == n + 1 and items[251]["equity"] == "1.5" and items[251]["cash"] is None
    await compact(admin, run)
    assert await collect(api, f"/runs/{run}/equity", {"limit": 97}) == items
    # an update inside block 1, then a delete inside block 5
    await admin.execute("UPDATE trading.equity_points SET equity = -7 WHERE run_id = $1 AND ts = $2", run, stamps[5])
    assert await blocks(admin, run) == 0
    items[5]["equity"] = "-7"
    await compact(admin, run)
    await admin.execute("DELETE FROM trading.equity_points WHERE run_id = $1 AND ts = $2", run, stamps[500])
    assert await blocks(admin, run) == 5
    del items[501]
    assert await collect(api, f"/runs/{run}/equity", {"limit": 500}) == items
    # deleting the run deletes its blocks too
    await admin.execute("DELETE FROM trading.runs WHERE id = $1", run)
    assert await blocks(admin, run) == 0
    assert (await api.get(f"/runs/{run}/equity")).status_code == 404


async def test_compaction_skips_a_run_a_writer_is_changing(api, admin, reads_db):
    n = 400
    run = await make_run(admin)
    stamps = await add_points(admin, run, values(n))
    await compact(admin, run, 96)
    writer = await asyncpg.connect(reads_db.admin_url)
    try:
        tx = writer.transaction()
        await tx.start()
        await writer.execute("INSERT INTO trading.equity_points (run_id, ts, equity) VALUES ($1, $2, 42)",
                             run, stamps[300] + timedelta(seconds=1))
        assert await compact(admin, run) == 0  # busy: the writer holds the run's lock
        await tx.commit()
    finally:
        await writer.close()
    assert await compact(admin, run) == 4 * BLOCK - BLOCK  # 401 points: 4 whole blocks, 1 was there
    items = await collect(api, f"/runs/{run}/equity", {"limit": 250})
    assert len(items) == n + 1 and items[301]["equity"] == "42"


async def test_compaction_waits_for_nothing_and_a_concurrent_insert_is_never_lost(api, admin, reads_db):
    """Compaction and out-of-order inserts race; whatever the interleaving, the pages are the points."""
    n = 2000
    run = await make_run(admin)
    stamps = await add_points(admin, run, values(n))
    expected_extra = []

    async def insert(i: int) -> None:
        conn = await asyncpg.connect(reads_db.admin_url)
        try:
            ts = stamps[(i * 211) % n] + timedelta(seconds=7 + i)
            await conn.execute("INSERT INTO trading.equity_points (run_id, ts, equity) VALUES ($1, $2, $3)",
                               run, ts, float(-i))
            expected_extra.append(ts)
        finally:
            await conn.close()

    async def compactor() -> None:
        conn = await asyncpg.connect(reads_db.admin_url)
        try:
            for _ in range(20):
                await compact(conn, run, 192)
        finally:
            await conn.close()

    await asyncio.gather(compactor(), *(insert(i) for i in range(15)))
    await compact(admin, run)
    items = await collect(api, f"/runs/{run}/equity", {"limit": 500})
    assert len(items) == n + 15
    assert [i["ts"] for i in items] == sorted(i["ts"] for i in items)
    packed = await admin.fetchval("SELECT coalesce(sum(length(ts_packed) / 8), 0) FROM trading.equity_blocks"
                                  " WHERE run_id = $1", run)
    assert packed == (n + 15) // BLOCK * BLOCK


async def test_the_compactor_packs_the_runs_with_a_backlog(reads_app, admin):
    small, big = await make_run(admin), await make_run(admin)
    await add_points(admin, small, values(50))
    await add_points(admin, big, values(3 * BLOCK + 10))
    pool = reads_app.state.ctx.pool
    async with pool.acquire() as conn:
        candidates = await repo.compaction_candidates(conn, limit=1000)
    assert big in candidates and small not in candidates
    compactor = EquityCompactor(pool, interval=60)
    await compactor.run_once()
    assert await blocks(admin, big) == 3 and await blocks(admin, small) == 0
    assert compactor.packed >= 3 * BLOCK
    async with pool.acquire() as conn:
        assert big not in await repo.compaction_candidates(conn, limit=1000)


@pytest.mark.parametrize("limit", [1, 96, 500])
async def test_a_run_packed_whole_reads_its_last_page_and_nothing_after(api, admin, limit):
    run = await make_run(admin)
    await add_points(admin, run, values(4 * BLOCK))
    await compact(admin, run)
    items = await collect(api, f"/runs/{run}/equity", {"limit": limit})
    assert [float(i["equity"]) for i in items] == values(4 * BLOCK)
    after = {"from": (T0 + timedelta(minutes=4 * BLOCK)).isoformat()}
    assert (await api.get(f"/runs/{run}/equity", params=after)).json() == {"items": [], "nextCursor": None}
