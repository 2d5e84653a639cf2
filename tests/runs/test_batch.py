"""Concurrent equity page reads share one query, each gets its own page, and a failed batch fails
every read in it (as a read of its own would have failed)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from gordon_manager.errors import DatabaseUnavailable
from gordon_manager.runs import equity
from gordon_manager.runs.batch import PageBatcher, page_batcher
from tests.runs.helpers import T0, add_points, make_run


async def test_concurrent_pages_share_one_query_and_get_their_own_rows(api, admin, reads_app):
    runs = [await make_run(admin) for _ in range(3)]
    for k, run in enumerate(runs):
        await add_points(admin, run, [float(100 * k + i) for i in range(50)])
    batcher = page_batcher(reads_app.state.ctx)
    before = (batcher.batches, batcher.requests)
    wanted = [(runs[i % 3], T0 + timedelta(minutes=i) - timedelta(microseconds=1), equity.TIME_MAX, 5 + i)
              for i in range(30)]
    results = await asyncio.gather(*(batcher.fetch(*w) for w in wanted))
    assert batcher.requests - before[1] == 30
    assert batcher.batches - before[0] < 30  # coalesced (all 30 were pending in the same loop turn)
    for (run, after, before_ts, limit), rows in zip(wanted, results, strict=True):
        stamps, columns = equity.page_from_rows(rows, after=after, before=before_ts, limit=limit)
        k, first = runs.index(run), round((after - T0).total_seconds() / 60)
        assert columns[0].tolist() == [float(100 * k + i) for i in range(first, min(50, first + limit))]
    # and through HTTP, many clients at once
    responses = await asyncio.gather(*(api.get(f"/runs/{runs[i % 3]}/equity", params={"limit": 7})
                                       for i in range(12)))
    for i, response in enumerate(responses):
        assert [float(p["equity"]) for p in response.json()["items"]] == [float(100 * (i % 3) + j) for j in range(7)]


async def test_a_lone_request_is_sent_at_once(reads_app, admin):
    run = await make_run(admin)
    await add_points(admin, run, [1.0, 2.0])
    batcher = page_batcher(reads_app.state.ctx)
    rows = await asyncio.wait_for(batcher.fetch(run, equity.TIME_MIN, equity.TIME_MAX, 10), timeout=5)
    assert equity.page_from_rows(rows, after=equity.TIME_MIN, before=equity.TIME_MAX, limit=10)[0].size == 2
    nothing = await batcher.fetch(987654321, equity.TIME_MIN, equity.TIME_MAX, 10)  # the raw tail's row of NULLs
    assert equity.page_from_rows(nothing, after=equity.TIME_MIN, before=equity.TIME_MAX, limit=10) is None


async def test_a_failed_batch_fails_every_read_in_it(reads_app, monkeypatch):
    batcher = PageBatcher(reads_app.state.ctx, max_batch=2)

    async def broken(conn, requests):
        raise DatabaseUnavailable("the database connection failed: ConnectionResetError")

    monkeypatch.setattr("gordon_manager.runs.repo.equity_pages", broken)
    results = await asyncio.gather(*(batcher.fetch(1, equity.TIME_MIN, equity.TIME_MAX, 5) for _ in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(r, DatabaseUnavailable) for r in results)
    assert batcher.batches == 3  # 5 requests, at most 2 per query


async def test_a_cancelled_reader_does_not_break_the_batch(reads_app, admin):
    run = await make_run(admin)
    await add_points(admin, run, [1.0, 2.0, 3.0])
    batcher = PageBatcher(reads_app.state.ctx)
    doomed = asyncio.ensure_future(batcher.fetch(run, equity.TIME_MIN, equity.TIME_MAX, 3))
    kept = asyncio.ensure_future(batcher.fetch(run, equity.TIME_MIN, equity.TIME_MAX, 3))
    doomed.cancel()
    rows = await kept
    assert equity.page_from_rows(rows, after=equity.TIME_MIN, before=equity.TIME_MAX, limit=3)[0].size == 3
    with pytest.raises(asyncio.CancelledError):
        await doomed
