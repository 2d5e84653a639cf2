"""Seeded synthetic klines: a geometric random walk with clustered volatility and fat tails.

Log volatility follows a stationary AR(1) (stochastic volatility), so calm and wild stretches
alternate; returns are Student-t. Opens equal the previous close, highs and lows extend beyond
the body by half-normal excursions scaled by the bar's volatility, prices sit on a tick grid, and
volume rises with the size of the move. Everything comes from one ``numpy.random.Generator``
seeded by the caller: same arguments, same bars, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from gordon_manager.execution.bars import Bars

__all__ = ["INTERVALS_MS", "generate_klines", "interval_ms"]

INTERVALS_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}
_MS_PER_YEAR = 365 * 86_400_000
_DEFAULT_START = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a fixed default, never the clock
_T_DF = 4.0


def interval_ms(interval: str) -> int:
    """Milliseconds in a Binance-style interval name (``1m`` .. ``1d``)."""
    try:
        return INTERVALS_MS[interval]
    except KeyError:
        raise ValueError(f"unknown interval {interval!r}; one of {', '.join(INTERVALS_MS)}") from None


def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    """x[t] = phi * x[t-1] + shocks[t] (x[-1] = 0), vectorized block by block."""
    n = shocks.shape[0]
    out = np.empty(n)
    if phi == 0.0:
        out[:] = shocks
        return out
    # Within a block x[t] = phi^(t+1) * (x_prev + sum_k phi^-(k+1) * e[k]); blocks stay short
    # enough that phi^-block cannot overflow.
    block = max(1, min(4096, int(30.0 / -math.log(phi)))) if phi < 1.0 else 1
    powers = phi ** np.arange(1, block + 1, dtype=np.float64)
    prev = 0.0
    for s in range(0, n, block):
        e = shocks[s : s + block]
        p = powers[: e.shape[0]]
        x = p * (prev + np.cumsum(e / p))
        out[s : s + e.shape[0]] = x
        prev = float(x[-1])
    return out


def _on_tick(x: np.ndarray, inv_tick: int, how: str) -> np.ndarray:
    # Dividing an integer count by 1/tick gives the correctly rounded decimal (100.01, not
    # 100.01000000000001) that multiplying by the tick would not.
    scaled = x * inv_tick
    k = np.ceil(scaled) if how == "up" else np.floor(scaled) if how == "down" else np.round(scaled)
    return k / inv_tick


def generate_klines(
    *,
    n_bars: int,
    seed: int,
    interval: str = "1m",
    start_ts: int = _DEFAULT_START,
    start_price: float = 100.0,
    annual_vol: float = 0.6,
    vol_of_vol: float = 0.5,
    vol_half_life_hours: float = 24.0,
    tick: float = 0.01,
    base_volume: float = 10.0,
) -> Bars:
    """Generate ``n_bars`` klines from ``seed`` (see the module docstring for the model)."""
    if n_bars < 0:
        raise ValueError("n_bars must be >= 0")
    if start_price <= 0 or annual_vol <= 0 or vol_of_vol < 0 or vol_half_life_hours <= 0:
        raise ValueError("start_price, annual_vol and vol_half_life_hours must be > 0, vol_of_vol >= 0")
    inv = 1.0 / tick
    inv_tick = int(round(inv))
    if tick <= 0 or inv_tick < 1 or abs(inv - inv_tick) > 1e-9 * inv:
        raise ValueError("tick must be 1/k for an integer k (e.g. 0.01, 0.5, 1)")
    step_ms = interval_ms(interval)
    rng = np.random.Generator(np.random.PCG64(seed))

    bar_vol = annual_vol * math.sqrt(step_ms / _MS_PER_YEAR)
    phi = 0.5 ** ((step_ms / 3_600_000) / vol_half_life_hours)
    eta = vol_of_vol * math.sqrt(1.0 - phi * phi)
    log_vol = _ar1(eta * rng.standard_normal(n_bars), phi)
    # Shift so the mean of exp(log_vol)^2 is 1 and annual_vol is the long-run volatility.
    sigma = bar_vol * np.exp(log_vol - vol_of_vol * vol_of_vol)
    shocks = rng.standard_t(_T_DF, n_bars) / math.sqrt(_T_DF / (_T_DF - 2.0))
    log_ret = sigma * shocks - 0.5 * sigma * sigma

    close = _on_tick(start_price * np.exp(np.cumsum(log_ret)), inv_tick, "round")
    close = np.maximum(close, tick)
    open_ = np.empty(n_bars)
    if n_bars:
        open_[0] = _on_tick(np.array([start_price]), inv_tick, "round")[0]
        open_[1:] = close[:-1]
    body_hi = np.maximum(open_, close)
    body_lo = np.minimum(open_, close)
    up = np.abs(rng.standard_normal(n_bars)) * sigma * 0.6
    down = np.abs(rng.standard_normal(n_bars)) * sigma * 0.6
    high = np.maximum(_on_tick(body_hi * (1.0 + up), inv_tick, "up"), body_hi)
    low = np.minimum(np.maximum(_on_tick(body_lo * (1.0 - down), inv_tick, "down"), tick), body_lo)
    activity = 1.0 + 2.0 * np.abs(log_ret) / bar_vol
    volume = np.round(base_volume * activity * rng.lognormal(0.0, 0.4, n_bars), 3)
    ts = start_ts + step_ms * np.arange(n_bars, dtype=np.int64)
    return Bars(ts=ts, open=open_, high=high, low=low, close=close, volume=volume)
