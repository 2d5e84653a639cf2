"""Statistics formulas on hand-computed series."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from gordon_manager.backtests.stats import (
    compute_stats,
    max_drawdown,
    periods_per_year,
    sharpe_ratio,
    total_return,
    win_rate,
)
from gordon_manager.execution import OrderReason, RoundTrip

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
