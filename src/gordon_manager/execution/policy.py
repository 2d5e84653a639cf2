"""The decision rule shared by backtests and live bots: long/flat, market orders at bar close."""

from __future__ import annotations

import math

from gordon_manager.execution.bars import Bar
from gordon_manager.execution.model import ExecutionModel
from gordon_manager.execution.money import ZERO, dec
from gordon_manager.execution.orders import Decision, OrderReason, OrderType, Side

__all__ = ["decide"]


def decide(
    model: ExecutionModel,
    bar: Bar,
    *,
    entry: bool,
    exit_: bool,
    stop_loss: float = math.nan,
    take_profit: float = math.nan,
) -> Decision | None:
    """Turn one bar's signal into at most one market order, submitted at the bar's close.

    Flat with no buy working and ``entry`` -> buy ``entry_qty(close)`` (with the optional bracket).
    Long with no sell-side exit working and ``exit_`` -> sell the whole position. Otherwise
    nothing, and nothing changes: the engine relies on that to skip bars without a signal.
    """
    if model.position == ZERO:
        if not entry or (model.has_open() and model.has_open(side=Side.BUY)):
            return None
        close = dec(bar.close)
        qty = model.entry_qty(close)
        if qty <= ZERO:
            return None
        order = model.submit(
            side=Side.BUY,
            order_type=OrderType.MARKET,
            qty=qty,
            ts=bar.ts,
            reason=OrderReason.ENTRY,
            stop_loss=None if math.isnan(stop_loss) else dec(stop_loss),
            take_profit=None if math.isnan(take_profit) else dec(take_profit),
        )
    else:
        if not exit_ or any(o.reason is OrderReason.EXIT for o in model.open_orders):
            return None
        close = dec(bar.close)
        order = model.submit(
            side=Side.SELL,
            order_type=OrderType.MARKET,
            qty=model.position,
            ts=bar.ts,
            reason=OrderReason.EXIT,
            reduce_only=True,
        )
    return Decision(
        ts=bar.ts,
        side=order.side,
        qty=order.qty,
        order_type=order.type,
        price=close,
        reason=order.reason,
        order_id=order.id,
        stop_loss=order.stop_loss,
        take_profit=order.take_profit,
    )
