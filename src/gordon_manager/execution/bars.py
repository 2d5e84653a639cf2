"""OHLCV bars: one ``Bar`` for the bar-by-bar loop, column arrays (``Bars``) for backtests."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["Bar", "Bars", "validate_bar"]

_FIELDS = ("ts", "open", "high", "low", "close", "volume")


class Bar(NamedTuple):
    """One kline; ``ts`` is the bar's open time in epoch milliseconds (UTC)."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


def validate_bar(bar: Bar) -> None:
    """Raise ValueError unless the bar is finite, positive and internally consistent."""
    o, h, lo, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
    if not all(math.isfinite(x) for x in (o, h, lo, c, v)):
        raise ValueError(f"bar {bar.ts}: non-finite value")
    if lo <= 0.0 or v < 0.0:
        raise ValueError(f"bar {bar.ts}: prices must be > 0 and volume >= 0")
    if not (lo <= min(o, c) and h >= max(o, c)):
        raise ValueError(f"bar {bar.ts}: low/high do not bound open/close")


@dataclass(frozen=True, eq=False)
class Bars:
    """Column-oriented klines: int64 ``ts`` (ms, bar open, strictly increasing) and float64 OHLCV.

    Arrays are copied to contiguous read-only buffers so a result can never be mutated under a
    running backtest.
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        n = None
        for name in _FIELDS:
            dtype = np.int64 if name == "ts" else np.float64
            arr = np.array(getattr(self, name), dtype=dtype, copy=True, order="C")
            if arr.ndim != 1:
                raise ValueError(f"{name} must be one-dimensional")
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                raise ValueError(f"{name} has length {arr.shape[0]}, expected {n}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        self._validate()

    def _validate(self) -> None:
        if len(self) == 0:
            return
        if np.any(np.diff(self.ts) <= 0):
            raise ValueError("ts must be strictly increasing")
        cols = (self.open, self.high, self.low, self.close, self.volume)
        if not all(bool(np.isfinite(c).all()) for c in cols):
            raise ValueError("OHLCV values must be finite")
        if np.any(self.low <= 0.0) or np.any(self.volume < 0.0):
            raise ValueError("prices must be > 0 and volume >= 0")
        body_lo = np.minimum(self.open, self.close)
        body_hi = np.maximum(self.open, self.close)
        if np.any(self.low > body_lo) or np.any(self.high < body_hi):
            raise ValueError("low/high must bound open/close")

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def bar(self, i: int) -> Bar:
        """The i-th bar as Python scalars (the same values the live loop would receive)."""
        return Bar(
            int(self.ts[i]),
            float(self.open[i]),
            float(self.high[i]),
            float(self.low[i]),
            float(self.close[i]),
            float(self.volume[i]),
        )

    def __iter__(self) -> Iterator[Bar]:
        for i in range(len(self)):
            yield self.bar(i)

    def slice(self, start: int, stop: int) -> Bars:
        """Bars ``[start, stop)`` as a new Bars."""
        return Bars(*(getattr(self, f)[start:stop] for f in _FIELDS))

    @property
    def interval_ms(self) -> int:
        """Bar interval: the median spacing of ``ts`` (0 with fewer than two bars)."""
        if len(self) < 2:
            return 0
        return int(np.median(np.diff(self.ts)))

    @classmethod
    def from_bars(cls, bars: Iterable[Bar]) -> Bars:
        """Build column arrays from Bar rows."""
        rows = list(bars)
        cols = list(zip(*rows, strict=True)) if rows else [()] * 6
        return cls(*(np.asarray(c) for c in cols))
