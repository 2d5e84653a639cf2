"""Frozen, validated execution configuration shared by backtests and live bots."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ExecutionConfig"]

_STEP = Decimal("0.00000001")


class ExecutionConfig(BaseModel):
    """Fees, slippage, sizing and ledger granularity; immutable once built.

    Every value is a Decimal so a config read from JSON (``"10"``, ``0.1``) means exactly what it
    says; floats are converted through their shortest repr.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_cash: Decimal = Field(default=Decimal("10000"), gt=0, description="Starting quote balance.")
    taker_fee_bps: Decimal = Field(default=Decimal("10"), ge=0, le=1000, description="Market and stop fills.")
    maker_fee_bps: Decimal = Field(default=Decimal("10"), ge=0, le=1000, description="Limit fills.")
    slippage_bps: Decimal = Field(
        default=Decimal("1"), ge=0, le=1000, description="Adverse slippage on market and stop fills."
    )
    position_fraction: Decimal = Field(
        default=Decimal("1"), gt=0, le=1, description="Fraction of equity committed per entry."
    )
    qty_step: Decimal = Field(default=_STEP, gt=0, description="Lot step; quantities round down to it.")
    price_step: Decimal = Field(default=_STEP, gt=0, description="Tick; fill prices round against us.")
    cash_step: Decimal = Field(default=_STEP, gt=0, description="Cash granularity of notionals and fees.")
