"""GET /source-health, /data/status, /data/inventory, /data/backfill/jobs against real rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.runs.helpers import collect, problem

T = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def clean(admin):
    await admin.execute("TRUNCATE trading.source_freshness, trading.backfill_jobs, market_data.klines,"
                        " market_data.funding_rates, market_data.open_interest, market_data.metrics, market_data.macro")


async def sources(admin):
    await admin.execute(
        "INSERT INTO trading.source_freshness (source, last_update_at, last_data_at, stale_after_seconds, detail) VALUES"
        " ('klines', now() - interval '10 seconds', now() - interval '70 seconds', 60, '{\"symbol_count\": 3}'),"
        " ('macro', now() - interval '400 seconds', now() - interval '1 day', NULL, '{}'),"
        " ('funding', NULL, NULL, NULL, '{}'),"
        " ('oi', now() - interval '90 seconds', now() - interval '90 seconds', 60, '{}')")


async def test_source_health_applies_each_threshold(api, admin):
    await sources(admin)
    body = (await api.get("/source-health")).json()
    by = {s["source"]: s for s in body["sources"]}
    assert [s["source"] for s in body["sources"]] == ["funding", "klines", "macro", "oi"]
    assert by["klines"]["stale"] is False and by["klines"]["threshold"] == "source"
    assert by["klines"]["staleAfterSeconds"] == 60 and 9 <= by["klines"]["ageSeconds"] < 30
    assert by["klines"]["detail"] == {"symbol_count": 3}  # the source's keys, unchanged
    assert by["macro"]["stale"] is True and by["macro"]["threshold"] == "default"  # 400 s > 300 s default
    assert by["macro"]["staleAfterSeconds"] == 300
    assert by["funding"]["stale"] is True and by["funding"]["ageSeconds"] is None  # never updated
    assert by["oi"]["stale"] is True  # 90 s > its own 60 s
    assert body["staleCount"] == 3


async def test_source_health_empty(api):
    body = (await api.get("/source-health")).json()
    assert body["sources"] == [] and body["staleCount"] == 0


async def jobs(admin, statuses):
    ids = []
    for i, status in enumerate(statuses):
        ids.append(await admin.fetchval(
            "INSERT INTO trading.backfill_jobs (source, symbol, interval, status, progress, rows_written, updated_at)"
            " VALUES ($1, 'BTCUSDT', '1m', $2, 0.5, $3, now()) RETURNING id",
            "klines" if i % 2 == 0 else "funding", status, 100 * i))
    return ids


async def test_data_status(api, admin):
    assert (await api.get("/data/status")).json()["status"] == "empty"
    await sources(admin)
    await jobs(admin, ["done", "running", "queued", "done"])
    body = (await api.get("/data/status")).json()
    assert body["status"] == "degraded"  # stale sources
    assert body["backfill"] == {"queued": 1, "running": 1, "done": 2, "failed": 0, "cancelled": 0}
    klines = next(s for s in body["sources"] if s["source"] == "klines")
    assert 69 <= klines["dataLagSeconds"] < 90 and 9 <= klines["updateAgeSeconds"] < 30 and not klines["stale"]
    await admin.execute("UPDATE trading.source_freshness SET last_update_at = now(), stale_after_seconds = 600")
    assert (await api.get("/data/status")).json()["status"] == "ok"
    await jobs(admin, ["failed"])
    body = (await api.get("/data/status")).json()
    assert body["status"] == "degraded" and body["failedBackfills24h"] == 1


async def test_backfill_jobs_paged_and_filtered(api, admin):
    assert (await api.get("/data/backfill/jobs")).json() == {"items": [], "nextCursor": None}
    ids = await jobs(admin, ["done", "running", "failed", "done", "queued"])
    items = await collect(api, "/data/backfill/jobs", {"limit": 2})
    assert [i["id"] for i in items] == ids[::-1]
    assert items[0]["rowsWritten"] == 400 and items[0]["status"] == "queued" and items[0]["symbol"] == "BTCUSDT"
    assert [i["id"] for i in await collect(api, "/data/backfill/jobs", {"status": "done"})] == [ids[3], ids[0]]
    assert [i["id"] for i in await collect(api, "/data/backfill/jobs", {"source": "funding"})] == [ids[3], ids[1]]
    problem(await api.get("/data/backfill/jobs", params={"status": "paused"}), 422)
    cursor = (await api.get("/data/backfill/jobs", params={"limit": 1})).json()["nextCursor"]
    problem(await api.get("/data/backfill/jobs", params={"limit": 1, "cursor": cursor, "status": "done"}), 400)


async def klines(admin, symbol, interval, opens, step):
    await admin.executemany(
        "INSERT INTO market_data.klines (symbol, interval, open_time, close_time, open, high, low, close, volume)"
        " VALUES ($1, $2, $3::timestamptz, $3::timestamptz + $4::interval - interval '1 millisecond', 1, 2, 0.5, 1.5, 10)",
        [(symbol, interval, t, step) for t in opens])


async def test_inventory_extents_and_gaps(api, admin):
    minute = timedelta(minutes=1)
    await klines(admin, "BTCUSDT", "1m", [T + i * minute for i in [*range(10), *range(13, 20), 25]], minute)
    await klines(admin, "ETHUSDT", "1h", [T + timedelta(hours=i) for i in range(5)], timedelta(hours=1))
    months = [datetime(2024, m, 1, tzinfo=UTC) for m in (1, 2, 4, 5)]  # March missing; 31-day months are no gap
    await admin.executemany(
        "INSERT INTO market_data.klines (symbol, interval, open_time, close_time, open, high, low, close, volume)"
        " VALUES ('BTCUSDT', '1M', $1::timestamptz, $1::timestamptz + interval '1 month' - interval '1 millisecond',"
        " 1, 2, 0.5, 1.5, 10)",
        [(m,) for m in months])
    await admin.execute("INSERT INTO market_data.funding_rates (symbol, funding_time, funding_rate) VALUES"
                        " ('BTCUSDT', $1, 0.0001), ('BTCUSDT', $2, 0.0002)", T, T + timedelta(hours=8))
    await admin.execute("INSERT INTO market_data.open_interest (symbol, ts, open_interest) VALUES ('BTCUSDT', $1, 5)", T)
    await admin.execute("INSERT INTO market_data.metrics (symbol, name, ts, value) VALUES ('BTCUSDT', 'ls_ratio', $1, 1)", T)
    await admin.execute("INSERT INTO market_data.macro (series, ts, value) VALUES ('DXY', $1, 104)", T)

    body = (await api.get("/data/inventory")).json()
    klines_items = [i for i in body["items"] if i["dataset"] == "klines"]
    assert klines_items == [
        {"dataset": "klines", "symbol": "BTCUSDT", "interval": "1M", "name": None, "firstAt": "2024-01-01T00:00:00Z",
         "lastAt": "2024-05-01T00:00:00Z", "rows": 4, "gaps": 1, "missingBars": 1, "firstGapAt": "2024-03-01T00:00:00Z"},
        {"dataset": "klines", "symbol": "BTCUSDT", "interval": "1m", "name": None, "firstAt": "2024-01-01T00:00:00Z",
         "lastAt": "2024-01-01T00:25:00Z", "rows": 18, "gaps": 2, "missingBars": 8, "firstGapAt": "2024-01-01T00:10:00Z"},
        {"dataset": "klines", "symbol": "ETHUSDT", "interval": "1h", "name": None, "firstAt": "2024-01-01T00:00:00Z",
         "lastAt": "2024-01-01T04:00:00Z", "rows": 5, "gaps": 0, "missingBars": 0, "firstGapAt": None},
    ]
    others = {(i["dataset"], i["symbol"], i["name"]): i["rows"] for i in body["items"] if i["dataset"] != "klines"}
    assert others == {("funding_rates", "BTCUSDT", None): 2, ("open_interest", "BTCUSDT", None): 1,
                      ("metrics", "BTCUSDT", "ls_ratio"): 1, ("macro", "DXY", None): 1}
    assert all(i["gaps"] is None for i in body["items"] if i["dataset"] != "klines")

    only = (await api.get("/data/inventory", params={"dataset": "klines", "symbol": "ETHUSDT"})).json()["items"]
    assert [(i["symbol"], i["interval"]) for i in only] == [("ETHUSDT", "1h")]
    by_interval = (await api.get("/data/inventory", params={"interval": "1m"})).json()["items"]
    assert [(i["dataset"], i["interval"]) for i in by_interval] == [("klines", "1m")]
    funding = (await api.get("/data/inventory", params={"dataset": "funding_rates"})).json()["items"]
    assert [i["dataset"] for i in funding] == ["funding_rates"]
    macro = (await api.get("/data/inventory", params={"symbol": "DXY"})).json()["items"]
    assert [i["dataset"] for i in macro] == ["macro"]


async def test_inventory_empty_and_bad_parameters(api):
    assert (await api.get("/data/inventory")).json()["items"] == []
    problem(await api.get("/data/inventory", params={"dataset": "trades"}), 422)
    problem(await api.get("/data/inventory", params={"interval": "1 minute"}), 422)
