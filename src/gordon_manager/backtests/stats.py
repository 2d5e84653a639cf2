"""Backtest statistics. Each formula is stated where it is computed.

All are derived from the equity series (float64, one point per bar close), the round trips and
the fills; none reads anything else, so the live bot can compute the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from gordon_manager.execution.orders import Fill, RoundTrip

__all__ = [
    "BacktestStats",
    "MS_PER_YEAR",
    "compute_stats",
    "max_drawdown",
    "periods_per_year",
    "sharpe_ratio",
    "total_return",
    "win_rate",
]

MS_PER_YEAR = 365 * 86_400_000  # crypto trades every day of the year


@dataclass(frozen=True, slots=True)
class BacktestStats:
    """Summary figures of one run (fractions, not percent)."""

    total_return: float
    max_drawdown: float
    sharpe: float
    win_rate: float | None
    trade_count: int
    total_fees: Decimal
    final_equity: float
    initial_equity: float
    exposure: float
    bars: int


def total_return(equity: np.ndarray, initial: float) -> float:
    """``final equity / initial equity - 1`` (0 for an empty series)."""
    if equity.shape[0] == 0:
        return 0.0
    return float(equity[-1] / initial - 1.0)


def max_drawdown(equity: np.ndarray, initial: float) -> float:
    """Largest fall from a running peak, as a positive fraction: ``max(1 - equity / peak)``.

    The initial equity counts as the first peak.
    """
    if equity.shape[0] == 0:
        return 0.0
    peak = np.maximum.accumulate(np.maximum(equity, initial))
    return float(np.max(1.0 - equity / peak))


def periods_per_year(interval_ms: int) -> float:
    """Bars per year at a given bar interval (365-day year)."""
    if interval_ms <= 0:
        raise ValueError("interval_ms must be > 0")
    return MS_PER_YEAR / interval_ms


def sharpe_ratio(equity: np.ndarray, initial: float, interval_ms: int) -> float:
    """Annualised Sharpe of per-bar simple returns, risk-free rate 0:
    ``mean(r) / std(r, ddof=1) * sqrt(bars per year)`` with ``r[t] = e[t] / e[t-1] - 1`` and
    ``e[-1]`` = initial equity. 0 when there are fewer than two returns or no variance."""
    if equity.shape[0] < 2 or interval_ms <= 0:
        return 0.0
    r = np.empty(equity.shape[0])
    r[0] = equity[0] / initial - 1.0
    np.divide(equity[1:], equity[:-1], out=r[1:])
    r[1:] -= 1.0
    sd = float(np.std(r, ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return 0.0
    return float(np.mean(r)) / sd * math.sqrt(periods_per_year(interval_ms))


def win_rate(round_trips: Sequence[RoundTrip]) -> float | None:
    """Share of round trips with net PnL > 0 (None without round trips)."""
    if not round_trips:
        return None
    return sum(1 for t in round_trips if t.net_pnl > 0) / len(round_trips)


def compute_stats(
    *,
    equity: np.ndarray,
    initial_equity: float,
    interval_ms: int,
    fills: Sequence[Fill],
    round_trips: Sequence[RoundTrip],
    position_bars: int,
    total_fees: Decimal | None = None,
) -> BacktestStats:
    """All statistics of a run; ``exposure`` = bars closed holding a position / bars.

    ``total_fees`` is the sum of fill fees; pass the ledger's exact total to skip re-adding them.
    """
    n = int(equity.shape[0])
    return BacktestStats(
        total_return=total_return(equity, initial_equity),
        max_drawdown=max_drawdown(equity, initial_equity),
        sharpe=sharpe_ratio(equity, initial_equity, interval_ms),
        win_rate=win_rate(round_trips),
        trade_count=len(round_trips),
        total_fees=total_fees if total_fees is not None else sum((f.fee for f in fills), Decimal(0)),
        final_equity=float(equity[-1]) if n else initial_equity,
        initial_equity=initial_equity,
        exposure=position_bars / n if n else 0.0,
        bars=n,
    )
