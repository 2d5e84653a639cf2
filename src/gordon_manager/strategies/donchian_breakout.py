"""Donchian breakout: buy a close above the prior N-bar high, sell a close below the prior M-bar low."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gordon_manager.strategies.base import OHLCV, Signals, StrategySpec
from gordon_manager.strategies.indicators import rolling_max, rolling_min, shift

__all__ = ["DonchianBreakoutParams", "SPEC"]


class DonchianBreakoutParams(BaseModel):
    """Channel lengths in bars; optional stop loss and take profit as fractions of the close."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entry_period: int = Field(default=20, ge=2, le=10000, description="Breakout channel (bars).")
    exit_period: int = Field(default=10, ge=2, le=10000, description="Exit channel (bars).")
    stop_pct: float | None = Field(
        default=None, gt=0, lt=1, description="Stop loss this fraction below the entry bar's close."
    )
    take_profit_pct: float | None = Field(
        default=None, gt=0, le=10, description="Take profit this fraction above the entry bar's close."
    )


def signals(bars: OHLCV, p: DonchianBreakoutParams) -> Signals:
    """Entry when close > max(high) of the previous ``entry_period`` bars; exit when close <
    min(low) of the previous ``exit_period`` bars."""
    close = np.asarray(bars.close, dtype=np.float64)
    upper = shift(rolling_max(bars.high, p.entry_period), 1)
    lower = shift(rolling_min(bars.low, p.exit_period), 1)
    entry = close > upper
    exit_ = close < lower
    stop = close * (1.0 - p.stop_pct) if p.stop_pct is not None else None
    target = close * (1.0 + p.take_profit_pct) if p.take_profit_pct is not None else None
    return Signals(entry=entry, exit=exit_, stop_loss=stop, take_profit=target)


SPEC = StrategySpec(
    name="donchian_breakout",
    description="Turtle-style channel breakout with optional stop loss and take profit.",
    params_model=DonchianBreakoutParams,
    signal_fn=signals,
    warmup_fn=lambda p: max(p.entry_period, p.exit_period) + 1,
    examples=(
        {"entry_period": 6, "exit_period": 3, "stop_pct": 0.004, "take_profit_pct": 0.006},
        {"entry_period": 10, "exit_period": 5, "stop_pct": 0.02},
    ),
)
