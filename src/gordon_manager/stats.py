"""Backtest statistics. Each formula is stated where it is computed.

All are derived from the equity series (float64, one point per bar close), the bars' times and
closes, the round trips and the fills; none reads anything else, so the live bot can compute the
same figures. The names are backtesting.py's (``Backtest.run()``'s statistics); where a definition
differs from it, the docstring says how. Fractions, not percent. A ratio that is undefined
(no variance, no losing trade, ...) is None, never NaN or infinity (the stats are stored as jsonb).

Conventions: ``r[t] = e[t] / e[t-1] - 1`` are the per-bar simple returns, with ``e[-1]`` = the
initial equity (the equity before the first bar); "bars per year" is ``365 d / interval``. A trade's
return is its net PnL over its entry notional: ``net_pnl / (entry_price x qty)``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from gordon_manager.execution.money import CTX
from gordon_manager.execution.orders import Fill, RoundTrip

__all__ = [
    "BacktestStats",
    "Drawdowns",
    "ExitReasonStats",
    "MS_PER_YEAR",
    "MonthStats",
    "TradeStats",
    "TripColumns",
    "annualized_return",
    "buy_hold_return",
    "by_exit_reason",
    "by_month",
    "calmar_ratio",
    "compute_stats",
    "drawdowns",
    "returns",
    "sortino_ratio",
    "trade_stats",
    "volatility",
    "max_drawdown",
    "periods_per_year",
    "sharpe_ratio",
    "total_return",
    "win_rate",
]

MS_PER_YEAR = 365 * 86_400_000  # crypto trades every day of the year
_EXACT_BELOW = 10**27  # whole sums below this fit the default Decimal context's 28 digits


@dataclass(frozen=True, slots=True)
class ExitReasonStats:
    """The round trips closed for one reason (``entry`` signal exit, ``stop_loss``, ...)."""

    reason: str
    trades: int
    win_rate: float
    net_pnl: Decimal
    expectancy: float


@dataclass(frozen=True, slots=True)
class MonthStats:
    """One calendar month (UTC) of the run: the bars that open in it and the trades that exit in it."""

    month: str  # "YYYY-MM"
    return_: float
    trades: int
    net_pnl: Decimal


@dataclass(frozen=True, slots=True)
class Drawdowns:
    """Drawdown episodes of the equity series (see ``drawdowns``)."""

    max_drawdown: float
    avg_drawdown: float | None
    max_duration_s: float | None
    avg_duration_s: float | None
    count: int


@dataclass(frozen=True, slots=True)
class TradeStats:
    """Figures of the round trips (see ``trade_stats``)."""

    best_trade: float | None
    worst_trade: float | None
    avg_trade: float | None
    profit_factor: float | None
    expectancy: float | None
    sqn: float | None
    net_pnl: Decimal


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
    cagr: float | None = None
    buy_hold_return: float | None = None
    volatility: float | None = None
    sortino: float | None = None
    calmar: float | None = None
    avg_drawdown: float | None = None
    max_drawdown_duration_s: float | None = None
    avg_drawdown_duration_s: float | None = None
    drawdown_count: int = 0
    best_trade: float | None = None
    worst_trade: float | None = None
    avg_trade: float | None = None
    profit_factor: float | None = None
    expectancy: float | None = None
    sqn: float | None = None
    net_pnl: Decimal = Decimal(0)
    by_exit_reason: tuple[ExitReasonStats, ...] = field(default_factory=tuple)
    by_month: tuple[MonthStats, ...] = field(default_factory=tuple)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


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


def returns(equity: np.ndarray, initial: float) -> np.ndarray:
    """Per-bar simple returns ``r[t] = e[t] / e[t-1] - 1``, ``e[-1]`` = initial equity (one per bar)."""
    r = np.empty(equity.shape[0])
    if equity.shape[0] == 0:
        return r
    r[0] = equity[0] / initial - 1.0
    np.divide(equity[1:], equity[:-1], out=r[1:])
    r[1:] -= 1.0
    return r


def sharpe_ratio(equity: np.ndarray, initial: float, interval_ms: int, *, r: np.ndarray | None = None) -> float:
    """Annualised Sharpe of per-bar simple returns, risk-free rate 0:
    ``mean(r) / std(r, ddof=1) * sqrt(bars per year)`` with ``r[t] = e[t] / e[t-1] - 1`` and
    ``e[-1]`` = initial equity. 0 when there are fewer than two returns or no variance."""
    if equity.shape[0] < 2 or interval_ms <= 0:
        return 0.0
    r = returns(equity, initial) if r is None else r
    sd = float(np.std(r, ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return 0.0
    return float(np.mean(r)) / sd * math.sqrt(periods_per_year(interval_ms))


def volatility(r: np.ndarray, interval_ms: int) -> float | None:
    """Annualised volatility of the per-bar returns: ``std(r, ddof=1) * sqrt(bars per year)`` (the
    denominator of the Sharpe ratio; backtesting.py annualises daily returns instead). None with
    fewer than two returns."""
    if r.shape[0] < 2 or interval_ms <= 0:
        return None
    return _finite(float(np.std(r, ddof=1)) * math.sqrt(periods_per_year(interval_ms)))


def sortino_ratio(r: np.ndarray, interval_ms: int) -> float | None:
    """Annualised Sortino, target 0: ``mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(bars per year)`` (the
    downside deviation over all returns, as backtesting.py's; it divides the annualised return
    instead). None with fewer than two returns or no negative return."""
    if r.shape[0] < 2 or interval_ms <= 0:
        return None
    downside = np.minimum(r, 0.0)
    # einsum, not np.dot: BLAS may split a long dot over threads (on a busy 2-core box a thread that is
    # not scheduled costs milliseconds) and its sum then depends on the thread count; einsum's does not.
    dd = math.sqrt(float(np.einsum("i,i->", downside, downside)) / r.shape[0])
    if dd == 0.0 or not math.isfinite(dd):
        return None
    return _finite(float(np.mean(r)) / dd * math.sqrt(periods_per_year(interval_ms)))


def annualized_return(total: float, bars: int, interval_ms: int) -> float | None:
    """Compound annual growth over the bars' span (``cagr``): ``(1 + total return) ^ (1 / years) - 1``
    with ``years = bars / bars per year``; -1 when everything was lost (or no bar), None when it
    overflows a float (a large return over a short span)."""
    years = bars / periods_per_year(interval_ms) if bars and interval_ms > 0 else 0.0
    growth = 1.0 + total
    if years <= 0 or growth <= 0:
        return -1.0
    try:
        return _finite(growth ** (1.0 / years) - 1.0)
    except OverflowError:
        return None


def calmar_ratio(cagr: float | None, mdd: float) -> float | None:
    """``cagr / max drawdown``; None without a drawdown (or a cagr)."""
    if cagr is None or mdd <= 0:
        return None
    return _finite(cagr / mdd)


def buy_hold_return(close: np.ndarray) -> float | None:
    """Holding the asset over the same bars: ``close[last] / close[first] - 1`` (backtesting.py's
    "Buy & Hold Return"; no fees). None without bars."""
    if close.shape[0] == 0 or close[0] <= 0:
        return None
    return _finite(float(close[-1] / close[0] - 1.0))


def drawdowns(equity: np.ndarray, initial: float, ts: np.ndarray, interval_ms: int) -> Drawdowns:
    """Drawdown episodes. Over the points ``p = [initial, e[0], ..., e[n-1]]`` at times
    ``[ts[0] - interval, ts[0], ..., ts[n-1]]`` (a point's time is its bar's open time, as stored;
    the initial equity is one interval before the first), ``dd = 1 - p / running max(p)``. An episode
    is a maximal run of points with ``dd > 0``: it starts at the peak before it and ends at the first
    point back at the peak (recovered), or at the last point (still under water).

    * ``max_drawdown`` = max dd; ``avg_drawdown`` = mean over the episodes of each episode's max dd;
    * ``max/avg_duration_s`` = max/mean over the episodes of (end time - peak time), seconds;
    * ``count`` = episodes. The averages are None without an episode (as backtesting.py's NaN).
    """
    n = equity.shape[0]
    if n == 0:
        return Drawdowns(0.0, None, None, None, 0)
    p = np.empty(n + 1)
    p[0] = initial
    p[1:] = equity
    dd = 1.0 - p / np.maximum.accumulate(p)
    under = dd > 0.0
    if not under.any():
        return Drawdowns(0.0, None, None, None, 0)
    t = np.empty(n + 1, dtype=np.int64)
    t[0] = int(ts[0]) - interval_ms
    t[1:] = ts
    edges = np.diff(under.astype(np.int8))
    starts = np.flatnonzero(edges == 1) + 1  # first point under water (under[0] is False: dd[0] = 0)
    ends = np.flatnonzero(edges == -1) + 1  # first point back at the peak
    if under[-1]:
        ends = np.append(ends, n)  # still under water: the episode ends at the last point
    depth = np.maximum.reduceat(dd, starts)  # each segment runs to the next start; dd there is 0 past the end
    duration_s = (t[ends] - t[starts - 1]) / 1000.0
    return Drawdowns(max_drawdown=float(depth.max()), avg_drawdown=float(depth.mean()),
                     max_duration_s=float(duration_s.max()), avg_duration_s=float(duration_s.mean()),
                     count=int(starts.shape[0]))


def trade_return(trip: RoundTrip) -> float:
    """A round trip's net PnL over its entry notional: ``net_pnl / (entry_price x qty)`` (as floats)."""
    notional = float(trip.entry_price) * float(trip.qty)
    return float(trip.net_pnl) / notional if notional else 0.0


_NET_PNL, _ENTRY_PRICE, _QTY, _EXIT_TS, _EXIT_REASON = (
    operator.attrgetter(f) for f in ("net_pnl", "entry_price", "qty", "exit_ts", "exit_reason"))


@dataclass(frozen=True, slots=True)
class TripColumns:
    """Round trips already held as columns (the engine's whole-step fast path), with exactly what
    these statistics read of them, so that they need not be made into ``RoundTrip`` tuples first:
    the floats of each trip's net PnL, entry price and quantity (each ``float(Decimal)`` of the
    trip's value), its exit time and exit reason, and its net PnL exactly, as a whole number of
    ``10 ** net_exponent`` (the exponent of the trips' ``net_pnl`` Decimals)."""

    pnl: np.ndarray
    entry_price: np.ndarray
    qty: np.ndarray
    exit_ts: np.ndarray
    reasons: Sequence[str]
    net_units: Sequence[int]
    net_exponent: int

    def __len__(self) -> int:
        return len(self.net_units)


Trips = Sequence[RoundTrip] | TripColumns


@dataclass(slots=True)
class _Trips:
    """The round trips as arrays, built once: net PnL, trade return, exit time, exit reason."""

    count: int
    pnl: np.ndarray
    ret: np.ndarray
    exit_ts: np.ndarray
    reasons: Sequence[str]
    _exact: Callable[[Sequence[int]], Decimal]  # the exact sum of the net PnLs of the trips at these indexes
    _net: Decimal | None = None  # the exact total, once asked for

    @classmethod
    def of(cls, round_trips: Trips) -> _Trips:
        if isinstance(round_trips, TripColumns):
            return cls._of_columns(round_trips)
        n = len(round_trips)
        # Each field's floats in one C-level pass (float(Decimal) per value, as before; no tuples).
        pnl = np.fromiter(map(float, map(_NET_PNL, round_trips)), dtype=np.float64, count=n)
        notional = (np.fromiter(map(float, map(_ENTRY_PRICE, round_trips)), dtype=np.float64, count=n)
                    * np.fromiter(map(float, map(_QTY, round_trips)), dtype=np.float64, count=n))
        exit_ts = np.fromiter(map(_EXIT_TS, round_trips), dtype=np.int64, count=n)

        def exact(index: Sequence[int]) -> Decimal:
            return sum(map(_NET_PNL, map(round_trips.__getitem__, index)), Decimal(0))

        return cls(n, pnl, _returns(pnl, notional), exit_ts, list(map(_EXIT_REASON, round_trips)), exact)

    @classmethod
    def _of_columns(cls, cols: TripColumns) -> _Trips:
        units, exponent = cols.net_units, cols.net_exponent
        at = min(exponent, 0)  # Decimal(0) + net_pnl + ...: the smaller exponent
        scale = 10 ** (exponent - at)
        # Every running sum of any subset stays below the sum of the magnitudes: below 10**27, Decimal's
        # running sum in the thread's context (28 digits) rounds nothing, and the whole-number sum is it.
        whole = sum(map(abs, units)) * scale < _EXACT_BELOW

        def exact(index: Sequence[int]) -> Decimal:
            if not len(index):
                return Decimal(0)
            if whole:
                return Decimal(sum(map(units.__getitem__, index)) * scale).scaleb(at)
            return sum((Decimal(units[i]).scaleb(exponent, CTX) for i in index), Decimal(0))  # rounds as Decimal does

        return cls(len(cols), cols.pnl, _returns(cols.pnl, cols.entry_price * cols.qty), cols.exit_ts, cols.reasons,
                   exact)

    def net(self, index: np.ndarray | None = None) -> Decimal:
        """Exact sum of the net PnLs (of the trips at ``index``; all of them once, then remembered)."""
        if index is None or index.shape[0] == self.count:
            if self._net is None:
                self._net = self._exact(range(self.count))
            return self._net
        return self._exact(index.tolist())

    def wins(self, index: np.ndarray | None = None) -> int:
        """How many trips (at ``index``) have a net PnL > 0."""
        return int(np.count_nonzero((self.pnl if index is None else self.pnl[index]) > 0))


def _returns(pnl: np.ndarray, notional: np.ndarray) -> np.ndarray:
    return np.divide(pnl, notional, out=np.zeros(pnl.shape[0]), where=notional != 0)


def trade_stats(round_trips: Trips, *, _trips: _Trips | None = None) -> TradeStats:
    """With ``x`` the trades' returns (``trade_return``) and ``pnl`` their net PnLs:

    * ``best_trade`` / ``worst_trade`` = max(x) / min(x);
    * ``avg_trade`` = geometric mean ``prod(1 + x) ^ (1/n) - 1`` (backtesting.py's "Avg. Trade";
      None if a trade lost everything);
    * ``expectancy`` = arithmetic mean of x (backtesting.py's "Expectancy");
    * ``profit_factor`` = sum of winning pnl / |sum of losing pnl| (money, not returns as
      backtesting.py; None without a losing trade);
    * ``sqn`` = ``sqrt(n) * mean(pnl) / std(pnl, ddof=1)`` (van Tharp's System Quality Number, as
      backtesting.py's; None with fewer than two trades or no variance);
    * ``net_pnl`` = sum of pnl (exact).

    All None (and net_pnl 0) without trades."""
    tr = _trips or _Trips.of(round_trips)
    net = tr.net()
    if not round_trips:
        return TradeStats(None, None, None, None, None, None, net)
    x, pnl = tr.ret, tr.pnl
    growth = 1.0 + x
    avg = float(np.exp(np.mean(np.log(growth)))) - 1.0 if bool((growth > 0).all()) else None
    losses = float(-pnl[pnl < 0].sum())
    profit_factor = float(pnl[pnl > 0].sum()) / losses if losses > 0 else None
    sd = float(np.std(pnl, ddof=1)) if pnl.shape[0] > 1 else 0.0
    sqn = math.sqrt(pnl.shape[0]) * float(np.mean(pnl)) / sd if sd > 0 else None
    return TradeStats(best_trade=float(x.max()), worst_trade=float(x.min()), avg_trade=avg,
                      profit_factor=profit_factor, expectancy=float(np.mean(x)),
                      sqn=None if sqn is None else _finite(sqn), net_pnl=net)


def by_exit_reason(round_trips: Trips, *, _trips: _Trips | None = None) -> tuple[ExitReasonStats, ...]:
    """Per exit reason (sorted by name): trades, win rate (net pnl > 0), net pnl (exact) and
    expectancy (mean trade return)."""
    tr = _trips or _Trips.of(round_trips)
    if not tr.count:
        return ()
    reasons = tr.reasons
    kinds = sorted(set(reasons))
    codes = np.asarray(reasons, dtype=object) if len(kinds) > 1 else None
    out = []
    for reason in kinds:
        index = np.arange(len(reasons)) if codes is None else np.flatnonzero(codes == reason)
        out.append(ExitReasonStats(reason=str(reason), trades=int(index.shape[0]),
                                   win_rate=tr.wins(index) / index.shape[0],
                                   net_pnl=tr.net(index), expectancy=float(np.mean(tr.ret[index]))))
    return tuple(out)


def _month_starts(first_ms: int, last_ms: int) -> np.ndarray:
    """Open times (ms, UTC) of the calendar months from ``first_ms``'s to the one after ``last_ms``'s."""
    first, last = (np.datetime64(int(v), "ms").astype("datetime64[M]") for v in (first_ms, last_ms))
    return np.arange(first, last + 2).astype("datetime64[ms]").astype(np.int64)


def by_month(equity: np.ndarray, initial: float, ts: np.ndarray, round_trips: Trips, *,
             _trips: _Trips | None = None) -> tuple[MonthStats, ...]:
    """Per calendar month (UTC) of the bars' open times, in time order (months without a bar are left
    out): ``return`` = equity at the month's last bar / equity at the previous listed month's last bar
    (the initial equity for the first) - 1, so the months compound to the total return; ``trades`` and
    ``net_pnl`` of the round trips that exit in the month (a trip's exit time is its exit fill's bar)."""
    n = equity.shape[0]
    if n == 0:
        return ()
    tr = _trips or _Trips.of(round_trips)
    starts = _month_starts(int(ts[0]), int(ts[-1]))
    bounds = np.searchsorted(ts, starts)  # bars of month k: [bounds[k], bounds[k + 1])
    exit_month = np.searchsorted(starts, tr.exit_ts, side="right") - 1
    out = []
    before = initial
    for k in range(starts.shape[0] - 1):
        if bounds[k + 1] == bounds[k]:
            continue
        end = float(equity[bounds[k + 1] - 1])
        index = np.flatnonzero(exit_month == k)
        label = str(np.datetime64(int(starts[k]), "ms").astype("datetime64[M]"))
        out.append(MonthStats(month=label, return_=end / before - 1.0, trades=int(index.shape[0]),
                              net_pnl=tr.net(index)))
        before = end
    return tuple(out)


def win_rate(round_trips: Trips, *, _trips: _Trips | None = None) -> float | None:
    """Share of round trips with net PnL > 0 (None without round trips)."""
    if not round_trips:
        return None
    return (_trips or _Trips.of(round_trips)).wins() / len(round_trips)


def compute_stats(
    *,
    equity: np.ndarray,
    initial_equity: float,
    interval_ms: int,
    fills: Sequence[Fill],
    round_trips: Trips,
    position_bars: int,
    total_fees: Decimal | None = None,
    ts: np.ndarray | None = None,
    close: np.ndarray | None = None,
) -> BacktestStats:
    """All statistics of a run; ``exposure`` = bars closed holding a position / bars (backtesting.py's
    "Exposure Time").

    ``total_fees`` is the sum of fill fees; pass the ledger's exact total to skip re-adding them.
    ``ts`` (bar open times, ms) and ``close`` give the drawdown durations, the monthly breakdown and
    buy & hold; without them those are absent (None / empty).
    """
    n = int(equity.shape[0])
    r = returns(equity, initial_equity)
    total = total_return(equity, initial_equity)
    cagr = annualized_return(total, n, interval_ms)
    trips = _Trips.of(round_trips)
    if ts is not None and n:
        dd = drawdowns(equity, initial_equity, ts, interval_ms)
        months = by_month(equity, initial_equity, ts, round_trips, _trips=trips)
    else:
        dd = Drawdowns(max_drawdown(equity, initial_equity), None, None, None, 0)
        months = ()
    trades = trade_stats(round_trips, _trips=trips)
    return BacktestStats(
        total_return=total,
        max_drawdown=dd.max_drawdown,
        sharpe=sharpe_ratio(equity, initial_equity, interval_ms, r=r),
        win_rate=win_rate(round_trips, _trips=trips),
        trade_count=len(round_trips),
        total_fees=total_fees if total_fees is not None else sum((f.fee for f in fills), Decimal(0)),
        final_equity=float(equity[-1]) if n else initial_equity,
        initial_equity=initial_equity,
        exposure=position_bars / n if n else 0.0,
        bars=n,
        cagr=cagr,
        buy_hold_return=buy_hold_return(close) if close is not None else None,
        volatility=volatility(r, interval_ms),
        sortino=sortino_ratio(r, interval_ms),
        calmar=calmar_ratio(cagr, dd.max_drawdown),
        avg_drawdown=dd.avg_drawdown,
        max_drawdown_duration_s=dd.max_duration_s,
        avg_drawdown_duration_s=dd.avg_duration_s,
        drawdown_count=dd.count,
        best_trade=trades.best_trade,
        worst_trade=trades.worst_trade,
        avg_trade=trades.avg_trade,
        profit_factor=trades.profit_factor,
        expectancy=trades.expectancy,
        sqn=trades.sqn,
        net_pnl=trades.net_pnl,
        by_exit_reason=by_exit_reason(round_trips, _trips=trips),
        by_month=months,
    )
