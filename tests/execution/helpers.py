"""Small builders for hand-computed execution examples."""

from __future__ import annotations

from decimal import Decimal

from gordon_manager.execution import Bar, ExecutionConfig, ExecutionModel

# Readable granularity: cents, milli-lots; taker 10 bps, maker 2 bps, slippage 10 bps.
CFG = ExecutionConfig(
    initial_cash=Decimal("10000"),
    taker_fee_bps=Decimal("10"),
    maker_fee_bps=Decimal("2"),
    slippage_bps=Decimal("10"),
    price_step=Decimal("0.01"),
    qty_step=Decimal("0.001"),
    cash_step=Decimal("0.01"),
)


def D(x: str | int) -> Decimal:
    return Decimal(str(x))


def bar(ts: int, o: float, h: float, lo: float, c: float, v: float = 1.0) -> Bar:
    return Bar(ts, o, h, lo, c, v)


def model(**overrides: object) -> ExecutionModel:
    return ExecutionModel(CFG.model_copy(update=overrides) if overrides else CFG)
