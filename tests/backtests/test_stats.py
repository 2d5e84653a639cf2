"""Statistics formulas on hand-computed series."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal

import numpy as np
import pytest

from gordon_manager.execution import OrderReason, RoundTrip
from gordon_manager.stats import (
    annualized_return,
    buy_hold_return,
    by_exit_reason,
    by_month,
    calmar_ratio,
    compute_stats,
    drawdowns,
    max_drawdown,
    periods_per_year,
    returns,
    sharpe_ratio,
    sortino_ratio,
    total_return,
    trade_return,
    trade_stats,
    volatility,
    win_rate,
)

D = Decimal


def trip(net: str) -> RoundTrip:
    return RoundTrip(0, 1, D(1), D(1), D(1), D(net), D(0), D(net), 1, OrderReason.EXIT)


def test_total_return_and_drawdown() -> None:
    eq = np.array([100.0, 120.0, 90.0, 110.0])
    assert total_return(eq, 100.0) == 0.10000000000000009
    assert max_drawdown(eq, 100.0) == 0.25  # 120 -> 90
    assert max_drawdown(np.array([90.0, 95.0]), 100.0) == pytest.approx(0.1)  # initial is a peak
    assert total_return(np.array([]), 1.0) == 0.0 and max_drawdown(np.array([]), 1.0) == 0.0


def test_sharpe_annualised_from_the_bar_interval() -> None:
    assert periods_per_year(60_000) == 525_600 and periods_per_year(86_400_000) == 365
    with pytest.raises(ValueError):
        periods_per_year(0)
    eq = np.array([110.0, 121.0, 121.0])  # returns 0.1, 0.1, 0.0
    r = np.array([0.1, 0.1, 0.0])
    want = r.mean() / r.std(ddof=1) * math.sqrt(525_600)
    assert sharpe_ratio(eq, 100.0, 60_000) == pytest.approx(want, rel=1e-12)
    assert sharpe_ratio(np.array([100.0, 100.0]), 100.0, 60_000) == 0.0  # no variance
    assert sharpe_ratio(np.array([100.0]), 100.0, 60_000) == 0.0
    assert sharpe_ratio(eq, 100.0, 0) == 0.0


def test_win_rate_and_compute_stats() -> None:
    assert win_rate([]) is None
    assert win_rate([trip("1"), trip("-1"), trip("0"), trip("2")]) == 0.5
    s = compute_stats(equity=np.array([100.0, 110.0]), initial_equity=100.0, interval_ms=60_000,
                      fills=[], round_trips=[trip("10")], position_bars=1)
    assert (s.trade_count, s.win_rate, s.total_fees, s.exposure, s.final_equity) == (1, 1.0, D(0), 0.5, 110.0)
    e = compute_stats(equity=np.array([]), initial_equity=5.0, interval_ms=0, fills=[], round_trips=[],
                      position_bars=0)
    assert (e.final_equity, e.exposure, e.bars, e.sharpe) == (5.0, 0.0, 0, 0.0)


# -- the anchors' statistics, each against a hand computation on one small series ---------------

DAY = 86_400_000
JAN30 = 1_706_572_800_000  # 2024-01-30T00:00:00Z
TS = np.array([JAN30 + i * DAY for i in range(5)], dtype=np.int64)  # Jan 30, Jan 31, Feb 1, Feb 2, Feb 3
EQUITY = np.array([110.0, 99.0, 99.0, 121.0, 110.0])  # initial 100
CLOSE = np.array([50.0, 40.0, 45.0, 60.0, 55.0])


def closed(entry_price: str, qty: str, net: str, exit_day: int, reason: OrderReason) -> RoundTrip:
    exit_ts = JAN30 + exit_day * DAY
    return RoundTrip(exit_ts - DAY, exit_ts, D(entry_price), D(entry_price), D(qty), D(net), D(0), D(net), DAY, reason)


TRIPS = [closed("10", "2", "2", 1, OrderReason.EXIT),  # +10% of its 20 entry notional, exits Jan 31
         closed("20", "1", "-1", 3, OrderReason.STOP_LOSS),  # -5%, Feb 2
         closed("5", "4", "4", 4, OrderReason.EXIT)]  # +20%, Feb 3


def known_stats():
    return compute_stats(equity=EQUITY, initial_equity=100.0, interval_ms=DAY, fills=[], round_trips=TRIPS,
                         position_bars=3, ts=TS, close=CLOSE)


def test_returns_volatility_sortino_on_a_known_series() -> None:
    s = known_stats()
    r = [0.1, -0.1, 0.0, 121 / 99 - 1, 110 / 121 - 1]  # e[t] / e[t-1] - 1, e[-1] = 100
    assert s.total_return == pytest.approx(0.1)
    assert s.sharpe == pytest.approx(statistics.mean(r) / statistics.stdev(r) * math.sqrt(365), rel=1e-12)
    assert s.volatility == pytest.approx(statistics.stdev(r) * math.sqrt(365), rel=1e-12)
    downside = math.sqrt((0.1 ** 2 + (110 / 121 - 1) ** 2) / 5)  # min(r, 0)^2 over all five returns
    assert s.sortino == pytest.approx(statistics.mean(r) / downside * math.sqrt(365), rel=1e-12)
    assert s.cagr == pytest.approx(1.1 ** (365 / 5) - 1, rel=1e-12)  # five daily bars = 5/365 years
    assert s.calmar == pytest.approx(s.cagr / 0.1, rel=1e-12)
    assert s.buy_hold_return == pytest.approx(55 / 50 - 1)
    assert s.exposure == 3 / 5 and s.bars == 5 and s.final_equity == 110.0


def test_drawdowns_and_their_durations() -> None:
    s = known_stats()
    # peaks: 100 (Jan 29, one interval before the first bar), 110 (Jan 30), 121 (Feb 2).
    # Episode 1: 110 -> 99 (Jan 31, Feb 1), back to the peak Feb 2: depth 10%, 3 days.
    # Episode 2: 121 -> 110 on Feb 3, not recovered: depth 1/11, 1 day (to the last point).
    assert s.max_drawdown == pytest.approx(0.1)
    assert s.avg_drawdown == pytest.approx((0.1 + 11 / 121) / 2)
    assert s.max_drawdown_duration_s == 3 * 86_400 and s.avg_drawdown_duration_s == 2 * 86_400
    assert s.drawdown_count == 2
    # A fall on the very first bar is measured from the initial equity, one interval earlier.
    first = drawdowns(np.array([90.0, 100.0, 100.0]), 100.0, TS[:3], DAY)
    assert (first.max_drawdown, first.avg_drawdown, first.max_duration_s, first.count) == (
        pytest.approx(0.1), pytest.approx(0.1), 2 * 86_400, 1)
    flat = drawdowns(np.array([100.0, 101.0]), 100.0, TS[:2], DAY)
    assert (flat.max_drawdown, flat.avg_drawdown, flat.max_duration_s, flat.avg_duration_s, flat.count) == (
        0.0, None, None, None, 0)
    assert drawdowns(np.array([]), 1.0, np.array([], dtype=np.int64), DAY).count == 0


def test_trade_statistics() -> None:
    assert [trade_return(t) for t in TRIPS] == [pytest.approx(0.1), pytest.approx(-0.05), pytest.approx(0.2)]
    assert trade_return(closed("0", "1", "1", 1, OrderReason.EXIT)) == 0.0  # no entry notional
    s = known_stats()
    returns_ = [0.1, -0.05, 0.2]
    pnl = [2.0, -1.0, 4.0]
    assert (s.trade_count, s.win_rate) == (3, pytest.approx(2 / 3))
    assert (s.best_trade, s.worst_trade) == (pytest.approx(0.2), pytest.approx(-0.05))
    assert s.avg_trade == pytest.approx((1.1 * 0.95 * 1.2) ** (1 / 3) - 1, rel=1e-12)
    assert s.expectancy == pytest.approx(sum(returns_) / 3, rel=1e-12)
    assert s.profit_factor == pytest.approx(6.0)  # (2 + 4) / |-1|
    assert s.sqn == pytest.approx(math.sqrt(3) * statistics.mean(pnl) / statistics.stdev(pnl), rel=1e-12)
    assert s.net_pnl == D(5)


def test_breakdowns_by_exit_reason_and_month() -> None:
    s = known_stats()
    assert [(g.reason, g.trades, g.win_rate, g.net_pnl) for g in s.by_exit_reason] == [
        ("exit", 2, 1.0, D(6)), ("stop_loss", 1, 0.0, D(-1))]
    assert [g.expectancy for g in s.by_exit_reason] == [pytest.approx(0.15), pytest.approx(-0.05)]
    # January ends at 99 (from 100), February at 110 (from 99); trips counted in their exit month.
    assert [(m.month, m.trades, m.net_pnl) for m in s.by_month] == [("2024-01", 1, D(2)), ("2024-02", 2, D(3))]
    assert [m.return_ for m in s.by_month] == [pytest.approx(-0.01), pytest.approx(110 / 99 - 1)]
    # A month without any bar is left out; the next one compounds from the last listed month.
    gap = by_month(np.array([105.0, 110.0]), 100.0, np.array([JAN30, JAN30 + 40 * DAY]), [])
    assert [(m.month, m.trades) for m in gap] == [("2024-01", 0), ("2024-03", 0)]
    assert [m.return_ for m in gap] == [pytest.approx(0.05), pytest.approx(110 / 105 - 1)]
    assert by_month(np.array([]), 1.0, np.array([], dtype=np.int64), []) == ()


def test_undefined_statistics_are_none_not_nan() -> None:
    winners = [closed("10", "1", "1", 1, OrderReason.EXIT)]
    t = trade_stats(winners)
    assert (t.profit_factor, t.sqn, t.best_trade, t.avg_trade) == (None, None, pytest.approx(0.1), pytest.approx(0.1))
    assert trade_stats([]) == trade_stats([], _trips=None) and trade_stats([]).net_pnl == 0
    assert trade_stats([]).best_trade is None and by_exit_reason([]) == ()
    wiped = [closed("10", "1", "-10", 1, OrderReason.STOP_LOSS)]  # lost its whole entry notional
    assert trade_stats(wiped).avg_trade is None and trade_stats(wiped).worst_trade == -1.0
    rising = np.array([101.0, 102.0, 103.0])
    assert sortino_ratio(returns(rising, 100.0), DAY) is None  # no negative return
    assert volatility(returns(rising[:1], 100.0), DAY) is None and sortino_ratio(returns(rising, 100.0), 0) is None
    assert annualized_return(0.5, 10, 60_000) is None  # +50% in 10 minutes overflows a float
    assert annualized_return(-1.0, 10, DAY) == -1.0 and annualized_return(0.1, 0, DAY) == -1.0
    assert calmar_ratio(None, 0.1) is None and calmar_ratio(0.5, 0.0) is None
    assert buy_hold_return(np.array([])) is None
    bare = compute_stats(equity=rising, initial_equity=100.0, interval_ms=DAY, fills=[], round_trips=[],
                         position_bars=0)
    assert (bare.by_month, bare.max_drawdown_duration_s, bare.buy_hold_return, bare.max_drawdown) == ((), None, None, 0.0)


def test_the_months_compound_to_the_total_return_of_a_real_run() -> None:
    from gordon_manager.backtests import run_backtest
    from gordon_manager.marketdata.synth import generate_klines

    bars = generate_klines(n_bars=3 * 24 * 60 * 31, seed=5, interval="1m")
    s = run_backtest(bars, "sma_crossover", {"fast": 10, "slow": 40}).stats
    assert len(s.by_month) >= 3 and s.trade_count > 10
    assert math.prod(1 + m.return_ for m in s.by_month) - 1 == pytest.approx(s.total_return, abs=1e-9)
    assert sum(m.trades for m in s.by_month) == s.trade_count == sum(g.trades for g in s.by_exit_reason)
    assert sum((m.net_pnl for m in s.by_month), D(0)) == s.net_pnl == sum((g.net_pnl for g in s.by_exit_reason), D(0))
