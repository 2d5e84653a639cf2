"""GET /portfolio and GET /performance on hand-built data with hand-computed figures."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from gordon_manager.bff import performance as perf
from gordon_manager.db.readpool import reading
from tests.runs.helpers import make_bot, make_run, problem

H0 = datetime(2024, 3, 1, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(autouse=True)
async def clean(admin):
    await admin.execute("TRUNCATE trading.portfolio_state, trading.runs, trading.bot_configs CASCADE")


async def points(admin, run_id, pairs):
    await admin.executemany("INSERT INTO trading.equity_points (run_id, ts, equity, position_qty) VALUES ($1, $2, $3, 1)",
                            [(run_id, ts, value) for ts, value in pairs])


async def position(admin, bot_id, symbol, qty, cash, exposure, upnl):
    await admin.execute(
        "INSERT INTO trading.portfolio_state (bot_id, symbol, qty, cash, exposure, unrealized_pnl, mark_price)"
        " VALUES ($1, $2, $3, $4, $5, $6, 100)", bot_id, symbol, Decimal(qty), Decimal(cash), Decimal(exposure),
        Decimal(upnl))


async def test_empty_portfolio(api):
    body = (await api.get("/portfolio")).json()
    assert body["bots"] == []
    assert body["total"] == {"cash": "0", "exposure": "0", "grossExposure": "0", "unrealizedPnl": "0",
                             "equity": None, "positions": 0}


async def test_portfolio_per_bot_and_total(api, admin):
    a = await make_bot(admin, name="alpha")
    b = await make_bot(admin, name="beta", mode="live")
    await position(admin, a, "BTCUSDT", "0.5", "1000.5", "30000", "10.25")
    await position(admin, a, "SOLUSDT", "-2", "0", "-300", "-1")
    await position(admin, a, "ETHUSDT", "0", "0", "0", "0")
    await position(admin, None, "USDT", "0", "500", "0", "0")
    run_a = await make_run(admin, kind="paper", bot_id=a, status="running")
    await make_run(admin, kind="paper", bot_id=a, status="done")
    run_b = await make_run(admin, kind="live", bot_id=b, status="running")
    await points(admin, run_a, [(H0, 1000.0), (H0 + HOUR, 1010.0)])
    await points(admin, run_b, [(H0, 2000.0)])

    body = (await api.get("/portfolio")).json()
    assert [x["botId"] for x in body["bots"]] == [None, a, b]
    account, alpha, beta = body["bots"]
    assert account["totals"]["cash"] == "500" and account["liveRun"] is None
    assert alpha["botName"] == "alpha" and alpha["mode"] == "paper"
    assert [p["symbol"] for p in alpha["positions"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert alpha["positions"][0]["qty"] == "0.5"
    assert alpha["totals"] == {"cash": "1000.5", "exposure": "29700", "grossExposure": "30300",
                               "unrealizedPnl": "9.25", "equity": "1010", "positions": 2}
    assert alpha["liveRun"]["id"] == run_a and alpha["liveRun"]["equity"] == "1010"
    assert alpha["liveRun"]["equityAt"] == "2024-03-01T01:00:00Z" and alpha["liveRun"]["positionQty"] == "1"
    assert beta["positions"] == [] and beta["liveRun"]["kind"] == "live" and beta["totals"]["equity"] == "2000"
    assert body["total"] == {"cash": "1500.5", "exposure": "29700", "grossExposure": "30300",
                             "unrealizedPnl": "9.25", "equity": "3010", "positions": 2}


async def build_two_bots(admin):
    """Bot A: run r1 then a fresh run r3 (new capital); bot B: one live run with a 10% drawdown."""
    a = await make_bot(admin, name="a")
    b = await make_bot(admin, name="b", mode="live")
    r1 = await make_run(admin, kind="paper", bot_id=a)
    r3 = await make_run(admin, kind="paper", bot_id=a)
    r2 = await make_run(admin, kind="live", bot_id=b)
    await points(admin, r1, [(H0, 100.0), (H0 + timedelta(minutes=30), 110.0), (H0 + HOUR, 121.0),
                             (H0 + 3 * HOUR, 108.9)])
    await points(admin, r3, [(H0 + 3 * HOUR + timedelta(minutes=10), 1000.0), (H0 + 3 * HOUR + timedelta(minutes=50), 1100.0)])
    await points(admin, r2, [(H0 + HOUR, 200.0), (H0 + 2 * HOUR, 220.0), (H0 + 3 * HOUR, 198.0)])
    backtest = await make_run(admin, kind="backtest", bot_id=b)
    await points(admin, backtest, [(H0, 1.0), (H0 + HOUR, 1000.0)])  # excluded by default
    return a, b


async def test_performance_hand_computed(reads_app, admin):
    a, b = await build_two_bots(admin)
    now = H0 + timedelta(days=1, hours=2, minutes=1)  # 1d window starts after hour 1 ended
    async with reading(reads_app.state.ctx) as conn:
        result = await perf.performance(conn, kinds=["paper", "shadow", "live"], bot_id=None, now=now)
    bots = {x.bot_id: x for x in result.bots}
    # A: hourly PnL/base = 10/100, 11/110, 0/121, (-12.1 + 100)/(121 + 1000)
    ia = np.cumprod([1.1, 1.1, 1.0, 1 + 87.9 / 1121])
    assert math.isclose(bots[a].return_all, ia[-1] - 1)
    assert math.isclose(bots[a].return_1d, ia[-1] / ia[1] - 1)
    assert bots[a].max_drawdown == 0.0 and bots[a].sharpe is None  # one day of data
    assert math.isclose(bots[a].equity, 108.9 + 1100.0) and bots[a].samples == 4
    assert bots[a].since == H0 and bots[a].until == H0 + 3 * HOUR + timedelta(minutes=50)
    # B: 0/200, 20/200, -22/220 -> index 1, 1.1, 0.99
    assert math.isclose(bots[b].return_all, -0.01)
    assert math.isclose(bots[b].max_drawdown, 1 - 0.99 / 1.1)
    assert math.isclose(bots[b].return_1d, 0.99 / 1.0 - 1)
    # portfolio: value-weighted steps 10/100, (11+0)/(110+200), (0+20)/(121+200), (87.9-22)/(1121+220)
    ip = np.cumprod([1.1, 1 + 11 / 310, 1 + 20 / 321, 1 + 65.9 / 1341])
    assert math.isclose(result.portfolio.return_all, ip[-1] - 1)
    assert math.isclose(result.portfolio.equity, 108.9 + 1100 + 198)
    assert result.portfolio.return_30d == result.portfolio.return_all  # younger than 30 days


async def test_sharpe_from_daily_closes(reads_app, admin):
    c = await make_bot(admin, name="c")
    run = await make_run(admin, kind="paper", bot_id=c)
    closes = [100.0, 110.0, 99.0, 108.9, 119.79]
    await points(admin, run, [(H0 + timedelta(days=i, hours=12), v) for i, v in enumerate(closes)])
    async with reading(reads_app.state.ctx) as conn:
        result = await perf.performance(conn, kinds=["paper"], bot_id=c, now=H0 + timedelta(days=10))
    r = np.array([0.0, 0.1, -0.1, 0.1, 0.1])  # the first day's return is from the index start (1)
    expected = r.mean() / r.std(ddof=1) * math.sqrt(365)
    assert math.isclose(result.bots[0].sharpe, expected, rel_tol=1e-9)
    assert math.isclose(result.bots[0].max_drawdown, 0.1)
    # 7 days before now: the last hour ended by then is day 2's (equity 99)
    assert result.bots[0].return_7d == pytest.approx(119.79 / 99.0 - 1)


async def test_performance_endpoint(api, admin):
    a, b = await build_two_bots(admin)
    idle = await make_bot(admin, name="idle")
    body = (await api.get("/performance")).json()
    assert body["kinds"] == ["paper", "shadow", "live"]
    assert [x["botId"] for x in body["bots"]] == [a, b, idle]
    assert body["bots"][2]["returnAll"] is None and body["bots"][2]["samples"] == 0
    assert set(body["portfolio"]) >= {"return1d", "return7d", "return30d", "returnAll", "maxDrawdown", "sharpe"}
    only_b = (await api.get("/performance", params={"bot": b})).json()
    assert [x["botId"] for x in only_b["bots"]] == [b] and math.isclose(only_b["portfolio"]["returnAll"], -0.01)
    with_backtests = (await api.get("/performance", params={"bot": b, "kind": ["live", "backtest"]})).json()
    assert with_backtests["bots"][0]["returnAll"] != only_b["bots"][0]["returnAll"]
    problem(await api.get("/performance", params={"kind": "futures"}), 422)
    problem(await api.get("/performance", params={"bot": "x"}), 422)


async def test_performance_without_any_data(api):
    body = (await api.get("/performance")).json()
    assert body["bots"] == [] and body["portfolio"]["returnAll"] is None and body["portfolio"]["samples"] == 0
