"""Window-position-invariant indicators.

The value at bar ``i`` is computed from exactly the same operations, in the same order, on exactly
the same trailing window, however much history precedes it. So the backtest (whole series) and
the live loop (a short trailing window) get bit-identical values. Only IEEE-754 operations that are
correctly rounded or exact (+, -, *, /, comparisons, max, min) are used: never cumsum (its value
depends on everything before the window) and never exp/log (SIMD and scalar paths may differ).
"""

from __future__ import annotations

import numpy as np

__all__ = ["rolling_max", "rolling_min", "rolling_sum", "rsi_cutler", "shift", "sma"]


def _check(x: np.ndarray, n: int) -> np.ndarray:
    if n < 1:
        raise ValueError("window must be >= 1")
    return np.asarray(x, dtype=np.float64)


_BLOCK = 32_768
"""Windows are computed per block of this many outputs: the block's accumulator and inputs stay in the
CPU's cache across the window's passes (2.4x faster over 200k bars at n = 30, measured). Every element
still sees the same operations in the same order: blocking changes when it is computed, not how."""


def _rolling(x: np.ndarray, n: int, op: np.ufunc) -> np.ndarray:
    """``op`` folded over ``x[i-n+1..i]`` strictly left to right; NaN for the first ``n-1`` bars."""
    x = _check(x, n)
    out = np.full(x.shape[0], np.nan)
    m = x.shape[0] - n + 1
    if m <= 0:
        return out
    # n vectorized passes per block: element j of acc sees ((x[j] op x[j+1]) op ...) op x[j+n-1], the
    # same sequence of operations for every window, wherever it sits in the array.
    windows = out[n - 1 :]
    for start in range(0, m, _BLOCK):
        stop = min(m, start + _BLOCK)
        acc = windows[start:stop]
        acc[:] = x[start:stop]
        for k in range(1, n):
            op(acc, x[start + k : stop + k], out=acc)
    return out


def rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``x[i-n+1..i]`` added strictly left to right; NaN for the first ``n-1`` bars."""
    return _rolling(x, n, np.add)


def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average: ``rolling_sum(x, n) / n``."""
    return rolling_sum(x, n) / float(n)


def rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    """Maximum of ``x[i-n+1..i]``; NaN for the first ``n-1`` bars."""
    return _rolling(x, n, np.maximum)


def rolling_min(x: np.ndarray, n: int) -> np.ndarray:
    """Minimum of ``x[i-n+1..i]``; NaN for the first ``n-1`` bars."""
    return _rolling(x, n, np.minimum)


def shift(x: np.ndarray, k: int = 1) -> np.ndarray:
    """``x`` delayed by ``k >= 0`` bars (NaN-filled at the start)."""
    if k < 0:
        raise ValueError("shift must be >= 0 (no look-ahead)")
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape[0], np.nan)
    if k < x.shape[0]:
        out[k:] = x[: x.shape[0] - k]
    return out


def rsi_cutler(close: np.ndarray, n: int) -> np.ndarray:
    """Cutler's RSI over ``n`` price changes: ``100 x G / (G + L)`` with simple sums of gains G
    and losses L over the window (50 when flat). Depends on ``close[i-n..i]`` only."""
    close = _check(close, n)
    out = np.full(close.shape[0], np.nan)
    if close.shape[0] < n + 1:
        return out
    diff = close[1:] - close[:-1]
    gains = rolling_sum(np.maximum(diff, 0.0), n)
    losses = rolling_sum(np.maximum(-diff, 0.0), n)
    total = gains + losses
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total > 0.0, 100.0 * gains / total, 50.0)
    out[1:] = np.where(np.isnan(gains), np.nan, rsi)
    return out
