"""SMA crossover: long when the fast SMA crosses above the slow one, flat when it crosses below."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gordon_manager.strategies.base import OHLCV, Signals, StrategySpec
from gordon_manager.strategies.indicators import sma

__all__ = ["SmaCrossoverParams", "SPEC"]


class SmaCrossoverParams(BaseModel):
    """Fast and slow SMA lengths in bars (fast < slow)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fast: int = Field(default=10, ge=1, le=5000, description="Fast SMA length (bars).")
    slow: int = Field(default=30, ge=2, le=10000, description="Slow SMA length (bars).")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossoverParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be < slow")
        return self


def signals(bars: OHLCV, p: SmaCrossoverParams) -> Signals:
    """Entry on a cross up (fast > slow after fast <= slow), exit on a cross down."""
    fast = sma(bars.close, p.fast)
    slow = sma(bars.close, p.slow)
    n = fast.shape[0]
    entry = np.zeros(n, dtype=bool)
    exit_ = np.zeros(n, dtype=bool)
    # NaN compares False, so nothing fires until both bars of the cross are valid.
    entry[1:] = (fast[1:] > slow[1:]) & (fast[:-1] <= slow[:-1])
    exit_[1:] = (fast[1:] < slow[1:]) & (fast[:-1] >= slow[:-1])
    return Signals(entry=entry, exit=exit_)


SPEC = StrategySpec(
    name="sma_crossover",
    description="Long when the fast SMA crosses above the slow SMA; flat when it crosses below.",
    params_model=SmaCrossoverParams,
    signal_fn=signals,
    warmup_fn=lambda p: p.slow + 1,
    examples=({"fast": 3, "slow": 8},),
)
