"""GET /performance: portfolio and per-bot returns over 1d/7d/30d/all, max drawdown and Sharpe.

Input: the hourly equity rollups (``trading.equity_rollups``, width 3600 s: first and last equity
point of each UTC hour) of every run of the bots, of the kinds asked for (default paper, shadow,
live: what the bots actually did; backtests are opt-in). Formulas:

* **Grid**: every UTC hour ``h`` in which any included run has a point. A run's value ``E_run(h)``
  is its last equity in hour h, carried forward across hours without points inside the run's own
  span (first to last hour); outside that span the run does not exist.
* **Step PnL and base** of a bot for hour h: ``ΔE_b(h) = Σ (E_run(h) - E_run(h-1))`` and
  ``V_b(h-1) = Σ E_run(h-1)`` over its runs existing at both h-1 and h; in a run's first hour,
  ``ΔE = last - first`` and ``V = first`` equity of that hour. So a new run starting with fresh
  capital is not a return, and PnL is never counted twice.
* **Step return**: ``r_b(h) = ΔE_b(h) / V_b(h-1)`` (0 when V = 0); portfolio:
  ``r_p(h) = Σ_b ΔE_b(h) / Σ_b V_b(h-1)`` (value-weighted).
* **Index** (time-weighted, chain-linked): ``I(h) = Π_{k ≤ h} (1 + r(k))``, ``I = 1`` before the first hour.
* **Return over a window w** (1d, 7d, 30d): ``I(last) / I(h0) - 1`` with h0 the last grid hour that
  ended at or before ``now - w`` (``I = 1`` if none: the series is younger than w); **all**:
  ``I(last) - 1``.
* **Max drawdown**: ``max_h (1 - I(h) / max_{k ≤ h} I(k))`` over the hourly index, 1 counting as the
  first peak (``gordon_manager.stats.max_drawdown``): exact at hourly closes, moves inside an hour are
  not seen.
* **Sharpe**: daily closes of the index (its last value in each UTC day) give daily returns
  ``d_t = I_t / I_{t-1} - 1`` (the first from 1); ``mean(d) / std(d, ddof=1) · √365``, risk-free 0
  (``gordon_manager.stats.sharpe_ratio``); null with fewer than two daily returns.
* ``equity``: Σ of the runs' values in the newest hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np

from gordon_manager.bff import repo
from gordon_manager.bff.schemas import BotPerformance, PerformanceFigures, PerformanceRead
from gordon_manager.stats import max_drawdown, sharpe_ratio

HOUR_S = 3600
DAY_MS = 86_400_000
WINDOWS = {"return_1d": timedelta(days=1), "return_7d": timedelta(days=7), "return_30d": timedelta(days=30)}
DEFAULT_KINDS = ("paper", "shadow", "live")


@dataclass
class Flows:
    """Per grid hour: PnL and base of one bot (or the portfolio), and the value of its runs."""

    pnl: np.ndarray
    base: np.ndarray
    value: np.ndarray
    present: np.ndarray  # the bot has a run at this hour
    since: datetime | None = None
    until: datetime | None = None
    runs: set = field(default_factory=set)


def _flows(grid_len: int) -> Flows:
    return Flows(np.zeros(grid_len), np.zeros(grid_len), np.zeros(grid_len), np.zeros(grid_len, dtype=bool))


def add_run(flows: Flows, pos: np.ndarray, first: np.ndarray, last: np.ndarray) -> None:
    """Add one run's hourly (grid position, first equity, last equity) to a bot's flows."""
    start, stop = int(pos[0]), int(pos[-1]) + 1
    span = np.full(stop - start, np.nan)
    span[pos - start] = last
    # Carry the last value forward over hours without points inside the run's span.
    idx = np.where(np.isnan(span), 0, np.arange(span.shape[0]))
    np.maximum.accumulate(idx, out=idx)
    span = span[idx]
    flows.pnl[start] += last[0] - first[0]
    flows.base[start] += first[0]
    flows.pnl[start + 1:stop] += span[1:] - span[:-1]
    flows.base[start + 1:stop] += span[:-1]
    flows.value[start:stop] += span
    flows.present[start:stop] = True


def figures(flows: Flows, grid: np.ndarray, now: datetime) -> PerformanceFigures:
    """Returns, drawdown, Sharpe and equity of one set of flows over the hour grid (module docstring)."""
    if not flows.present.any():
        return PerformanceFigures()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(flows.base != 0, flows.pnl / flows.base, 0.0)
    index = np.cumprod(1.0 + r)
    active = np.flatnonzero(flows.present)
    first, last = int(active[0]), int(active[-1])
    series = index[first:last + 1]
    out: dict[str, Any] = {"return_all": float(index[last] - 1.0)}
    ends = grid + HOUR_S  # an hour's value is known at its end
    for name, window in WINDOWS.items():
        cutoff = (now - window).timestamp()
        k = int(np.searchsorted(ends, cutoff, side="right")) - 1
        out[name] = float(index[last] / (index[k] if k >= 0 else 1.0) - 1.0)
    out["max_drawdown"] = max_drawdown(series, 1.0)
    days = (grid[first:last + 1] // 86400).astype(np.int64)
    day_ends = np.r_[np.flatnonzero(days[1:] != days[:-1]), days.shape[0] - 1]
    daily = series[day_ends]
    out["sharpe"] = sharpe_ratio(daily, 1.0, DAY_MS) if daily.shape[0] >= 2 else None
    out["equity"] = float(flows.value[last])
    return PerformanceFigures(**out, since=flows.since, until=flows.until, samples=int(series.shape[0]))


async def performance(conn: asyncpg.Connection, *, kinds: list[str], bot_id: int | None,
                      now: datetime | None = None) -> PerformanceRead:
    """Portfolio and per-bot figures from the hourly rollups (see the module docstring)."""
    now = now or datetime.now(UTC)
    rows = await repo.hourly(conn, kinds=kinds, bot_id=bot_id)
    names = {r["id"]: r["name"] for r in await repo.bots(conn, bot_id=bot_id)}
    hours = np.fromiter((r["bucket_at"].timestamp() for r in rows), dtype=np.float64, count=len(rows))
    grid = np.unique(hours)
    per_bot: dict[int, Flows] = {}
    total = _flows(grid.shape[0])
    i = 0
    while i < len(rows):  # rows are ordered by bot, run, hour: one slice per run
        j = i
        run_id = rows[i]["run_id"]
        while j < len(rows) and rows[j]["run_id"] == run_id:
            j += 1
        bot = rows[i]["bot_id"]
        names.setdefault(bot, rows[i]["bot_name"])
        flows = per_bot.setdefault(bot, _flows(grid.shape[0]))
        pos = np.searchsorted(grid, hours[i:j])
        first = np.fromiter((r["first_equity"] for r in rows[i:j]), dtype=np.float64, count=j - i)
        last = np.fromiter((r["last_equity"] for r in rows[i:j]), dtype=np.float64, count=j - i)
        for target in (flows, total):
            add_run(target, pos, first, last)
            target.since = min(filter(None, [target.since, rows[i]["first_at"]]))
            target.until = max(filter(None, [target.until, rows[j - 1]["last_at"]]))
        i = j
    bots = [BotPerformance(bot_id=b, bot_name=names[b],
                           **figures(per_bot[b], grid, now).model_dump() if b in per_bot else {})
            for b in sorted(names)]
    return PerformanceRead(as_of=now, kinds=kinds, portfolio=figures(total, grid, now), bots=bots)
