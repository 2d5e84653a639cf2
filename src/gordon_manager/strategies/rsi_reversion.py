"""RSI mean reversion: buy oversold, sell overbought (Cutler's RSI, finite window)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gordon_manager.strategies.base import OHLCV, Signals, StrategySpec
from gordon_manager.strategies.indicators import rsi_cutler

__all__ = ["RsiReversionParams", "SPEC"]


class RsiReversionParams(BaseModel):
    """RSI period and thresholds (0 < oversold < overbought < 100); optional stop loss."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    period: int = Field(default=14, ge=2, le=1000, description="RSI window (price changes).")
    oversold: float = Field(default=30.0, gt=0, lt=100, description="Enter below this RSI.")
    overbought: float = Field(default=70.0, gt=0, lt=100, description="Exit above this RSI.")
    stop_pct: float | None = Field(
        default=None, gt=0, lt=1, description="Stop loss this fraction below the entry bar's close."
    )

    @model_validator(mode="after")
    def _ordered(self) -> RsiReversionParams:
        if self.oversold >= self.overbought:
            raise ValueError("oversold must be < overbought")
        return self


def signals(bars: OHLCV, p: RsiReversionParams) -> Signals:
    """Entry while RSI < oversold, exit while RSI > overbought."""
    rsi = rsi_cutler(bars.close, p.period)
    entry = rsi < p.oversold
    exit_ = rsi > p.overbought
    stop = None
    if p.stop_pct is not None:
        stop = np.asarray(bars.close, dtype=np.float64) * (1.0 - p.stop_pct)
    return Signals(entry=entry, exit=exit_, stop_loss=stop)


SPEC = StrategySpec(
    name="rsi_reversion",
    description="Buy when Cutler's RSI is below `oversold`, sell when it is above `overbought`.",
    params_model=RsiReversionParams,
    signal_fn=signals,
    warmup_fn=lambda p: p.period + 1,
    examples=({"period": 5, "oversold": 35.0, "overbought": 60.0, "stop_pct": 0.01},),
)
