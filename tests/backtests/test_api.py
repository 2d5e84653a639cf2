"""POST /backtests end to end (worker process, Postgres results), GET /strategies, GET /bff/bot-defaults."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from gordon_manager.backtests import run_backtest
from gordon_manager.backtests.writer import stats_json
from gordon_manager.execution import ExecutionConfig
from gordon_manager.strategies import list_strategies
from tests.conftest import wait_for
from tests.marketdata.fixtures import iso, kadmin, kapp, kclient, kline_db  # noqa: F401

TERMINAL = {"done", "failed", "cancelled"}


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def request_body(kline_db, *, start: int = 0, stop: int = 5000, **overrides) -> dict:
    ts = kline_db.series.ts
    body = {"strategy": "sma_crossover", "params": {"fast": 5, "slow": 20}, "symbol": "BTCUSDT", "interval": "1m",
            "from": iso(int(ts[start])), "to": iso(int(ts[stop])),
            "execution": {"initialCash": "25000", "takerFeeBps": 7.5, "makerFeeBps": "2", "slippageBps": 1}}
    body.update(overrides)
    return body


async def wait_terminal(kadmin, run_id: int, timeout: float = 60.0):
    async def finished():
        row = await kadmin.fetchrow("SELECT * FROM trading.runs WHERE id = $1", run_id)
        return row if row["status"] in TERMINAL else None

    return await wait_for(finished, timeout=timeout, interval=0.05)


async def test_backtest_through_the_api_equals_run_backtest(kclient, kadmin, kline_db, operator_headers):
    body = request_body(kline_db, start=1000, stop=9000)
    response = await kclient.post("/backtests", json=body, headers=operator_headers)
    assert response.status_code == 202, response.text
    accepted = response.json()
    run_id = accepted["id"]
    assert accepted == {"id": run_id, "status": "queued", "runUrl": f"/runs/{run_id}"}
    assert response.headers["location"] == f"/runs/{run_id}"
    run = await wait_terminal(kadmin, run_id)
    assert run["status"] == "done", run["error"]
    assert (run["kind"], run["runner"], run["created_by"], run["progress"]) == ("backtest", "manager", "operator", 1.0)
    assert run["params"] == {"fast": 5, "slow": 20}
    assert run["config"]["initial_cash"] == "25000" and run["config"]["taker_fee_bps"] == "7.5"
    assert run["started_at"] <= run["finished_at"]

    bars = kline_db.series.slice(1000, 9000)
    config = ExecutionConfig(initial_cash="25000", taker_fee_bps="7.5", maker_fee_bps="2", slippage_bps="1")
    expected = run_backtest(bars, "sma_crossover", {"fast": 5, "slow": 20}, config)
    stats = dict(run["stats"])
    timings = stats.pop("timings")
    assert stats == stats_json(expected)
    assert expected.stats.trade_count > 10
    assert set(timings) == {"load_bars_s", "engine_s", "engine_bars_per_s", "write_equity_s", "write_roundtrips_s",
                            "total_s"}

    points = await kadmin.fetch("SELECT ts, equity, cash, position_qty, price FROM trading.equity_points"
                                " WHERE run_id = $1 ORDER BY ts", run_id)
    assert len(points) == len(bars)
    assert [int(p["ts"].timestamp() * 1000) for p in points] == bars.ts.tolist()
    equity = np.array([p["equity"] for p in points])
    assert np.array_equal(equity, expected.equity)
    cash, qty, price = (np.array([p[k] for p in points]) for k in ("cash", "position_qty", "price"))
    assert np.array_equal(price, bars.close)
    assert np.array_equal(cash + qty * price, expected.equity)

    trips = await kadmin.fetch("SELECT * FROM trading.roundtrips WHERE run_id = $1 ORDER BY id", run_id)
    assert len(trips) == len(expected.round_trips)
    for row, trip in zip(trips, expected.round_trips, strict=True):
        assert (row["symbol"], row["side"]) == ("BTCUSDT", "long")
        assert (row["entry_price"], row["exit_price"], row["qty"]) == (trip.entry_price, trip.exit_price, trip.qty)
        assert (row["gross_pnl"], row["fees"], row["net_pnl"]) == (trip.gross_pnl, trip.fees, trip.net_pnl)
        assert int(row["entry_at"].timestamp() * 1000) == trip.entry_ts
        assert row["duration_s"] == trip.duration_ms / 1000 and row["exit_reason"] == str(trip.exit_reason)

    events = await kadmin.fetch("SELECT payload FROM trading.events WHERE channel = 'run_progress'"
                                " AND (payload->'row'->>'id')::bigint = $1 ORDER BY id", run_id)
    statuses = [e["payload"]["row"]["status"] for e in events]  # what the console sees over /ws
    assert statuses[0] == "queued" and statuses[-1] == "done" and "running" in statuses

    detail = await kclient.get(f"/runs/{run_id}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["status"] == "done" and detail.json()["stats"]["tradeCount"] == expected.stats.trade_count
    wire, want = detail.json()["stats"], expected.stats  # the anchors' statistics, typed and camelCase
    assert (wire["sortino"], wire["sqn"], wire["profitFactor"], wire["buyHoldReturn"]) == (
        want.sortino, want.sqn, want.profit_factor, want.buy_hold_return)
    assert wire["maxDrawdownDurationS"] == want.max_drawdown_duration_s and wire["netPnl"] == f"{want.net_pnl:f}"
    assert wire["byExitReason"] == [{"reason": g.reason, "trades": g.trades, "winRate": g.win_rate,
                                     "netPnl": f"{g.net_pnl:f}", "expectancy": g.expectancy} for g in want.by_exit_reason]
    assert [(m["month"], m["return"], m["trades"]) for m in wire["byMonth"]] == [
        (m.month, m.return_, m.trades) for m in want.by_month]
    assert set(wire["timings"]) >= {"loadBarsS", "engineS", "writeEquityS", "writeRoundtripsS", "totalS"}
    assert run["finished_at"] - run["started_at"] >= timedelta(seconds=timings["total_s"])


async def test_snake_case_params_and_defaults(kclient, kadmin, kline_db, operator_headers):
    body = request_body(kline_db, strategy="donchian_breakout", params={"entryPeriod": 30, "exit_period": 12})
    del body["execution"]
    response = await kclient.post("/backtests", json=body, headers=operator_headers)
    assert response.status_code == 202, response.text
    run = await wait_terminal(kadmin, response.json()["id"])
    assert run["status"] == "done", run["error"]
    assert run["params"] == {"entry_period": 30, "exit_period": 12, "stop_pct": None, "take_profit_pct": None}
    assert run["config"] == {**ExecutionConfig().model_dump(mode="json"), "qty_step": "0.00000001",
                             "price_step": "0.00000001", "cash_step": "0.00000001"}  # stored in plain notation
    detail = (await kclient.get(f"/runs/{run['id']}")).json()
    assert detail["config"]["qtyStep"] == "0.00000001" and detail["progress"] == 1


async def test_invalid_requests_are_refused_with_the_reason(kclient, kline_db, operator_headers):
    post = lambda body: kclient.post("/backtests", json=body, headers=operator_headers)  # noqa: E731
    unknown = problem(await post(request_body(kline_db, strategy="martingale")), 422)
    assert "unknown strategy 'martingale'" in unknown["detail"]
    assert unknown["errors"][0]["field"] == "strategy"
    bad = problem(await post(request_body(kline_db, params={"fast": 50, "slow": 20})), 422)
    assert "fast must be < slow" in bad["detail"]
    extra = problem(await post(request_body(kline_db, params={"fats": 5})), 422)
    assert extra["errors"][0]["field"] == "params.fats"
    ts = kline_db.series.ts
    empty = problem(await post(request_body(kline_db, **{"from": iso(int(ts[10])), "to": iso(int(ts[10]))})), 422)
    assert "the range is empty" in empty["detail"] and empty["errors"][0]["field"] == "to"
    fee = problem(await post(request_body(kline_db, execution={"takerFeeBps": -1})), 422)
    assert fee["errors"][0]["field"] == "execution.takerFeeBps"
    naive = problem(await post(request_body(kline_db, **{"from": "2024-01-01T00:00:00"})), 422)
    assert naive["errors"][0]["field"] == "from"
    missing = problem(await post(request_body(kline_db, symbol="DOGEUSDT")), 404)
    assert missing["detail"].startswith(f"no klines for DOGEUSDT 1m between {iso(int(ts[0]))} and {iso(int(ts[5000]))}")
    before = problem(await post(request_body(kline_db, **{"from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"})),
                     404)
    assert "no klines for BTCUSDT 1m between 2020-01-01T00:00:00Z and 2020-02-01T00:00:00Z" in before["detail"]


async def test_mutations_need_the_operator_token(kclient, kline_db):
    assert (await kclient.post("/backtests", json=request_body(kline_db))).status_code == 401
    wrong = {"X-Operator-Token": "nope"}
    assert (await kclient.post("/backtests", json=request_body(kline_db), headers=wrong)).status_code == 403
    assert (await kclient.post("/backtests/1/cancel")).status_code == 401
    assert (await kclient.post("/backtests/1/cancel", headers=wrong)).status_code == 403


async def test_cancel_a_queued_run_and_conflicts(kclient, kadmin, kline_db, operator_headers):
    run_id = await kadmin.fetchval(
        "INSERT INTO trading.runs (kind, status, strategy, symbol, interval, runner) "
        "VALUES ('backtest', 'queued', 'sma_crossover', 'BTCUSDT', '1m', 'cli') RETURNING id")  # no pool picks it up
    response = await kclient.post(f"/backtests/{run_id}/cancel", headers=operator_headers)
    assert response.status_code == 202, response.text
    assert response.json() == {"id": run_id, "status": "cancelled", "cancelRequested": True}
    again = problem(await kclient.post(f"/backtests/{run_id}/cancel", headers=operator_headers), 409)
    assert again["detail"] == f"backtest run {run_id} is already cancelled"
    problem(await kclient.post("/backtests/999999999/cancel", headers=operator_headers), 404)
    paper = await kadmin.fetchval("INSERT INTO trading.runs (kind, status, strategy, symbol, interval) "
                                  "VALUES ('paper', 'running', 's', 'BTCUSDT', '1m') RETURNING id")
    problem(await kclient.post(f"/backtests/{paper}/cancel", headers=operator_headers), 404)
    problem(await kclient.post("/backtests/0/cancel", headers=operator_headers), 422)


async def test_cancel_a_running_run(kclient, kadmin, kline_db, operator_headers):
    # The worker claims the run (running) and then blocks on its bar load while the test holds the
    # klines table, so the cancel lands while it runs; the worker honours it once the bars are in
    # (before the engine starts). Belt and braces: the run is long (300k bars of a strategy that
    # trades all the time), so a cancel that lost the race is still seen by the heartbeat.
    ts = kline_db.big.ts
    body = request_body(kline_db, symbol="ETHUSDT", strategy="rsi_reversion",
                        params={"period": 2, "oversold": 49, "overbought": 51},
                        **{"from": iso(int(ts[0])), "to": iso(int(ts[-1]) + 60_000)})
    response = await kclient.post("/backtests", json=body, headers=operator_headers)
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    lock = kadmin.transaction()
    await lock.start()
    try:
        await kadmin.execute("LOCK TABLE market_data.klines IN ACCESS EXCLUSIVE MODE")

        async def running():
            return await run_status(kclient, run_id) == "running"

        await wait_for(running, timeout=30)
        cancel = await kclient.post(f"/backtests/{run_id}/cancel", headers=operator_headers)
        assert cancel.json() == {"id": run_id, "status": "running", "cancelRequested": True}
    finally:
        await lock.rollback()
    run = await wait_terminal(kadmin, run_id)
    assert (run["status"], run["error"], run["cancel_requested"]) == ("cancelled", None, True)
    assert await kadmin.fetchval("SELECT count(*) FROM trading.equity_points WHERE run_id = $1", run_id) == 0


async def run_status(kclient, run_id: int) -> str:
    response = await kclient.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()["status"]


async def test_a_failing_run_is_marked_failed_with_the_error(kclient, kadmin, kline_db, operator_headers):
    # Klines the pipeline wrote badly (high below the close): the worker's load refuses them.
    await kadmin.execute(
        "INSERT INTO market_data.klines (symbol, interval, open_time, close_time, open, high, low, close, volume)"
        " SELECT 'BROKENUSDT', '1m', t, t + interval '59.999 seconds', 10, 9, 8, 10, 1"
        "   FROM generate_series(timestamptz '2024-01-01', timestamptz '2024-01-01 01:00', interval '1 minute') t"
        " ON CONFLICT DO NOTHING")
    body = request_body(kline_db, symbol="BROKENUSDT", **{"from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"})
    response = await kclient.post("/backtests", json=body, headers=operator_headers)
    run = await wait_terminal(kadmin, response.json()["id"])
    assert run["status"] == "failed"
    assert run["error"] == "ValueError: low/high must bound open/close"
    assert run["finished_at"] is not None


async def test_strategies_lists_the_registry(kclient):
    response = await kclient.get("/strategies")
    assert response.status_code == 200
    body = response.json()
    assert body["nextCursor"] is None
    assert [s["name"] for s in body["items"]] == [s.name for s in list_strategies()]
    donchian = next(s for s in body["items"] if s["name"] == "donchian_breakout")
    assert set(donchian["paramsSchema"]["properties"]) == {"entryPeriod", "exitPeriod", "stopPct", "takeProfitPct"}
    assert donchian["defaultParams"] == {"entryPeriod": 20, "exitPeriod": 10, "stopPct": None, "takeProfitPct": None}
    assert donchian["warmupBars"] >= 20 and donchian["examples"][0]["entryPeriod"] == 6
    sma = next(s for s in body["items"] if s["name"] == "sma_crossover")
    assert sma["paramsSchema"]["properties"]["fast"]["default"] == 10 and sma["description"]


async def test_bot_defaults(kclient, kapp):
    response = await kclient.get("/bff/bot-defaults")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "strategy": "sma_crossover", "params": {"fast": 10, "slow": 30},
        "execution": {"initialCash": "10000", "takerFeeBps": "10", "makerFeeBps": "10", "slippageBps": "1",
                      "positionFraction": "1", "qtyStep": "0.00000001", "priceStep": "0.00000001",
                      "cashStep": "0.00000001"},
        "mode": "paper", "symbol": "BTCUSDT", "interval": "1m", "image": kapp.state.ctx.settings.bot_image,
        "desiredState": "stopped", "strategies": [s.name for s in list_strategies()],
    }


@pytest.mark.parametrize("path", ["/strategies", "/bff/bot-defaults", "/backtests", "/backtests/{runId}/cancel"])
async def test_openapi_types_the_endpoints(kclient, path):
    spec = (await kclient.get("/openapi.json")).json()
    operation = next(iter(spec["paths"][path].values()))
    ok = operation["responses"].get("200") or operation["responses"]["202"]
    assert "$ref" in ok["content"]["application/json"]["schema"]
