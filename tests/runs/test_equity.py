"""GET /runs/{id}/equity and /bots/{id}/equity: keyset pages, inserts while paging, downsampling."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from gordon_manager.runs import equity as equity_module
from tests.runs.helpers import T0, add_points, collect, make_bot, make_run, problem


def wave(n: int, seed: int = 1) -> list[float]:
    rng = np.random.default_rng(seed)
    return (10_000 + np.cumsum(rng.normal(0, 5, n)) + 300 * np.sin(np.arange(n) / 97)).round(6).tolist()


async def test_pages_in_time_order_with_every_field(api, admin):
    run = await make_run(admin)
    stamps = await add_points(admin, run, [100.0, 101.5, 99.25, 102.0, 103.0])
    first = (await api.get(f"/runs/{run}/equity", params={"limit": 2})).json()
    assert first["items"] == [
        {"ts": "2024-03-01T00:00:00Z", "equity": "100", "cash": "50", "positionQty": "0.5", "price": "100"},
        {"ts": "2024-03-01T00:01:00Z", "equity": "101.5", "cash": "50.75", "positionQty": "0.5", "price": "100"},
    ]
    items = await collect(api, f"/runs/{run}/equity", {"limit": 2})
    assert [float(i["equity"]) for i in items] == [100.0, 101.5, 99.25, 102.0, 103.0]
    window = {"from": stamps[1].isoformat(), "to": stamps[3].isoformat()}  # [from, to)
    assert [float(i["equity"]) for i in await collect(api, f"/runs/{run}/equity", {**window, "limit": 1})] == [101.5, 99.25]


async def test_default_page_is_500_points(api, admin):
    run = await make_run(admin)
    await add_points(admin, run, [float(i) for i in range(501)])
    body = (await api.get(f"/runs/{run}/equity")).json()
    assert len(body["items"]) == 500 and body["nextCursor"]
    rest = (await api.get(f"/runs/{run}/equity", params={"cursor": body["nextCursor"]})).json()
    assert [float(i["equity"]) for i in rest["items"]] == [500.0] and rest["nextCursor"] is None


async def test_no_point_skipped_or_repeated_while_points_are_inserted(api, admin):
    run = await make_run(admin, kind="paper", status="running")
    original = await add_points(admin, run, wave(100), step=timedelta(minutes=2))
    seen, cursor, appended, page_no = [], None, [], 0
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        body = (await api.get(f"/runs/{run}/equity", params=params)).json()
        seen += [i["ts"] for i in body["items"]]
        page_no += 1
        # the bot keeps writing: a point at the end, and a late point between two already seen ones
        appended += await add_points(admin, run, [1.0], start=original[-1] + timedelta(minutes=2 * page_no))
        await add_points(admin, run, [2.0], start=original[0] + timedelta(minutes=1, seconds=page_no))
        cursor = body["nextCursor"]
        if cursor is None:
            break
    iso = lambda ts: ts.isoformat().replace("+00:00", "Z")  # noqa: E731
    assert len(seen) == len(set(seen))
    assert seen[: len(original)] == [iso(t) for t in original]  # every original point, in order, once
    assert seen[len(original):] == [iso(t) for t in appended[: len(seen) - len(original)]]  # then the new tail


async def test_run_without_points_is_an_empty_page_and_unknown_run_is_404(api, admin):
    run = await make_run(admin, kind="paper", status="queued")
    assert (await api.get(f"/runs/{run}/equity")).json() == {"items": [], "nextCursor": None}
    assert (await api.get(f"/runs/{run}/equity", params={"points": 100})).json()["items"] == []
    problem(await api.get("/runs/999999999/equity"), 404)
    problem(await api.get("/runs/999999999/equity", params={"points": 100}), 404)


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"points": 1}, {"points": 20001},
                                    {"method": "average"}, {"from": "2024-03-01"}])
async def test_bad_equity_parameters_are_422(api, admin, params):
    run = await make_run(admin)
    problem(await api.get(f"/runs/{run}/equity", params=params), 422)


async def test_bad_cursor_and_cursor_with_points_are_400(api, admin):
    run = await make_run(admin)
    other = await make_run(admin)
    await add_points(admin, run, [1.0, 2.0, 3.0])
    cursor = (await api.get(f"/runs/{run}/equity", params={"limit": 1})).json()["nextCursor"]
    problem(await api.get(f"/runs/{run}/equity", params={"cursor": cursor[:-2] + "zz"}), 400)
    problem(await api.get(f"/runs/{other}/equity", params={"cursor": cursor}), 400)  # another run's list
    problem(await api.get(f"/runs/{run}/equity", params={"cursor": cursor, "points": 10}), 400)
    problem(await api.get(f"/runs/{run}/equity", params={"from": "2024-03-02T00:00:00Z",
                                                         "to": "2024-03-01T00:00:00Z"}), 422)
    forged = (await api.get(f"/runs/{run}/equity", params={"limit": 1})).json()["nextCursor"]
    assert forged == cursor  # deterministic, signed


async def test_few_points_come_back_raw_and_whole(api, admin):
    run = await make_run(admin)
    await add_points(admin, run, [5.0, 6.0, 7.0])
    body = (await api.get(f"/runs/{run}/equity", params={"points": 10})).json()
    assert [float(i["equity"]) for i in body["items"]] == [5.0, 6.0, 7.0] and body["items"][0]["cash"] == "2.5"
    assert body["downsample"] == {"method": "lttb", "requestedPoints": 10, "sourcePoints": 3, "source": "raw"}
    assert body["nextCursor"] is None


def _check_reduction(items, values, stamps, points):
    assert 3 <= len(items) <= points + 2  # LTTB: exactly `points` (+ the extremes if they were swapped in)
    ts = [i["ts"] for i in items]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    by_ts = {t.isoformat().replace("+00:00", "Z"): v for t, v in zip(stamps, values, strict=True)}
    assert all(by_ts[i["ts"]] == float(i["equity"]) for i in items)  # real points, not averages
    eq = [float(i["equity"]) for i in items]
    assert min(eq) == min(values) and max(eq) == max(values)  # the extremes survive
    assert items[0]["ts"] == ts[0] == min(by_ts) and items[-1]["ts"] == max(by_ts)


@pytest.mark.parametrize("method", ["lttb", "minmax"])
async def test_downsampling_from_raw_buckets_keeps_real_points_and_extremes(api, admin, method):
    run = await make_run(admin)
    values = wave(5000, seed=3)
    stamps = await add_points(admin, run, values)
    body = (await api.get(f"/runs/{run}/equity", params={"points": 200, "method": method})).json()
    assert body["downsample"]["source"] == "raw-buckets" and body["downsample"]["sourcePoints"] == 5000
    _check_reduction(body["items"], values, stamps, 200)
    assert set(body["items"][0]) == {"ts", "equity"}


@pytest.mark.parametrize("method", ["lttb", "minmax"])
async def test_downsampling_from_rollups_matches_the_raw_reduction_in_spirit(api, admin, monkeypatch, method):
    run = await make_run(admin)
    values = wave(20_000, seed=5)
    stamps = await add_points(admin, run, values, step=timedelta(seconds=30))
    monkeypatch.setattr(equity_module, "RAW_REDUCE_LIMIT", 1000)  # force the rollup path
    body = (await api.get(f"/runs/{run}/equity", params={"points": 50, "method": method})).json()
    assert body["downsample"]["source"] == "rollup-3600s"  # 166 hours ≥ 50 buckets; 6 days < 50
    _check_reduction(body["items"], values, stamps, 50)
    # a window with unaligned edges: the partial buckets come from the raw points
    lo, hi = stamps[1234], stamps[17_777]
    body = (await api.get(f"/runs/{run}/equity", params={"points": 40, "method": method, "from": lo.isoformat(),
                                                          "to": hi.isoformat()})).json()
    inside = [(t, v) for t, v in zip(stamps, values, strict=True) if lo <= t < hi]
    _check_reduction(body["items"], [v for _, v in inside], [t for t, _ in inside], 40)


async def test_bot_equity_merges_runs_in_time_order(api, admin):
    bot = await make_bot(admin)
    r1 = await make_run(admin, kind="paper", bot_id=bot)
    r2 = await make_run(admin, kind="paper", bot_id=bot)
    backtest = await make_run(admin, kind="backtest", bot_id=bot)
    await add_points(admin, r1, [1.0, 2.0, 3.0], step=timedelta(minutes=2))
    await add_points(admin, r2, [10.0, 20.0, 30.0], start=T0 + timedelta(minutes=1), step=timedelta(minutes=2))
    await add_points(admin, r2, [40.0], start=T0 + timedelta(minutes=4, seconds=0, microseconds=0) + timedelta(hours=1))
    await add_points(admin, backtest, [999.0])
    items = await collect(api, f"/bots/{bot}/equity", {"limit": 2})
    assert [(i["runId"], float(i["equity"])) for i in items] == [(r1, 1.0), (r2, 10.0), (r1, 2.0), (r2, 20.0), (r1, 3.0),
                                                          (r2, 30.0), (r2, 40.0)]
    with_backtests = await collect(api, f"/bots/{bot}/equity", {"kind": ["paper", "backtest"], "limit": 3})
    assert len(with_backtests) == 8 and (backtest, 999.0) in [(i["runId"], float(i["equity"])) for i in with_backtests]
    same_ts = await add_points(admin, r1, [4.0], start=T0 + timedelta(hours=3))
    await add_points(admin, r2, [50.0], start=same_ts[0])  # equal timestamps: ordered by run id
    tail = await collect(api, f"/bots/{bot}/equity", {"limit": 1, "from": same_ts[0].isoformat()})
    assert [(i["runId"], float(i["equity"])) for i in tail] == [(r1, 4.0), (r2, 50.0)]


async def test_bot_equity_downsampled_and_errors(api, admin):
    bot = await make_bot(admin)
    runs = [await make_run(admin, kind="live", bot_id=bot) for _ in range(2)]
    values = [wave(3000, seed=7), wave(3000, seed=8)]
    await add_points(admin, runs[0], values[0])
    await add_points(admin, runs[1], values[1], start=T0 + timedelta(days=3))
    body = (await api.get(f"/bots/{bot}/equity", params={"points": 100})).json()
    assert body["downsample"]["sourcePoints"] == 6000 and body["nextCursor"] is None
    assert {i["runId"] for i in body["items"]} == set(runs)
    eq = [float(i["equity"]) for i in body["items"]]
    assert min(eq) == min(min(v) for v in values) and max(eq) == max(max(v) for v in values)
    few = (await api.get(f"/bots/{bot}/equity", params={"points": 100, "from": (T0 + timedelta(days=3)).isoformat(),
                                                         "to": (T0 + timedelta(days=3, minutes=5)).isoformat()})).json()
    assert [float(i["equity"]) for i in few["items"]] == values[1][:5] and few["downsample"]["source"] == "raw"
    problem(await api.get("/bots/999999999/equity"), 404)
    problem(await api.get(f"/bots/{bot}/equity", params={"kind": "options"}), 422)
    cursor = (await api.get(f"/bots/{bot}/equity", params={"limit": 1})).json()["nextCursor"]
    problem(await api.get(f"/bots/{bot}/equity", params={"cursor": cursor, "points": 10}), 400)
    problem(await api.get(f"/bots/{bot}/equity", params={"cursor": cursor, "kind": "live"}), 400)  # other list
    empty = await make_bot(admin)
    assert (await api.get(f"/bots/{empty}/equity")).json() == {"items": [], "nextCursor": None}
    assert (await api.get(f"/bots/{empty}/equity", params={"points": 10})).json()["items"] == []


def test_epoch_microseconds_round_trip():
    for us in (0, 1, 1_709_251_200_000_001, -5):
        assert equity_module.to_us(equity_module.from_us(us)) == us
    assert math.isclose(equity_module.to_us(T0) / 1e6, T0.timestamp())


async def test_page_json_handles_fractions_nulls_and_odd_floats(api, admin):
    run = await make_run(admin)
    await admin.execute(
        "INSERT INTO trading.equity_points (run_id, ts, equity, cash, position_qty, price) VALUES"
        " ($1, '2024-03-01T00:00:00.5Z', 1e22, NULL, -0.0, NULL), ($1, '2024-03-01T00:00:01Z', 0.1, 2.5, NULL, 3),"
        " ($1, '1999-12-31T23:59:59.000001Z', 5, 5, 5, 5)", run)
    body = (await api.get(f"/runs/{run}/equity")).json()
    assert body["items"] == [
        {"ts": "1999-12-31T23:59:59.000001Z", "equity": "5", "cash": "5", "positionQty": "5", "price": "5"},
        {"ts": "2024-03-01T00:00:00.500000Z", "equity": "10000000000000000000000", "cash": None, "positionQty": "0",
         "price": None},
        {"ts": "2024-03-01T00:00:01Z", "equity": "0.1", "cash": "2.5", "positionQty": None, "price": "3"},
    ]
    from datetime import datetime

    assert datetime.fromisoformat(body["items"][1]["ts"]) == datetime.fromisoformat("2024-03-01T00:00:00.5+00:00")


async def test_equity_query_problems_name_the_field(api, admin):
    run = await make_run(admin)
    body = problem(await api.get(f"/runs/{run}/equity", params={"from": "2024-03-01", "limit": "many"}), 422)
    assert {e["field"] for e in body["errors"]} == {"from", "limit"}
    assert (await api.get(f"/runs/{run}/equity", params={"unknown": "x"})).status_code == 200  # ignored, as elsewhere


def test_equity_parameters_are_documented_from_the_model(reads_app):
    params = {p["name"]: p for p in reads_app.openapi()["paths"]["/runs/{runId}/equity"]["get"]["parameters"]}
    assert set(params) == {"runId", "limit", "cursor", "points", "method", "from", "to"}
    assert params["limit"]["schema"]["maximum"] == 1000 and params["method"]["schema"]["enum"] == ["lttb", "minmax"]
    assert params["from"]["in"] == "query" and params["from"]["required"] is False
